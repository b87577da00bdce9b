/* One connection, in the worker process: spawn the app, lock in, then
 * (at once, or when the app asks over the control socket) handshake and
 * pump.  The worker is the app's parent and ends with its exit status. */
#include "app.h"
#include "internal.h"
#include "keyprov.h"
#include "proxy.h"
#include "ucspitls_app.h"
#include "log.h"
#include "relay.h"
#include "sandbox.h"

#include <errno.h>
#include <malloc.h>
#include <stdint.h>
#include <sys/mman.h>
#include <openssl/x509v3.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* The Y reply: the session variables with room to spare. */
#define Y_REPLY_MAX 16384
/* settle(): the stack kept below its frame for the pump's calls (OpenSSL's
 * record layer and the pump's own frames need well under this), and how
 * far below that is given back (more than the handshake can have used). */
#define SETTLE_STACK_KEEP (16 * 1024)
#define SETTLE_STACK_SPAN (512 * 1024)
#define SETTLE_PAGE 4096
/* Pipes between worker and app: several records in flight per direction. */
#define PIPE_SIZE (1024 * 1024)
/* fds the locked-in worker may hold: 0-2, socket, 2 pipes, ctl, a spare */
#define WORKER_MAX_FDS 16

struct worker {
    const struct engine_config *cfg;
    int net_rfd, net_wfd;
    pid_t app;
    int ktls;                 /* kTLS found at start-up */
    int from_app_fd, to_app_fd; /* the relay's pipe ends, for the sandbox */
    int ctl;          /* delayed: our end of the control socket */
    int gate;         /* immediate: write end of the app's start gate */
    struct relay *relay;
    SSL *ssl;
    const struct conn_addr *addr;
    struct conn_addr proxied; /* --proxy: the address the header gave */
    long long started_ms;
};

static void close_fd(int *fd)
{
    if (*fd >= 0) {
        close(*fd);
        *fd = -1;
    }
}

static void close_pair(int p[2])
{
    close_fd(&p[0]);
    close_fd(&p[1]);
}

/* Waits for the app and turns its end into our exit code. */
static int reap_app(struct worker *w)
{
    int status;

    if (w->app <= 0)
        return ENGINE_EXIT_TEMPORARY;
    while (waitpid(w->app, &status, 0) < 0) {
        if (errno != EINTR)
            return ENGINE_EXIT_TEMPORARY;
    }
    w->app = -1;
    if (WIFEXITED(status))
        return WEXITSTATUS(status);
    log_line(LOG_ERROR, "app %s killed by signal %d", w->cfg->prog[0],
             WTERMSIG(status));
    return ENGINE_EXIT_TEMPORARY;
}

static int write_all(int fd, const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(fd, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        buf += n;
        len -= (size_t)n;
    }
    return 0;
}

static int lock_in(struct worker *w)
{
    const struct engine_config *cfg = w->cfg;
    struct sandbox_spec spec = {
        .role = SANDBOX_ROLE_WORKER,
        .uid = cfg->worker_uid,
        .gid = cfg->worker_gid,
        .chroot_dir = cfg->chroot_dir,
        .max_fds = WORKER_MAX_FDS,
        .app_pid = w->app,
        .allow_ktls = w->ktls,
        .net_rfd = w->net_rfd,
        .net_wfd = w->net_wfd,
        .from_app_fd = w->from_app_fd,
        .to_app_fd = w->to_app_fd,
    };
    char err[256];
    int unprivileged = 0;
#ifdef UCSPITLS_TEST_HOOKS
    /* read now: getppid itself is forbidden once locked in */
    pid_t master = getppid();
#endif

    if (sandbox_lock_in(&spec, &unprivileged, err, sizeof err) < 0) {
        log_line(LOG_ERROR, "worker %d: unable to lock in: %s", (int)getpid(), err);
        return -1;
    }
#ifdef UCSPITLS_TEST_HOOKS
    /* test builds only: prove that forbidden calls kill the worker */
    engine_test_hook_after_lock_in(master);
#endif
    return 0;
}

/* -z: the (verified) client certificate must name the address the client
 * connects from: a subjectAltName IP, or a CN that is that address.  No
 * DNS is done, so names cannot be matched. */
