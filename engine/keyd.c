/* keyd (see keyd.h).  The master side starts it and hands it channels;
 * the keyd side loads keys, locks in and serves. */
#include "keyd.h"
#include "keyd_proto.h"
#include "log.h"
#include "sandbox.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define STATUS_MAX 512
#define KEYD_NICE_BOOST 10 /* nice steps above the process that started keyd */
#define START_TIMEOUT_MS 10000 /* keyd's own limit; the master waits 2 s more */

struct channel {
    int fd;
    int signatures; /* answered so far on this channel */
};

struct keyd_key {
    EVP_PKEY *key;
    enum keyd_key_kind kind;
    /* DigestSignInit done once for each scheme that fits the key (the
     * algorithm fetches, the padding set-up), indexed by scheme: a
     * signature copies one instead of initialising afresh.  NULL: the
     * scheme does not fit the key, or its context cannot be copied
     * (Ed25519 has no digest) and is initialised for each signature. */
    EVP_MD_CTX *prepared[KEYD_SCHEME_END];
};

struct keyd_state {
    struct keyd_key *keys; /* index == key id == engine_config.certs index */
    int nkeys;
    int ctl;
    int one_shot;
    struct channel *ch;
    int nch, maxch;
    unsigned char req[KEYD_REQ_MAX + 1];
    unsigned char ans[KEYD_ANS_MAX];
    unsigned char sig[KEYD_SIG_MAX];
    EVP_MD_CTX *scratch; /* the copy a signature is made with */
};

/* ---------------- keyd side ---------------- */

static void report(int ctl, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void report(int ctl, const char *fmt, ...)
{
    char msg[STATUS_MAX];
    va_list ap;
    int n;

    va_start(ap, fmt);
    n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n >= sizeof msg)
        n = sizeof msg - 1;
    if (send(ctl, msg, (size_t)n, MSG_NOSIGNAL) < 0) {
    }
}

/* Reads one key and proves it belongs to its certificate, so that a
 * mismatch fails at start-up, not at the first client: to in_use (the
 * public key of the certificate the master serves with it) or, when NULL,
 * to its certificate file. */
static int load_key(struct keyd_key *k, const struct cert_entry *e, EVP_PKEY *in_use,
                    const char *password, char *err, size_t errlen)
{
    const char *file = certlist_key_file(e);
    FILE *f;
    X509 *cert;

    k->key = keystore_load(file, password, err, errlen);
    if (k->key == NULL)
        return -1;
    if (EVP_PKEY_is_a(k->key, "RSA"))
        k->kind = KEYD_KIND_RSA;
    else if (EVP_PKEY_is_a(k->key, "EC"))
        k->kind = KEYD_KIND_EC;
    else if (EVP_PKEY_is_a(k->key, "ED25519"))
        k->kind = KEYD_KIND_ED25519;
    else {
        snprintf(err, errlen, "%s: unsupported key type %s (RSA, EC and Ed25519 are)",
                 file, EVP_PKEY_get0_type_name(k->key));
        return -1;
    }
    if (in_use != NULL) {
        if (EVP_PKEY_eq(in_use, k->key) == 1)
            return 0;
        ERR_clear_error();
        snprintf(err, errlen, "private key in %s does not match the certificate in use "
                 "(loaded from %s)", file, e->cert);
        return -1;
    }
    f = fopen(e->cert, "re");
    if (f == NULL) {
        snprintf(err, errlen, "unable to read certificate file %s: %s", e->cert,
                 strerror(errno));
        return -1;
    }
    cert = PEM_read_X509(f, NULL, NULL, NULL);
    fclose(f);
    if (cert == NULL) {
        ERR_clear_error();
        snprintf(err, errlen, "no usable certificate in %s", e->cert);
        return -1;
    }
    if (EVP_PKEY_eq(X509_get0_pubkey(cert), k->key) != 1) {
        X509_free(cert);
        ERR_clear_error();
        snprintf(err, errlen, "private key in %s does not match the certificate in %s",
                 file, e->cert);
        return -1;
    }
    X509_free(cert);
    return 0;
}

