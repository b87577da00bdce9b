/* libucspitls: the UCSPI-TLS engine behind tlsserver and tlsd, for other
 * UCSPI servers to embed.
 *
 * What the engine gives every connection: a worker process that forks the
 * application with the UCSPI environment (immediate TLS, or delayed TLS
 * with the UCSPI-TLS control protocol), locks itself in (chroot, an
 * unprivileged uid, no capabilities, seccomp), does the TLS handshake with
 * signatures from keyd (the only process that holds the private keys), and
 * relays between the peer and the application until both ends are done.
 *
 * Configuration is the same as tlsserver's and tlsd's: command-line options
 * and environment variables (see tlsserver(1), tlsd(1), ucspitls(3)).
 *
 * Two ways to use it:
 *   - whole programs: ucspitls_engine_run_server() (listen, accept, fork:
 *     tlsserver) and ucspitls_engine_run_handle() (one connection on fds
 *     0/1: tlsd);
 *   - embedded in a server with its own accept loop: ucspitls_engine_start()
 *     once (as root, before accepting), then ucspitls_engine_spawn() for
 *     each accepted connection, and ucspitls_engine_child_exited() from the
 *     server's SIGCHLD handling. */
#ifndef UCSPITLS_ENGINE_PUBLIC_H
#define UCSPITLS_ENGINE_PUBLIC_H

#include <stddef.h>
#include <sys/types.h>

#define UCSPITLS_ENGINE_VERSION "0.1.0"

/* Exit codes, as UCSPI tools use them. */
#define UCSPITLS_EXIT_PERMANENT 100 /* usage or configuration error */
#define UCSPITLS_EXIT_TEMPORARY 111 /* anything that may work on a retry */

enum ucspitls_mode {
    UCSPITLS_MODE_SERVER, /* tlsserver's options: ... host port prog... */
    UCSPITLS_MODE_HANDLE, /* tlsd's options: ... prog... */
};

struct ucspitls_engine; /* opaque */

/* Parses argv (argv[0] is the program name used in log lines) and the
 * environment.  Returns an engine (free with ucspitls_engine_free), or NULL
 * after printing one line on stderr, with *exit_code 100 (usage) or 0
 * (--help). */
struct ucspitls_engine *ucspitls_engine_new(enum ucspitls_mode mode, int argc,
                                            char **argv, int *exit_code);

/* Frees the engine; stops its keyd if it started one.  NULL is fine. */
void ucspitls_engine_free(struct ucspitls_engine *e);

/* tlsserver: starts keyd, loads certificates, binds, accepts until
 * SIGTERM.  Returns 0 after SIGTERM, 111 when start-up fails. */
int ucspitls_engine_run_server(struct ucspitls_engine *e);

/* tlsd: serves the connection on fds 0/1 (or the one systemd passed on fd
 * 3) in this process.  Returns the application's exit status, or 111. */
int ucspitls_engine_run_handle(struct ucspitls_engine *e);

/* Embedding, step 1: starts keyd and loads the certificates (run as root,
 * before accepting connections).  Returns 0, or -1 with a reason in err. */
int ucspitls_engine_start(struct ucspitls_engine *e, char *err, size_t errlen);

/* Embedding, step 2: serves one connection (read on rfd, write on wfd, often
 * the same socket) in a new worker process.  Returns the worker's pid (the
 * caller reaps it; its exit status is the application's) or -1.  The
 * caller keeps its own rfd/wfd and should close them. */
pid_t ucspitls_engine_spawn(struct ucspitls_engine *e, int rfd, int wfd);

/* Embedding: call for every child the server reaps.  Returns 1 when pid
 * was the engine's own keyd (restarted, or retired after a reload; not a
 * connection); -1 when it was keyd and no new one could be started (the
 * reason is logged; every spawn fails until a reload succeeds: tlsserver
 * exits 111 there); else 0. */
int ucspitls_engine_child_exited(struct ucspitls_engine *e, pid_t pid, int status);

/* Embedding: reads certificates, keys and ticket keys again (as SIGHUP does
 * for tlsserver).  Returns 0, or -1 with a reason in err (the running
 * configuration stays). */
int ucspitls_engine_reload(struct ucspitls_engine *e, char *err, size_t errlen);

#endif
