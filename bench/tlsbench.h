/* tlsbench: a TLS client that measures a TLS server (bulk transfer, echo
 * latency, handshake rate, memory of idle connections).  Shared
 * declarations of its files:
 *
 *   tlsbench.c       options, usage, exit codes, output lines
 *   tlsbench_net.c   address, TCP connect, STARTTLS (smtp, pop3, imap), TLS
 *                    setup, progress lines
 *   tlsbench_data.c  download, upload, echo over -P parallel connections
 *                    (one thread each)
 *   tlsbench_conn.c  handshake rate (forked clients) and hold (N idle)
 *
 * Exit codes: 0 done, 1 the data or the report did not verify, 100 usage,
 * 111 unable to connect or TLS failure. */
#ifndef UCSPITLS_BENCH_TLSBENCH_H
#define UCSPITLS_BENCH_TLSBENCH_H

#include <netdb.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#define TB_EXIT_OK 0
#define TB_EXIT_VERIFY 1
#define TB_EXIT_USAGE 100
#define TB_EXIT_CONNECT 111

#define TB_ERRLEN 256

enum tb_starttls { TB_STARTTLS_NONE = 0, TB_STARTTLS_SMTP, TB_STARTTLS_POP3, TB_STARTTLS_IMAP };

struct tb_options {
    const char *mode;          /* download, upload, echo, handshake, hold */
    const char *host, *port;   /* borrowed from argv */
    const char *sni;           /* NULL: the host unless it is an address */
    int no_sni;
    const char *ciphersuites;  /* TLS 1.3 suites offered */
    const char *ciphers;       /* TLS 1.2 list offered (with --tls 1.2) */
    int tls_version;           /* TLS1_3_VERSION (default) or TLS1_2_VERSION */
    const char *cafile;        /* verify the server against it; NULL: no check */
    enum tb_starttls starttls;
    int timeout_ms;            /* each connect / read / write */
    int quiet;                 /* only the key=value line */
    int progress;              /* -1 auto (stderr a tty), 0 off, 1 on */
    uint64_t count;            /* -n: bytes or pings per connection, or connections */
    int count_set;
    double seconds;            /* -t: handshake duration or hold time */
    int procs;                 /* -P: handshake client processes */
    int parallel;              /* -P: download/upload/echo connections (threads) */
    int resume;                /* handshake: resume a TLS 1.3 ticket */
    int no_wait;               /* handshake: close right after the handshake */
    int ping;                  /* hold: a 1-byte echo on each connection */
};

/* Everything a connection needs, made once before any connection (and
 * before the handshake clients fork). */
struct tb_client {
    const struct tb_options *opt; /* borrowed */
    SSL_CTX *ctx;                 /* owned */
    struct sockaddr_storage addr;
    socklen_t addrlen;
    const char *sni;              /* borrowed; NULL: no SNI */
};

struct tb_conn {
    int fd;      /* owned; -1 none */
    SSL *ssl;    /* owned; NULL none */
    double handshake_ms;
};

/* tlsbench_net.c */

/* Resolves the address and builds the client context.  Returns 0, or -1
 * with a reason in err (TB_EXIT_CONNECT for resolution, TB_EXIT_USAGE for
 * TLS settings: see *code). */
int tb_client_init(struct tb_client *c, const struct tb_options *opt, int *code,
                   char *err, size_t errlen);
void tb_client_free(struct tb_client *c);

/* Connects, does STARTTLS if asked, then the TLS handshake, offering sess
 * (borrowed, may be NULL).  Returns 0 with conn filled, or -1 with a reason
 * in err and nothing left open.  The plaintext dialog of STARTTLS is bounded
 * as a whole by the timeout; a refusal or a reply that is not the protocol's
 * is an error that quotes what the server said.  Safe to call from several
 * threads at once (c is only read). */
int tb_open(const struct tb_client *c, SSL_SESSION *sess, struct tb_conn *conn,
            char *err, size_t errlen);

/* Sends close_notify (if the connection is still fine) and closes. */
void tb_close(struct tb_conn *conn, int send_close_notify);

/* The plaintext command that ends a session of the --starttls protocol
 * ("QUIT\r\n", "a002 LOGOUT\r\n"), or NULL without STARTTLS. */
const char *tb_starttls_quit(enum tb_starttls proto);

/* The plaintext part of --starttls on a connected socket: the server's
 * greeting, our command(s), its go-ahead, and nothing more from it; the
 * whole dialog bounded by timeout_ms.  0, or -1 with the reason (quoting
 * the server).  fuzz/fuzz_starttls.c drives it with hostile replies. */
int tb_starttls(enum tb_starttls proto, int fd, int timeout_ms, char *err, size_t errlen);

/* The name of a --starttls protocol ("smtp", ...; "none"). */
const char *tb_starttls_name(enum tb_starttls proto);

/* A one-line reason for the last failed SSL call with result rc. */
void tb_ssl_reason(SSL *ssl, int rc, const char *what, char *err, size_t errlen);

/* Monotonic time in seconds. */
double tb_now(void);

/* Progress on stderr, for runs longer than 2 s: on a terminal one line
 * rewritten every 0.5 s, elsewhere a line every 5 s.  -q or --no-progress
 * turn it off; --progress turns it on when stderr is not a terminal. */
struct tb_progress {
    double start, last;
    int printed;
};
void tb_progress_start(struct tb_progress *p);
/* 1 when a progress line is due now (cheap: call it in the loop). */
int tb_progress_due(const struct tb_options *opt, struct tb_progress *p);
void tb_progress_print(struct tb_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Ends the progress line (clears it on a terminal). */
void tb_progress_end(struct tb_progress *p);

/* tlsbench_data.c: each returns an exit code and prints its lines.  With
 * opt->parallel N > 1: N connections opened one after the other, then all
 * started together; -n applies to each; the totals are the sums over the
 * wall time from that start to the end of the last connection. */
int tb_download(const struct tb_client *c);
int tb_upload(const struct tb_client *c);
int tb_echo(const struct tb_client *c);
/* One 1-byte round trip on an open connection (hold --ping): 0 or -1. */
int tb_echo_ping(struct tb_conn *conn, char *err, size_t errlen);

/* tlsbench_conn.c */
int tb_handshake(const struct tb_client *c);
int tb_hold(const struct tb_client *c);

/* tlsbench.c: the results on stdout, flushed: human (one or more lines, the
 * last without its newline; may be NULL, and is left out with -q), then
 * machine, one line of key=value pairs. */
void tb_report(const struct tb_options *opt, const char *human, const char *machine);

#endif