/* Every key of the list, in list order.  -3's password is read once and
 * tried on every encrypted key. */
static int load_keys(struct keyd_state *s, const struct engine_config *cfg,
                     const struct tls_context *in_use, char *err, size_t errlen)
{
    char password[1024];
    int rc = 0;

    s->keys = calloc((size_t)cfg->ncerts, sizeof *s->keys);
    if (s->keys == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    if (cfg->key_password_fd3 &&
        keystore_read_password(3, password, sizeof password, err, errlen) < 0)
        return -1;
    for (int i = 0; i < cfg->ncerts && rc == 0; i++) {
        rc = load_key(&s->keys[i], &cfg->certs[i], tlsctx_cert_pubkey(in_use, i),
                      cfg->key_password_fd3 ? password : NULL, err, errlen);
        if (rc == 0)
            s->nkeys++;
    }
    OPENSSL_cleanse(password, sizeof password);
    return rc;
}

/* DigestSignInit for one scheme: digest, and RSA padding (PSS with the
 * salt as long as the hash, as TLS wants, or PKCS#1 v1.5). */
static int prepare(EVP_MD_CTX *m, const struct keyd_key *k, uint8_t scheme)
{
    EVP_PKEY_CTX *pctx = NULL;
    int ok = EVP_DigestSignInit_ex(m, &pctx, keyd_scheme_digest(scheme), NULL, NULL,
                                   k->key, NULL) == 1;

    if (ok && k->kind == KEYD_KIND_RSA) {
        if (keyd_scheme_is_pss(scheme))
            ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) == 1 &&
                 EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, RSA_PSS_SALTLEN_DIGEST) == 1;
        else
            ok = EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) == 1;
    }
    return ok;
}

/* Hashes, pads and signs: the one place a private key is used.  The
 * caller has checked that the scheme fits the key. */
static int sign(struct keyd_state *s, const struct keyd_key *k,
                const struct keyd_request *req, size_t *len)
{
    EVP_MD_CTX *p = req->scheme < KEYD_SCHEME_END ? k->prepared[req->scheme] : NULL;
    int ok;

    *len = sizeof s->sig;
    ok = p != NULL ? EVP_MD_CTX_copy_ex(s->scratch, p) == 1
                   : prepare(s->scratch, k, req->scheme);
    /* the copy is used once: no need for DigestSignFinal to copy it again */
    if (ok)
        EVP_MD_CTX_set_flags(s->scratch, EVP_MD_CTX_FLAG_FINALISE);
    ok = ok && EVP_DigestSign(s->scratch, s->sig, len, req->tbs, req->tbs_len) == 1;
    EVP_MD_CTX_reset(s->scratch);
    ERR_clear_error();
    return ok ? 0 : -1;
}

/* Prepares a context for every scheme that fits the key and signs once
 * with each: every algorithm is fetched and the random generator seeded
 * while files can still be opened (the locked-in keyd can do neither).
 * tlsd's keyd signs once in its life: it warms up the key's first scheme
 * only (the key's algorithm fetched, the generator seeded), and a request
 * for another scheme prepares its context then (a fetch from the built-in
 * providers opens no file); for RSA that spares five signatures. */
