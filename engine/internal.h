/* Types shared between the engine's own files; not part of the public API. */
#ifndef UCSPITLS_ENGINE_INTERNAL_H
#define UCSPITLS_ENGINE_INTERNAL_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The front-end entry points below are what the public API
 * (include/ucspitls/engine.h, api.c) is made of. */
/* Exit codes, as UCSPI tools use them. */
#define ENGINE_EXIT_PERMANENT 100 /* usage or configuration error */
#define ENGINE_EXIT_TEMPORARY 111 /* anything that may work on a retry */

enum engine_frontend {
    ENGINE_SERVER, /* tlsserver: host port prog... */
    ENGINE_HANDLE, /* tlsd: prog... on fds 0/1 */
};

struct engine_config;

/* Parses options and the environment for the given front end.  On success
 * returns a configuration (owned by the caller, free with
 * engine_config_free); on error prints one line naming the option and sets
 * *exit_code (100 for usage errors, 0 after --help/-V style requests). */
struct engine_config *engine_config_parse(enum engine_frontend fe, int argc,
                                          char **argv, int *exit_code);

/* Frees a configuration; NULL is fine. */
void engine_config_free(struct engine_config *cfg);

/* tlsserver: starts keyd, loads certificates, binds, then accepts until
 * SIGTERM, forking one locked-in worker per connection.  Returns 0 after
 * SIGTERM, or 111 when start-up fails (a file, the port, keyd). */
int engine_serve(struct engine_config *cfg);

/* tlsd: serves the one connection on fds 0/1.  Returns the app's exit
 * status, or 111 when the engine itself failed. */
int engine_handle(struct engine_config *cfg);


#define ENGINE_VERSION "ucspi-tls/0.1.0"
#define ENGINE_DEFAULT_CHROOT "/run/ucspi-tls/empty"

/* One certificate to serve and the key keyd signs for it.  Index in
 * engine_config.certs == keyd key id. */
struct cert_entry {
    char *cert; /* PEM: certificate, then its chain (owned) */
    char *key;  /* PEM key file; NULL: in the certificate file (owned) */
    char *sni;  /* from $CERTFILE:name; NULL: default or the cert's names */
};

#define ENGINE_MAX_CERTS 1024

struct engine_config {
    enum engine_frontend frontend;
    const char *progname;

    /* what to run */
    char **prog; /* borrowed from argv, NULL-terminated */
    const char *host, *port; /* tlsserver only */
    const char *local_hostname; /* -l: TCPLOCALHOST */

    /* behaviour */
    int delayed;           /* -n: UCSPI-TLS; -N immediate (default) */
    int session_env;       /* -s: session variables in the app env */
    int concurrency;       /* -c */
    int backlog;           /* -b */
    int handshake_timeout_ms; /* -T */
    int idle_timeout_ms;   /* -w */
    int print_port;        /* -1 */
    int verbosity;         /* log level: -q 0, default 1 (errors+status), -v 2 */
    int tcp_half_close;    /* --tcp-half-close */
    int strict_close;      /* -J */
    int nodelay;           /* -D (default) / -d */

    /* the app's ids: -u, -g, -U */
    int set_app_uid, set_app_gid;
    uid_t app_uid;
    gid_t app_gid;

    /* the worker's ids and root (SSL_UID/TLS_UID, SSL_GID/TLS_GID,
     * SSL_CHROOT); resolved at start-up */
    int worker_uid_set, worker_gid_set;
    uid_t worker_uid;
    gid_t worker_gid;
    const char *chroot_dir;

