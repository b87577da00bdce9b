/* libFuzzer target: tlsbench's plaintext STARTTLS dialog (tb_starttls in
 * bench/tlsbench_net.c), which reads whatever the server under test sends:
 * greeting, multi-line and tagged replies, the go-ahead.  Byte 0 picks the
 * protocol (smtp, pop3, imap), the rest is everything the server says, then
 * it closes its side.  The dialog must end on its own (the server is gone,
 * so never by the timeout), with 0 or -1 and a reason that is a non-empty,
 * terminated string; success needs the server to have said something. */
#include "tlsbench.h"

#include <signal.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define TIMEOUT_MS 5000

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum tb_starttls protos[] = {TB_STARTTLS_SMTP, TB_STARTTLS_POP3,
                                              TB_STARTTLS_IMAP};
    static int once;
    char err[512];
    int sv[2], rc;
    double t0;

    if (!once) {
        signal(SIGPIPE, SIG_IGN); /* our commands may meet a closed server */
        once = 1;
    }
    if (size < 1 || size > 65536)
        return 0;
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    /* the whole server side, then its end of the conversation */
    if (size > 1 && write(sv[1], data + 1, size - 1) != (ssize_t)(size - 1))
        abort();
    shutdown(sv[1], SHUT_WR);
    memset(err, 'x', sizeof err);
    t0 = tb_now();
    rc = tb_starttls(protos[data[0] % 3], sv[0], TIMEOUT_MS, err, sizeof err);
    if (rc != 0 && rc != -1)
        abort();
    if (tb_now() - t0 > TIMEOUT_MS / 2000.0)
        abort(); /* waited for a server that had already closed */
    if (rc == -1 && (memchr(err, '\0', sizeof err) == NULL || err[0] == '\0'))
        abort();
    if (rc == 0 && size < 2)
        abort(); /* a go-ahead from a server that said nothing */
    close(sv[0]);
    close(sv[1]);
    return 0;
}
