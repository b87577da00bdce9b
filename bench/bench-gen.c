/* bench-gen BYTES: writes BYTES bytes of the benchmark stream (stream.h) to
 * fd 1, then exits 0.  The download benchmark runs it as the application
 * behind each TLS server; tlsbench checks every byte it receives.
 *
 * Exit codes: 0 all written, 100 usage, 111 write error. */
#include "stream.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Four chunks per write(2): few syscalls, and it fits an enlarged pipe. */
#define GEN_BUF (4 * STREAM_CHUNK)

static int write_all(int fd, const unsigned char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            return -1;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static struct stream s;
    static unsigned char buf[GEN_BUF];
    uint64_t total, off = 0;

    if (argc != 2 || stream_parse_size(argv[1], &total) < 0) {
        fprintf(stderr, "usage: bench-gen BYTES   (BYTES: digits, optional k/m/g suffix)\n");
        return 100;
    }
    signal(SIGPIPE, SIG_IGN); /* a reader that goes away is an error, not a kill */
    stream_init(&s);
    stream_fill(&s, 0, buf, GEN_BUF);
    while (off < total) {
        size_t n = total - off < GEN_BUF ? (size_t)(total - off) : GEN_BUF;

        if (off != 0)
            stream_patch(&s, off, buf, GEN_BUF);
        if (write_all(1, buf, n) < 0) {
            fprintf(stderr, "bench-gen: write after %llu bytes: %s\n",
                    (unsigned long long)off, strerror(errno));
            return 111;
        }
        off += n;
    }
    return 0;
}