static int warm_up(struct keyd_state *s, struct keyd_key *k)
{
    unsigned char tbs[64 + 33 + 1 + 32];
    struct keyd_request req = {0, 0, sizeof tbs, tbs};
    size_t len;
    int any = 0;

    if (s->scratch == NULL && (s->scratch = EVP_MD_CTX_new()) == NULL)
        return -1;
    memset(tbs, 0x20, 64);
    memcpy(tbs + 64, "TLS 1.3, server CertificateVerify", 33);
    memset(tbs + 97, 0, sizeof tbs - 97);
    for (uint8_t scheme = 1; scheme < KEYD_SCHEME_END; scheme++) {
        if (!keyd_scheme_allowed(scheme, k->kind, KEYD_SHAPE_TLS12_SKE))
            continue; /* (every scheme TLS 1.3 allows, TLS 1.2 allows too) */
        k->prepared[scheme] = EVP_MD_CTX_new();
        if (k->prepared[scheme] == NULL || !prepare(k->prepared[scheme], k, scheme))
            return -1;
        if (EVP_MD_CTX_copy_ex(s->scratch, k->prepared[scheme]) != 1) {
            EVP_MD_CTX_free(k->prepared[scheme]);
            k->prepared[scheme] = NULL;
        }
        EVP_MD_CTX_reset(s->scratch);
        ERR_clear_error();
        req.scheme = scheme;
        if (sign(s, k, &req, &len) < 0)
            return -1;
        any = 1;
        if (s->one_shot)
            break;
    }
    OPENSSL_cleanse(s->sig, sizeof s->sig);
    return any ? 0 : -1;
}

static void drop_channel(struct keyd_state *s, int i)
{
    close(s->ch[i].fd);
    s->ch[i] = s->ch[--s->nch];
}

/* One request from channel i (revents: what poll saw on it).  Anything but
 * a well-formed request for a TLS handshake signature, within the
 * channel's allowance, ends the channel. */
static void serve_request(struct keyd_state *s, int i, short revents)
{
    struct keyd_request req;
    ssize_t n = recv(s->ch[i].fd, s->req, sizeof s->req, MSG_TRUNC | MSG_DONTWAIT);
    const char *why = NULL;
    enum keyd_shape shape;
    size_t len = 0;
    int out;

    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return;
    /* 0 is also an empty packet: refused and logged below, unless the
     * worker has hung up */
    if (n < 0 || (n == 0 && (revents & POLLHUP))) {
        drop_channel(s, i); /* the worker is gone */
        return;
    }
    if ((size_t)n > KEYD_REQ_MAX || keyd_request_decode(s->req, (size_t)n, &req) < 0)
        why = "malformed request";
    else if (req.key_id >= s->nkeys)
        why = "unknown key id";
    else if ((shape = keyd_tbs_shape(req.tbs, req.tbs_len)) == KEYD_SHAPE_NONE)
        why = "not a TLS handshake signature input";
    else if (!keyd_scheme_allowed(req.scheme, s->keys[req.key_id].kind, shape))
        why = "scheme not allowed for this key and input";
    else if (s->ch[i].signatures >= KEYD_SIGNATURES_PER_CHANNEL)
        why = "signature allowance of the connection used up";
    else if (sign(s, &s->keys[req.key_id], &req, &len) < 0)
        why = "signing failed";
    if (why != NULL) {
        log_line(LOG_ERROR, "keyd: refused a request (%zd bytes): %s", n, why);
        out = keyd_answer_encode(0, NULL, 0, s->ans, sizeof s->ans);
        if (out > 0 && send(s->ch[i].fd, s->ans, (size_t)out, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) {
        }
        drop_channel(s, i);
        return;
    }
    out = keyd_answer_encode(1, s->sig, len, s->ans, sizeof s->ans);
    OPENSSL_cleanse(s->sig, sizeof s->sig);
    /* A channel whose allowance is used up is ended at once: a further
     * request cannot even be sent, and keyd is not woken again for the
     * worker's hang-up. */
    if (out < 0 || send(s->ch[i].fd, s->ans, (size_t)out, MSG_NOSIGNAL | MSG_DONTWAIT) != out ||
        ++s->ch[i].signatures >= KEYD_SIGNATURES_PER_CHANNEL)
        drop_channel(s, i);
}

/* Channels handed over by the master: up to KEYD_POOL fds in one
 * SCM_RIGHTS message.  Returns -1 when the master is gone. */
static int accept_channels(struct keyd_state *s)
{
    char byte;
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(KEYD_POOL * sizeof(int))];
    } u;
    struct msghdr msg = {0};
    struct cmsghdr *c;
    ssize_t n;

    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = sizeof u.buf;
    n = recvmsg(s->ctl, &msg, MSG_CMSG_CLOEXEC | MSG_DONTWAIT);
    if (n < 0 && (errno == EINTR || errno == EAGAIN))
        return 0;
    if (n <= 0)
        return -1;
    for (c = CMSG_FIRSTHDR(&msg); c != NULL; c = CMSG_NXTHDR(&msg, c)) {
        size_t nfd;

        if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS ||
            c->cmsg_len < CMSG_LEN(0))
            continue;
        nfd = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
        for (size_t j = 0; j < nfd; j++) {
            int fd;

            memcpy(&fd, CMSG_DATA(c) + j * sizeof(int), sizeof fd);
            if (s->nch == s->maxch) {
                log_line(LOG_ERROR, "keyd: too many channels (%d), refusing one", s->maxch);
                close(fd);
                continue;
            }
            s->ch[s->nch].fd = fd;
            s->ch[s->nch].signatures = 0;
            s->nch++;
        }
    }
    return 0;
}