static int client_names_peer(struct worker *w)
{
    X509 *peer = SSL_get0_peer_certificate(w->ssl);
    char cn[64];

    if (peer == NULL || w->addr == NULL || !w->addr->have)
        return 0;
    if (X509_check_ip_asc(peer, w->addr->remote_ip, 0) == 1)
        return 1;
    return X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, cn,
                                     sizeof cn) > 0 &&
           strcmp(cn, w->addr->remote_ip) == 0;
}

/* The client certificate's CN for the log: the peer's text, so only
 * printable characters. */
static const char *client_cn(struct worker *w, char *buf, size_t cap)
{
    X509 *peer = SSL_get0_peer_certificate(w->ssl);

    if (peer == NULL ||
        X509_NAME_get_text_by_NID(X509_get_subject_name(peer), NID_commonName, buf, (int)cap) <= 0)
        return "-";
    for (char *p = buf; *p; p++)
        if ((unsigned char)*p <= 0x20 || (unsigned char)*p >= 0x7f)
            *p = '?';
    return buf;
}

/* --proxy: reads the PROXY header, exactly (never a byte of the TLS stream
 * behind it), within the handshake timeout.  Runs locked in: the header is
 * the first thing read from the network.  Returns 0 with w->proxied
 * filled (the socket's own address for a LOCAL/UNKNOWN header), or -1. */
static int read_proxy_header(struct worker *w)
{
    unsigned char buf[PROXY_MAX_HEADER];
    struct proxy_header h;
    const char *why = NULL;
    size_t len = 0;
    long long deadline = util_now_ms() + (w->cfg->handshake_timeout_ms > 0
                                         ? w->cfg->handshake_timeout_ms : 26000);
    int rc;

    while ((rc = proxy_parse(buf, len, &h, &why)) == PROXY_NEED_MORE) {
        struct pollfd p = {.fd = w->net_rfd, .events = POLLIN, .revents = 0};
        size_t want = proxy_read_size(buf, len);
        long long left = deadline - util_now_ms();
        ssize_t n;

        if (want > sizeof buf - len)
            want = sizeof buf - len;
        if (left <= 0 || poll(&p, 1, (int)left) <= 0) {
            log_line(LOG_ERROR, "tls %d proxy: no complete PROXY header in time", (int)getpid());
            return -1;
        }
        n = read(w->net_rfd, buf + len, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_line(LOG_ERROR, "tls %d proxy: connection closed in the PROXY header",
                     (int)getpid());
            return -1;
        }
        len += (size_t)n;
    }
    if (rc != PROXY_OK) {
        log_line(LOG_ERROR, "tls %d proxy: refused: %s", (int)getpid(), why ? why : "invalid");
        return -1;
    }
    w->proxied = *w->addr;
    if (!h.local) {
        snprintf(w->proxied.remote_ip, sizeof w->proxied.remote_ip, "%s", h.src_ip);
        snprintf(w->proxied.remote_port, sizeof w->proxied.remote_port, "%s", h.src_port);
        snprintf(w->proxied.local_ip, sizeof w->proxied.local_ip, "%s", h.dst_ip);
        snprintf(w->proxied.local_port, sizeof w->proxied.local_port, "%s", h.dst_port);
        w->proxied.ipv6 = h.family == AF_INET6;
        w->proxied.have = 1;
    }
    w->addr = &w->proxied;
    log_line(LOG_INFO, "tls %d proxy: client %s:%s", (int)getpid(),
             w->proxied.remote_ip, w->proxied.remote_port);
    return 0;
}

/* --proxy: the client's address as variables for the app's gate. */
static size_t proxy_vars(struct worker *w, struct ucspitls_var *v)
{
    return w->cfg->proxy ? conn_addr_list(w->addr, w->cfg->local_hostname, v) : 0;
}

