/* bench-sink [BYTES]: reads the benchmark stream (stream.h) from fd 0 until
 * BYTES bytes have arrived (or until EOF without BYTES), compares every
 * byte, then writes one line to fd 1:
 *
 *   bytes=<count> verified=yes
 *   bytes=<count> verified=no bad_offset=<first differing chunk piece>
 *
 * The upload benchmark runs it as the application behind each TLS server;
 * tlsbench waits for that line, so the transfer ends when the application
 * has every byte, whatever the server does with a half-close.
 *
 * Exit codes: 0 verified, 1 content or length differs, 100 usage,
 * 111 read or write error. */
#include "stream.h"

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SINK_BUF (4 * STREAM_CHUNK)

int main(int argc, char **argv)
{
    static struct stream s;
    static unsigned char buf[SINK_BUF];
    uint64_t want = UINT64_MAX, got = 0;
    int64_t bad = -1;
    char line[128];
    int len;

    if (argc > 2 || (argc == 2 && stream_parse_size(argv[1], &want) < 0)) {
        fprintf(stderr, "usage: bench-sink [BYTES]   (BYTES: digits, optional k/m/g suffix)\n");
        return 100;
    }
    signal(SIGPIPE, SIG_IGN);
    stream_init(&s);
    while (got < want) {
        size_t room = want - got < SINK_BUF ? (size_t)(want - got) : SINK_BUF;
        ssize_t n = read(0, buf, room);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "bench-sink: read after %" PRIu64 " bytes: %s\n", got,
                    strerror(errno));
            return 111;
        }
        if (n == 0)
            break;
        if (bad < 0)
            bad = stream_check(&s, got, buf, (size_t)n);
        got += (uint64_t)n;
    }
    if (bad < 0 && want != UINT64_MAX && got != want)
        bad = (int64_t)got;
    if (bad < 0)
        len = snprintf(line, sizeof line, "bytes=%" PRIu64 " verified=yes\n", got);
    else
        len = snprintf(line, sizeof line, "bytes=%" PRIu64 " verified=no bad_offset=%" PRId64 "\n",
                       got, bad);
    if (write(1, line, (size_t)len) != len) {
        fprintf(stderr, "bench-sink: unable to write the report: %s\n", strerror(errno));
        return 111;
    }
    return bad < 0 ? 0 : 1;
}