static int serve(struct keyd_state *s)
{
    struct pollfd *p = calloc((size_t)s->maxch + 1, sizeof *p);

    if (p == NULL)
        return ENGINE_EXIT_TEMPORARY;
    for (;;) {
        int n = 0, nch = s->nch;

        /* tlsd's keyd ends with its one channel; a keyd the master has let
         * go of (reload, or the master gone) serves the channels it has,
         * then ends */
        if ((s->one_shot || s->ctl < 0) && s->nch == 0)
            break;
        p[n].fd = s->ctl; /* -1: ignored by poll */
        p[n++].events = POLLIN;
        for (int i = 0; i < nch; i++) {
            p[n].fd = s->ch[i].fd;
            p[n++].events = POLLIN;
        }
        if (poll(p, (nfds_t)n, -1) < 0) {
            if (errno == EINTR)
                continue;
            break;
        }
        /* channels first, from the end, since dropping one moves the last */
        for (int i = nch - 1; i >= 0; i--)
            if (p[1 + i].revents)
                serve_request(s, i, p[1 + i].revents);
        if (p[0].revents && s->ctl >= 0 && accept_channels(s) < 0) {
            close(s->ctl);
            s->ctl = -1;
        }
    }
    free(p);
    return 0;
}

/* keyd stuck before it is ready (a key file that is a FIFO, a -3 pipe that
 * never ends): it says so and exits by itself, so that no root keyd is left
 * behind where nobody would kill it (tlsd's is init's child).  A read that
 * sleeps uninterruptibly (a hard NFS mount) only SIGKILL ends. */
static int alarm_ctl = -1;