static int handshake(struct worker *w)
{
    char err[256];
    int rc;

    /* keyd's signature comes within the handshake's time (26 s without
     * -T), not in a time of its own from whenever the worker asks */
    keyprov_set_deadline(util_now_ms() + (w->cfg->handshake_timeout_ms > 0
                                              ? w->cfg->handshake_timeout_ms
                                              : 26000));
    rc = relay_handshake(w->relay, w->ssl, w->cfg->handshake_timeout_ms > 0
                                               ? w->cfg->handshake_timeout_ms
                                               : 0x7fffffff,
                         err, sizeof err);
    /* One handshake per connection: nothing more will be signed. */
    keyprov_close_channel();
    if (rc != RELAY_DONE) {
        log_line(LOG_ERROR, "tls %d %s", (int)getpid(), err);
        return -1;
    }
    if (w->cfg->client_cert == CLIENT_CERT_MATCH && !client_names_peer(w)) {
        log_line(LOG_ERROR, "tls %d client certificate does not name %s", (int)getpid(),
                 w->addr && w->addr->have ? w->addr->remote_ip : "the client");
        return -1;
    }
    {
        const char *sni = SSL_get_servername(w->ssl, TLSEXT_NAMETYPE_host_name);
        const unsigned char *alpn = NULL;
        unsigned int alpn_len = 0;

        SSL_get0_alpn_selected(w->ssl, &alpn, &alpn_len);
        char cn[128];
        log_line(LOG_INFO, "tls %d accept %s:%s sni=%s alpn=%.*s client=%s %s %lld ms",
                 (int)getpid(), SSL_get_version(w->ssl), SSL_get_cipher_name(w->ssl),
                 sni == NULL ? "-" : session_host_name_ok(sni) ? sni : "(invalid)",
                 alpn_len > 0 ? (int)alpn_len : 1, alpn_len > 0 ? (const char *)alpn : "-",
                 client_cn(w, cn, sizeof cn),
                 SSL_session_reused(w->ssl) ? "resumed" : "full",
                 util_now_ms() - w->started_ms);
    }
    return 0;
}

/* The pump has been idle for RELAY_IDLE_MS (a connection that may idle
 * for hours): give back what only the handshake and earlier traffic
 * needed.  The heap's free pages go back to the kernel (malloc_trim), and
 * so does the stack below this frame, which the handshake used (OpenSSL
 * runs deep) and an idle pump does not: those pages would otherwise stay
 * private to every idle worker.  Both are only a hint: anything touched
 * again comes back as zero-filled pages.  Short connections never get
 * here, so they pay nothing for it. */
static void settle(void *unused)
{
    unsigned char *sp = __builtin_frame_address(0);
    uintptr_t top = ((uintptr_t)sp - SETTLE_STACK_KEEP) & ~(uintptr_t)(SETTLE_PAGE - 1);
    uintptr_t low = conn_stack_low();

    (void)unused;
    malloc_trim(0);
    /* Only within this thread's own stack: on the main thread the 512 KiB
     * lie in the stack or the gap the kernel keeps below it (madvise skips
     * what is not mapped, and says ENOMEM, which does not matter); on an
     * embedder's thread stack, low keeps it off whatever lies below. */
    if (low == 0)
        return;
    low = top > SETTLE_STACK_SPAN && top - SETTLE_STACK_SPAN > low ? top - SETTLE_STACK_SPAN : low;
    if (top > low)
        (void)madvise((void *)low, top - low, MADV_DONTNEED);
}

uintptr_t conn_stack_low(void)
{
    static __thread uintptr_t low;
    static __thread int known;

    if (!known) {
        pthread_attr_t a;
        void *addr;
        size_t size, guard = 0;

        known = 1;
        if (pthread_getattr_np(pthread_self(), &a) == 0) {
            if (pthread_attr_getstack(&a, &addr, &size) == 0 &&
                pthread_attr_getguardsize(&a, &guard) == 0)
                low = ((uintptr_t)addr + guard + SETTLE_PAGE - 1) & ~(uintptr_t)(SETTLE_PAGE - 1);
            pthread_attr_destroy(&a);
        }
    }
    return low;
}

static void pump(struct worker *w)
{
    struct relay_stats st;
    char err[256] = "";
    int rc = relay_pump(w->relay, w->ssl, &st, err, sizeof err);

    if (rc != RELAY_DONE)
        log_line(LOG_ERROR, "tls %d ended: %s", (int)getpid(), err);
    log_line(LOG_INFO, "tls %d done %s to-peer %llu to-app %llu%s%s%s", (int)getpid(),
             relay_result_name(rc), (unsigned long long)st.bytes_to_peer,
             (unsigned long long)st.bytes_to_app,
             st.peer_closed ? " peer-closed" : "", st.ktls_tx ? " ktls-tx" : "",
             st.ktls_rx ? " ktls-rx" : "");
}

/* Sends the handshake's variables (and extra ones) to the app on fd: the
 * gate in immediate mode, the control socket after 'Y'.  The block is on
 * the heap, not the stack, so that its pages go back in settle().  0, or
 * -1 if they cannot be encoded or sent. */
