/* gen-verify: the xorshift test stream (xorshift.h) from the command line,
 * so a test can produce or check the bytes ucspi-testapp sends without
 * re-implementing the generator.
 *
 *   gen-verify gen N SEED     write the first N bytes of the stream to stdout
 *   gen-verify sum N SEED     print "<N> <sha256 hex>" of those bytes
 *   gen-verify check N SEED   read stdin to EOF; exit 0 if it is exactly
 *                             those bytes, else print where it differs, exit 1
 *   gen-verify sha256         print "<count> <sha256 hex>" of stdin
 * Exit 100 on usage errors, 111 on I/O errors. */
#include "sha256.h"
#include "xorshift.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static int parse_u64(const char *s, uint64_t *v)
{
    uint64_t r = 0;
    if (s == NULL || *s == '\0')
        return -1;
    for (; *s; s++) {
        if (*s < '0' || *s > '9' || r > (UINT64_MAX - 9) / 10)
            return -1;
        r = r * 10 + (uint64_t)(*s - '0');
    }
    *v = r;
    return 0;
}

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static ssize_t read_some(int fd, unsigned char *p, size_t n)
{
    for (;;) {
        ssize_t r = read(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        return r;
    }
}

int main(int argc, char **argv)
{
    static unsigned char buf[65536], want[65536];
    struct xorshift x;
    struct sha256 h;
    uint64_t n = 0, seed = 0;
    char hx[65];

    signal(SIGPIPE, SIG_IGN);
    if (argc == 2 && strcmp(argv[1], "sha256") == 0) {
        uint64_t total = 0;
        sha256_init(&h);
        for (;;) {
            ssize_t r = read_some(0, buf, sizeof buf);
            if (r < 0)
                return 111;
            if (r == 0)
                break;
            sha256_update(&h, buf, (size_t)r);
            total += (uint64_t)r;
        }
        sha256_final_hex(&h, hx);
        printf("%" PRIu64 " %s\n", total, hx);
        return fflush(stdout) == 0 ? 0 : 111;
    }
    if (argc != 4 || parse_u64(argv[2], &n) < 0 || parse_u64(argv[3], &seed) < 0) {
        fprintf(stderr, "usage: gen-verify gen|sum|check N SEED | gen-verify sha256\n");
        return 100;
    }
    xorshift_init(&x, seed);
    sha256_init(&h);
    if (strcmp(argv[1], "gen") == 0 || strcmp(argv[1], "sum") == 0) {
        int gen = argv[1][0] == 'g';
        for (uint64_t left = n; left > 0;) {
            size_t k = left < sizeof buf ? (size_t)left : sizeof buf;
            xorshift_fill(&x, buf, k);
            if (gen && write_all(1, buf, k) < 0)
                return 111;
            sha256_update(&h, buf, k);
            left -= k;
        }
        if (!gen) {
            sha256_final_hex(&h, hx);
            printf("%" PRIu64 " %s\n", n, hx);
            return fflush(stdout) == 0 ? 0 : 111;
        }
        return 0;
    }
    if (strcmp(argv[1], "check") == 0) {
        uint64_t off = 0;
        for (;;) {
            ssize_t r = read_some(0, buf, sizeof buf);
            if (r < 0)
                return 111;
            if (r == 0)
                break;
            size_t k = (size_t)r;
            if (off + k > n) {
                fprintf(stderr, "gen-verify: more than %" PRIu64 " bytes\n", n);
                return 1;
            }
            xorshift_fill(&x, want, k);
            for (size_t i = 0; i < k; i++)
                if (buf[i] != want[i]) {
                    fprintf(stderr, "gen-verify: first difference at byte %" PRIu64 "\n",
                            off + i);
                    return 1;
                }
            off += k;
        }
        if (off != n) {
            fprintf(stderr, "gen-verify: got %" PRIu64 " of %" PRIu64 " bytes\n", off, n);
            return 1;
        }
        return 0;
    }
    fprintf(stderr, "usage: gen-verify gen|sum|check N SEED | gen-verify sha256\n");
    return 100;
}