static void on_alarm(int sig)
{
    static const char msg[] = "error: keyd not ready within 10 s (waiting for a key file, or a "
                              "-3 password?)";
    (void)sig;
    (void)!send(alarm_ctl, msg, sizeof msg - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
    _exit(ENGINE_EXIT_TEMPORARY);
}

static void keyd_main(const struct engine_config *cfg, const struct tls_context *in_use,
                      int ctl, int channel, int maxch)
{
    static struct keyd_state s;
    struct sandbox_spec spec = {
        .role = SANDBOX_ROLE_KEYD,
        .uid = cfg->worker_uid,
        .gid = cfg->worker_gid,
        .chroot_dir = cfg->chroot_dir,
        .max_fds = maxch + 8,
        .app_pid = -1,
        .allow_ktls = 0,
    };
    char err[STATUS_MAX - 16];
    int devnull, unprivileged;

    signal(SIGPIPE, SIG_IGN);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_IGN); /* the master decides; Ctrl-C reaches it */
    alarm_ctl = ctl;
    signal(SIGALRM, on_alarm);
    {
        /* a mask inherited from whoever started us must not hold the
         * alarm back (nor anything else: keyd blocks no signal) */
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
    }
    alarm(START_TIMEOUT_MS / 1000);
    /* Every handshake waits for keyd (about 0.1 ms of work for ECDSA):
     * a higher priority than the workers' lets it answer as soon as it
     * is woken instead of at its turn on busy cores.  Relative to the
     * nice value the server was started with, so an operator's `nice`
     * still moves keyd with the rest; where it may not (not root), keyd
     * keeps that value. */
    {
        int base;
        errno = 0;
        base = getpriority(PRIO_PROCESS, 0);
        if (errno == 0)
            (void)setpriority(PRIO_PROCESS, 0,
                              base - KEYD_NICE_BOOST < -20 ? -20 : base - KEYD_NICE_BOOST);
    }
    /* tlsd's fds 0/1 are the client's connection: not keyd's business */
    devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    if (devnull < 0 || dup2(devnull, 0) < 0 || dup2(devnull, 1) < 0) {
        report(ctl, "error: /dev/null: %s", strerror(errno));
        _exit(ENGINE_EXIT_TEMPORARY);
    }
    close(devnull);
    /* A restarted keyd is forked from a running master: drop its listener
     * and everything else that is not keyd's. */
    {
        int keep[6] = {0, 1, 2, 3, ctl, channel};
        util_close_all_but(keep, 6);
    }
    if (!cfg->key_password_fd3 && ctl != 3 && channel != 3)
        close(3); /* with -3, fd 3 is the password, read in load_key */
    s.ctl = ctl;
    s.one_shot = channel >= 0;
    s.maxch = maxch;
    s.ch = calloc((size_t)maxch, sizeof *s.ch);
    if (s.ch == NULL) {
        report(ctl, "error: out of memory");
        _exit(ENGINE_EXIT_TEMPORARY);
    }
    if (channel >= 0) {
        s.ch[0].fd = channel;
        s.nch = 1;
    }
    if (load_keys(&s, cfg, in_use, err, sizeof err) < 0) {
        report(ctl, "error: %s", err);
        _exit(ENGINE_EXIT_TEMPORARY);
    }
    if (cfg->key_password_fd3 && ctl != 3 && channel != 3)
        close(3);
    for (int i = 0; i < s.nkeys; i++) {
        if (warm_up(&s, &s.keys[i]) < 0) {
            report(ctl, "error: the key in %s cannot sign",
                   certlist_key_file(&cfg->certs[i]));
            _exit(ENGINE_EXIT_TEMPORARY);
        }
    }
    alarm(0); /* ready but for the lock-in (no alarm once locked in) */
    if (sandbox_lock_in(&spec, &unprivileged, err, sizeof err) < 0) {
        report(ctl, "error: keyd lock-in: %s", err);
        _exit(ENGINE_EXIT_TEMPORARY);
    }
    report(ctl, "ok");
    _exit(serve(&s));
}

/* ---------------- master side ---------------- */