static int send_vars(struct worker *w, int fd, const struct ucspitls_var *extra,
                     size_t nextra)
{
    char *block = malloc(Y_REPLY_MAX);
    int len = block == NULL ? -1
                            : session_vars_encode(w->ssl, w->cfg->client_cert_pem, extra,
                                                  nextra, block, Y_REPLY_MAX);
    int rc = len < 0 || write_all(fd, block, (size_t)len) < 0 ? -1 : 0;

    if (len > 0)
        OPENSSL_cleanse(block, (size_t)len);
    free(block);
    return rc;
}

/* Immediate TLS: handshake, then let the app start. */
static int run_immediate(struct worker *w)
{
    int rc;

    if (handshake(w) < 0) {
        close_fd(&w->gate); /* empty gate: the app child exits unstarted */
        relay_free(w->relay);
        w->relay = NULL;
        reap_app(w);
        return ENGINE_EXIT_TEMPORARY;
    }
    {
        struct ucspitls_var addr[ADDR_VARS_MAX];
        size_t n = proxy_vars(w, addr);
        rc = send_vars(w, w->gate, addr, n);
    }
    if (rc < 0) {
        log_line(LOG_ERROR, "tls %d unable to start the app", (int)getpid());
        close_fd(&w->gate);
        relay_free(w->relay);
        w->relay = NULL;
        reap_app(w);
        return ENGINE_EXIT_TEMPORARY;
    }
    close_fd(&w->gate);
    pump(w);
    return reap_app(w);
}

/* Delayed TLS: the app speaks plaintext on the socket until it writes a
 * command on the control socket (DESIGN §4). */
static int run_delayed(struct worker *w)
{
    char cmd = 0;
    ssize_t n;

    for (;;) {
        n = read(w->ctl, &cmd, 1);
        if (n < 0 && errno == EINTR)
            continue;
        break;
    }
    if (n != 1 || (cmd != 'y' && cmd != 'Y')) {
        if (n == 1)
            log_line(LOG_ERROR, "tls %d unknown control command 0x%02x: no TLS",
                     (int)getpid(), (unsigned char)cmd);
        /* Declined (ctl closed) or refused: the app goes on in plaintext;
         * the worker lets go of the socket and the pipes and waits. */
        close_fd(&w->ctl);
        relay_free(w->relay);
        w->relay = NULL;
        if (w->net_wfd != w->net_rfd)
            close_fd(&w->net_wfd);
        close_fd(&w->net_rfd);
        w->net_wfd = -1;
        return reap_app(w);
    }
    w->started_ms = util_now_ms();
    if (handshake(w) < 0) {
        /* ctl EOF with no data, both pipes closed; the app is not killed. */
        close_fd(&w->ctl);
        relay_free(w->relay);
        w->relay = NULL;
        return reap_app(w);
    }
    if (cmd == 'Y') {
        if (send_vars(w, w->ctl, NULL, 0) < 0) {
            /* The app would read an empty reply as a failed handshake and
             * drop the pipes: end the connection the same way here. */
            log_line(LOG_ERROR, "tls %d unable to send the Y reply", (int)getpid());
            close_fd(&w->ctl);
            relay_free(w->relay);
            w->relay = NULL;
            return reap_app(w);
        }
    }
    close_fd(&w->ctl);
    pump(w);
    return reap_app(w);
}

/* --proxy: the header first; a connection without a valid one is refused
 * (the app never starts).  In delayed mode the app starts now, with the
 * header's address; in immediate mode after the handshake. */
static int start_after_proxy(struct worker *w)
{
    struct ucspitls_var v[ADDR_VARS_MAX];
    char block[2048];
    size_t n, len = 0;

    if (read_proxy_header(w) < 0)
        return -1;
    if (!w->cfg->delayed)
        return 0;
    n = proxy_vars(w, v);
    if (ucspitls_vars_encode(v, n, block, sizeof block, &len) != 0 ||
        write_all(w->gate, block, len) < 0)
        return -1;
    close_fd(&w->gate);
    return 0;
}