    /* TLS material (environment) */
    const char *certfile, *certchainfile, *keyfile;
    const char *certdir;      /* $CERTDIR / --certdir: one PEM (chain + key) per file */
    struct cert_entry *certs; /* certlist.c: every certificate, default first */
    int ncerts;
    int has_default_cert;     /* certs[0] is $CERTFILE's */
    int sni_strict;           /* --sni-strict: unknown server names are refused */
    /* client certificates: -Z none (default), --client-cert-optional asks,
     * -m requires a valid one, -z also requires it to name the client's
     * address (no DNS is done, so: a subjectAltName IP or a CN equal to
     * TCPREMOTEIP) */
    enum { CLIENT_CERT_NONE, CLIENT_CERT_OPTIONAL, CLIENT_CERT_REQUIRE,
           CLIENT_CERT_MATCH } client_cert;
    const char *cafile, *cadir, *ccafile; /* trust anchors; names sent */
    int verify_depth;                    /* $VERIFYDEPTH */
    int client_cert_pem;                 /* --client-cert-pem: SSL_CLIENT_CERT */
    int proxy;                /* --proxy: a PROXY v1/v2 header comes first */
    const char *rules_file;   /* -x: tcprules cdb, read at every connection */
    int rules_missing_ok;     /* -X: no rules file means allow */
    unsigned maxconip;        /* $MAXCONIP: connections per client address */
    const char *ticket_keys;  /* --ticket-keys: HAProxy tls-ticket-keys file */
    long ticket_lifetime;     /* --ticket-lifetime, seconds (7200) */
    unsigned char alpn[256];  /* --alpn: wire format (length-prefixed names) */
    size_t alpn_len;          /* 0: no ALPN */
    const char *ciphers;      /* CIPHERS: TLS 1.2 list */
    const char *ciphersuites; /* CIPHERSUITES: TLS 1.3 list */
    const char *dhfile;
    int key_password_fd3; /* -3: keyd reads the key's password from fd 3 */

    /* UCSPITLS_BENCH_KEY_IN_WORKER=1: no keyd, the key is loaded into the
     * master (and so every worker).  Only for the benchmark that measures
     * what key isolation costs; logged loudly. */
    int bench_key_in_worker;
};

/* Address of one connection, as the app's environment will show it. */
struct conn_addr {
    int have;      /* 0 when neither env nor socket told us */
    int ipv6;      /* the connection is IPv6 (not v4-mapped) */
    char local_ip[64], local_port[8];
    char remote_ip[64], remote_port[8];
};

struct tls_context;
struct ucspitls_var; /* appkit/ucspitls_app.h */

/* tlsctx.c: the server SSL_CTX and everything it needs, built once in the
 * master before any fork. */
struct tls_context *tlsctx_new(const struct engine_config *cfg, char *err,
                               size_t errlen);
SSL_CTX *tlsctx_ssl_ctx(struct tls_context *t);
/* Master: one handshake (TLS 1.3, or 1.2 with P-256) and a record each way
 * with itself through memory, so that OpenSSL's lazily fetched algorithms
 * and caches are made once here, before the fork, instead of in every
 * worker.  The caller gives the key provider a keyd channel first.  0 or
 * -1 with the reason (harmless: workers then fetch for themselves). */
int tlsctx_warm_up(struct tls_context *t, int tls12, char *err, size_t errlen);
/* Master: rotates the session-ticket key when due; returns the ms until
 * the next rotation, or -1 for never. */
long long tlsctx_rotate_tickets(struct tls_context *t);
/* Whether the kernel does TLS (kTLS), as probed at start-up. */
int tlsctx_ktls(const struct tls_context *t);
/* Reload: the new context keeps the old one's session-ticket keys (unless
 * they come from a file), so that tickets stay valid across a reload. */
void tlsctx_inherit_tickets(struct tls_context *to, const struct tls_context *from);
/* The public key of certificate id (engine_config.certs index, keyd's key
 * id) as loaded into t, or NULL. */
EVP_PKEY *tlsctx_cert_pubkey(const struct tls_context *t, int id);
void tlsctx_free(struct tls_context *t);

/* keystore.c: the one place a private key is read.  password may be NULL
 * (an encrypted key then fails, never prompts). */
EVP_PKEY *keystore_load(const char *keyfile, const char *password, char *err,
                        size_t errlen);
/* Reads a key password from fd (sslserver's -3) into buf, without the final
 * newline.  Returns 0 or -1 with a reason in err. */
int keystore_read_password(int fd, char *buf, size_t cap, char *err, size_t errlen);

/* session.c: the session variables of a finished handshake, encoded as a
 * UCSPI-TLS `Y` block (NAME=value\0...\0).  Returns the length, or -1. */
int session_vars_encode(SSL *ssl, int with_pem, const struct ucspitls_var *extra,
                        size_t nextra, char *buf, size_t cap);
/* Whether a peer-supplied server name is a plain host name, fit for the
 * environment and the log. */
int session_host_name_ok(const char *s);