int keyd_spawn(const struct engine_config *cfg, const struct tls_context *in_use,
               int one_shot, struct keyd *k, int *channel, char *err, size_t errlen)
{
    int ctl[2] = {-1, -1}, ch[2] = {-1, -1};
    pid_t pid;

    k->pid = -1;
    k->ctl = -1;
    k->npool = 0;
    if (channel != NULL)
        *channel = -1;
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ctl) < 0 ||
        (one_shot && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, ch) < 0)) {
        snprintf(err, errlen, "keyd: socketpair: %s", strerror(errno));
        goto fail;
    }
    pid = fork();
    if (pid < 0) {
        snprintf(err, errlen, "keyd: fork: %s", strerror(errno));
        goto fail;
    }
    if (pid == 0) {
        close(ctl[0]);
        if (ch[0] >= 0)
            close(ch[0]);
        /* tlsd: keyd must not be the child of a process that will be
         * locked in (it could never reap it): fork once more and let the
         * intermediate exit, so that init adopts keyd. */
        if (one_shot) {
            pid_t grandchild = fork();
            if (grandchild != 0)
                _exit(grandchild < 0 ? ENGINE_EXIT_TEMPORARY : 0);
        }
        keyd_main(cfg, in_use, ctl[1], ch[1],
                  one_shot ? 1 : cfg->concurrency * 2 + 2 * KEYD_POOL);
    }
    close(ctl[1]);
    ctl[1] = -1;
    if (ch[1] >= 0)
        close(ch[1]);
    ch[1] = -1;
    if (one_shot) {
        int st = 0;
        while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
            ;
        if (!WIFEXITED(st) || WEXITSTATUS(st) != 0) {
            /* the intermediate could not fork keyd itself */
            snprintf(err, errlen, "keyd: fork failed");
            goto fail;
        }
        pid = -1; /* keyd itself is init's child; it ends with its channel */
    }
    k->pid = pid;
    k->ctl = ctl[0];
    if (channel != NULL)
        *channel = ch[0];
    return 0;

fail:
    for (int i = 0; i < 2; i++) {
        if (ctl[i] >= 0)
            close(ctl[i]);
        if (ch[i] >= 0)
            close(ch[i]);
    }
    return -1;
}

/* keyd hung up without a report: how it ended, when it is our child (tlsd's
 * keyd is init's), reaped here.  A hang-up means keyd is exiting: the wait
 * is bounded all the same. */
static void ended_early(struct keyd *k, char *err, size_t errlen)
{
    int st = 0;
    pid_t r = 0;

    for (int i = 0; k->pid > 0 && i < 100 && (r = waitpid(k->pid, &st, WNOHANG)) == 0; i++)
        usleep(10000);
    if (k->pid > 0 && r == k->pid) {
        k->pid = -1; /* reaped: nothing left for keyd_stop to kill */
        if (WIFSIGNALED(st))
            snprintf(err, errlen, "keyd ended before it was ready: killed by signal %d (%s)",
                     WTERMSIG(st), strsignal(WTERMSIG(st)));
        else
            snprintf(err, errlen, "keyd ended before it was ready (exit %d)",
                     WIFEXITED(st) ? WEXITSTATUS(st) : -1);
    } else {
        snprintf(err, errlen, "keyd ended before it was ready");
    }
}

int keyd_await(struct keyd *k, char *err, size_t errlen)
{
    char status[STATUS_MAX + 1];
    struct pollfd p = {.fd = k->ctl, .events = POLLIN, .revents = 0};
    long long deadline = util_now_ms() + START_TIMEOUT_MS + 2000, left;
    ssize_t n;

    /* keyd says "ok" or why not, once its keys are loaded and it is locked
     * in, or that it is not ready in time; one deadline however many
     * signals (ending workers) interrupt the wait */
    do {
        left = deadline - util_now_ms();
    } while (poll(&p, 1, left > 0 ? (int)left : 0) < 0 && errno == EINTR);
    n = (p.revents & (POLLIN | POLLHUP)) ? recv(k->ctl, status, STATUS_MAX, 0) : -1;
    if (n <= 0) {
        if (p.revents & (POLLIN | POLLHUP))
            ended_early(k, err, errlen);
        else
            snprintf(err, errlen, "keyd did not start (no report within %d s)",
                     START_TIMEOUT_MS / 1000 + 2);
        keyd_stop(k);
        return -1;
    }
    status[n] = '\0';
    if (strcmp(status, "ok") != 0) {
        snprintf(err, errlen, "%s", strncmp(status, "error: ", 7) == 0 ? status + 7 : status);
        keyd_stop(k);
        return -1;
    }
    return 0;
}