int conn_serve(const struct engine_config *cfg, struct tls_context *tls,
               int net_rfd, int net_wfd, const struct conn_addr *addr,
               int keyd_channel)
{
    struct worker w = {
        .cfg = cfg, .net_rfd = net_rfd, .net_wfd = net_wfd, .app = -1,
        .ctl = -1, .gate = -1, .relay = NULL, .ssl = NULL, .addr = addr,
        .from_app_fd = -1, .to_app_fd = -1,
        .started_ms = util_now_ms(),
    };
    int down[2] = {-1, -1}, up[2] = {-1, -1}, gate[2] = {-1, -1};
    int ctl[2] = {-1, -1};
    struct app_fds fds;
    struct relay_config rc;
    int one = 1, code = ENGINE_EXIT_TEMPORARY;

    /* for settle(), while /proc can still be read (a no-op in a worker
     * whose parent asked already) */
    (void)conn_stack_low();
    /* Signatures for this connection's handshake come from keyd over this
     * channel (by the handshake's deadline, set when it starts). */
    keyprov_set_channel(keyd_channel);
    /* A write to a vanished peer or app must be an error, not a signal. */
    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    /* Interactive protocols (SMTP) must not wait on Nagle. */
    if (cfg->nodelay)
        setsockopt(net_wfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    if (pipe2(down, O_CLOEXEC) < 0 || pipe2(up, O_CLOEXEC) < 0 ||
        ((!cfg->delayed || cfg->proxy) && pipe2(gate, O_CLOEXEC) < 0) ||
        (cfg->delayed && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl) < 0)) {
        log_line(LOG_ERROR, "unable to create pipes: %s", strerror(errno));
        goto out;
    }
    fcntl(down[1], F_SETPIPE_SZ, PIPE_SIZE);
    fcntl(up[0], F_SETPIPE_SZ, PIPE_SIZE);

    memset(&fds, 0, sizeof fds);
    fds.plain_in = down[0];
    fds.plain_out = up[1];
    fds.gate = gate[0];
    fds.net_rfd = net_rfd;
    fds.net_wfd = net_wfd;
    fds.ctl = ctl[1];
    fds.read_pipe = down[0];
    fds.write_pipe = up[1];
    fds.worker_ends[0] = down[1];
    fds.worker_ends[1] = up[0];
    fds.worker_ends[2] = gate[1];
    fds.worker_ends[3] = ctl[0];
    fds.n_worker_ends = 4;
    w.app = app_spawn(cfg, addr, &fds);
    if (w.app < 0) {
        log_line(LOG_ERROR, "unable to fork the app: %s", strerror(errno));
        goto out;
    }
    /* The app's ends live in the app now. */
    close_fd(&down[0]);
    close_fd(&up[1]);
    close_fd(&gate[0]);
    close_fd(&ctl[1]);
    w.gate = gate[1];
    gate[1] = -1;
    w.ctl = ctl[0];
    ctl[0] = -1;

    /* Everything the sandbox would forbid happens now: allocations of the
     * per-connection state, the SSL object. */
    rc = (struct relay_config){
        .net_rfd = net_rfd, .net_wfd = net_wfd,
        .from_app_fd = up[0], .to_app_fd = down[1],
        .tcp_half_close = cfg->tcp_half_close,
        .ktls = tlsctx_ktls(tls),
        .idle_timeout_ms = cfg->idle_timeout_ms,
        .on_idle = settle,
    };
    w.relay = relay_new(&rc);
    if (w.relay == NULL) {
        log_line(LOG_ERROR, "out of memory");
        goto out_app;
    }
    w.ktls = tlsctx_ktls(tls);
    w.from_app_fd = up[0];
    w.to_app_fd = down[1];
    up[0] = down[1] = -1; /* owned by the relay now */
    w.ssl = SSL_new(tlsctx_ssl_ctx(tls));
    if (w.ssl == NULL || SSL_set_rfd(w.ssl, net_rfd) != 1 ||
        SSL_set_wfd(w.ssl, net_wfd) != 1) {
        log_line(LOG_ERROR, "unable to create the TLS session");
        goto out_app;
    }
    if (lock_in(&w) < 0)
        goto out_app;
    if (cfg->proxy && start_after_proxy(&w) < 0)
        goto out_app;
    code = cfg->delayed ? run_delayed(&w) : run_immediate(&w);
    goto out;

out_app:
    /* Could not serve: release the app (it sees EOF / an empty gate). */
    close_fd(&w.gate);
    close_fd(&w.ctl);
    relay_free(w.relay);
    w.relay = NULL;
    close_pair(down);
    close_pair(up);
    reap_app(&w);
    code = ENGINE_EXIT_TEMPORARY;
out:
    relay_free(w.relay);
    SSL_free(w.ssl);
    close_fd(&w.gate);
    close_fd(&w.ctl);
    close_pair(down);
    close_pair(up);
    close_pair(gate);
    close_pair(ctl);
    return code;
}