/* addr.c */
int conn_addr_from_socket(int fd, struct conn_addr *a);
int conn_addr_from_env(struct conn_addr *a);
/* Sets PROTO, TCP*, TCP6*, SSLLOCAL*, SSLREMOTE* in the current
 * environment (call in the app child before exec). */
int conn_addr_export(const struct conn_addr *a, const char *local_hostname);
/* The same variables as a list (values point into a and local_hostname);
 * returns how many, at most ADDR_VARS_MAX. */
#define ADDR_VARS_MAX 16
size_t conn_addr_list(const struct conn_addr *a, const char *local_hostname,
                      struct ucspitls_var *out);
/* Whether name is one of the variables conn_addr_list makes. */
int conn_addr_is_var(const char *name);

/* conn.c: the lowest usable address of the calling thread's stack (its guard page
 * excluded), 0 if unknown: where an idle worker's stack trim stops.  For the
 * main thread glibc reads /proc/self/maps: call it before the lock-in or a
 * fork (the value is kept per thread and inherited by a forked child). */
uintptr_t conn_stack_low(void);

/* conn.c: serves one connection in the current process (the worker);
 * returns the exit code the process should end with. */
int conn_serve(const struct engine_config *cfg, struct tls_context *tls,
               int net_rfd, int net_wfd, const struct conn_addr *addr,
               int keyd_channel);

#ifdef UCSPITLS_TEST_HOOKS
/* testhook.c (test builds only): tries the syscall named by
 * $UCSPITLS_TEST_TRY from inside the locked-in worker; ptrace and kill
 * aim at the master, whose pid was read before the lock-in. */
void engine_test_hook_after_lock_in(pid_t master);
#endif

struct keyd;
/* startup.c: tlsctx_warm_up() for TLS 1.3 and 1.2, keyd signing (a
 * server's master does it after start-up and after each reload; tlsd's one
 * handshake would gain nothing). */
void engine_warm_up(const struct engine_config *cfg, struct tls_context *tls,
                    struct keyd *keyd);
/* startup.c: logging, the workers' root, keyd (started first, before any
 * certificate is read), the TLS context; NULL (after a log line) on
 * failure.  one_shot (tlsd): keyd serves one channel, returned in
 * *channel. */
struct tls_context *engine_startup(const struct engine_config *cfg,
                                   struct keyd *keyd, int one_shot,
                                   int *channel);

/* config.c: a copy of cfg for a reload: the same options and environment,
 * the certificate list made anew (a certificate directory is read again).
 * NULL with a reason in err. */
struct engine_config *engine_config_reread(const struct engine_config *cfg, char *err,
                                           size_t errlen);

/* certlist.c */
int certlist_build(struct engine_config *c, char *err, size_t errlen);
void certlist_free(struct engine_config *c);
const char *certlist_key_file(const struct cert_entry *e);

/* lifecycle.c */
struct keyd;
struct rules_env;
/* Forks the worker for one connection (read rfd, write wfd): a keyd
 * channel for it, the rule's variables (env, may be NULL) for its app,
 * every other fd of the caller closed in it.  Returns the pid, or -1. */
pid_t engine_spawn_worker(const struct engine_config *cfg, struct tls_context *tls,
                          struct keyd *keyd, int rfd, int wfd, const struct rules_env *env);
/* keyd ended: logs it and starts a new one; -1 when that is impossible. */
int keyd_restart(const struct engine_config *cfg, const struct tls_context *tls,
                 struct keyd *keyd, int status);
/* Whether pid is a keyd let go of at a reload (and forgets it). */
int keyd_is_retired(pid_t pid);
/* Reads the configuration's files again into a new keyd and TLS context;
 * on success swaps them in (the old keyd retires).  original is the
 * caller's own configuration, never freed here.  -1 with err: nothing
 * changed. */
int engine_reload(struct engine_config **cfg, const struct engine_config *original,
                  struct keyd *keyd, struct tls_context **tls, char *err, size_t errlen);

/* util.c */
int util_parse_uint(const char *s, unsigned long max, unsigned long *out);
/* Closes every fd but keep[0..n) (sorted in place; -1 entries ignored). */
void util_close_all_but(int *keep, int n);
/* Milliseconds of CLOCK_MONOTONIC. */
long long util_now_ms(void);

#endif