int keyd_start(const struct engine_config *cfg, const struct tls_context *in_use,
               int one_shot, struct keyd *k, int *channel, char *err, size_t errlen)
{
    if (keyd_spawn(cfg, in_use, one_shot, k, channel, err, errlen) < 0)
        return -1;
    if (keyd_await(k, err, errlen) < 0) {
        if (channel != NULL && *channel >= 0)
            close(*channel);
        if (channel != NULL)
            *channel = -1;
        return -1;
    }
    return 0;
}

/* Makes up to KEYD_POOL channels and hands keyd its ends in one message,
 * so that keyd wakes once per KEYD_POOL connections for them. */
static int refill(struct keyd *k)
{
    int theirs[KEYD_POOL], n = 0, sv[2];
    char byte = 'c';
    struct iovec iov = {&byte, 1};
    union {
        struct cmsghdr h;
        char buf[CMSG_SPACE(KEYD_POOL * sizeof(int))];
    } u;
    struct msghdr msg = {0};
    struct cmsghdr *c;
    int ok, saved;

    while (n < KEYD_POOL && socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) == 0) {
        k->pool[n] = sv[0];
        theirs[n++] = sv[1];
    }
    if (n == 0)
        return -1;
    memset(&u, 0, sizeof u);
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = u.buf;
    msg.msg_controllen = CMSG_SPACE((size_t)n * sizeof(int));
    c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN((size_t)n * sizeof(int));
    memcpy(CMSG_DATA(c), theirs, (size_t)n * sizeof(int));
    /* never blocks: a stopped or stuck keyd whose queue is full makes this
     * connection fail (the caller drops it and pauses), not the master
     * sleep in sendmsg, deaf to SIGTERM */
    ok = sendmsg(k->ctl, &msg, MSG_NOSIGNAL | MSG_DONTWAIT) == 1;
    saved = errno;
    for (int i = 0; i < n; i++) {
        close(theirs[i]);
        if (!ok)
            close(k->pool[i]);
    }
    k->npool = ok ? n : 0;
    errno = saved; /* the caller's log names the cause (EMFILE, keyd gone) */
    return ok ? 0 : -1;
}

int keyd_channel_new(struct keyd *k)
{
    if (k->ctl < 0) {
        errno = ENOTCONN;
        return -1;
    }
    /* A pooled channel keyd has closed is dropped, not handed out: keyd
     * refuses channels past its table (more connections in their
     * handshake than it was sized for), and those would otherwise fail
     * connections long after the load has gone.  Two pools at most. */
    for (int refills = 0;;) {
        struct pollfd p = {.fd = -1, .events = 0, .revents = 0};

        if (k->npool == 0 && (refills++ == 2 || refill(k) < 0))
            return -1;
        p.fd = k->pool[--k->npool];
        if (poll(&p, 1, 0) != 1) /* no POLLHUP: keyd holds the other end */
            return p.fd;
        close(p.fd);
        errno = ECONNRESET;
    }
}

static void drop_pool(struct keyd *k)
{
    while (k->npool > 0)
        close(k->pool[--k->npool]);
}

void keyd_forget(struct keyd *k)
{
    drop_pool(k);
    if (k->ctl >= 0)
        close(k->ctl);
    k->ctl = -1;
    k->pid = -1;
}

void keyd_stop(struct keyd *k)
{
    int status;

    drop_pool(k);
    if (k->ctl >= 0)
        close(k->ctl);
    k->ctl = -1;
    if (k->pid > 0) {
        /* SIGKILL: keyd holds nothing that needs a clean exit, and a
         * stopped keyd would sit on a SIGTERM forever (and we in waitpid). */
        kill(k->pid, SIGKILL);
        while (waitpid(k->pid, &status, 0) < 0 && errno == EINTR)
            ;
    }
    k->pid = -1;
}
