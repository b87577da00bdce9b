/* tlsserver's master: bind, accept, fork one worker per connection, reap.
 * It holds no per-connection state but a count, and never reads a byte
 * from a client. */
#include "internal.h"
#include "keyd.h"
#include "rules.h"
#include "log.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int signal_pipe[2] = {-1, -1};
/* The per-address connection counts ($MAXCONIP, or a rule's MAXCONIP). */
static struct rules_iptable *iptable;
/* the configuration the front end gave us (its owner frees it) */
static const struct engine_config *reload_original;


static void on_signal(int sig)
{
    unsigned char c = (unsigned char)sig;
    int saved = errno;
    /* Non-blocking: a full pipe already says "something happened". */
    if (write(signal_pipe[1], &c, 1) < 0) {
    }
    errno = saved;
}

static int install_signals(void)
{
    struct sigaction sa;

    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
    if (sigaction(SIGCHLD, &sa, NULL) < 0 || sigaction(SIGTERM, &sa, NULL) < 0 ||
        sigaction(SIGINT, &sa, NULL) < 0 || sigaction(SIGHUP, &sa, NULL) < 0)
        return -1;
    signal(SIGPIPE, SIG_IGN);
    return 0;
}


/* tcpserver's host syntax: "0" is every IPv4 address, "::" every address
 * (dual stack), anything else a name or literal. */
static int bind_listener(const struct engine_config *cfg, char *err,
                         size_t errlen)
{
    struct addrinfo hints, *res = NULL, *ai;
    const char *host = cfg->host;
    int fd = -1, one = 1, zero = 0, rc;

    memset(&hints, 0, sizeof hints);
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    if (strcmp(host, "0") == 0) {
        host = "0.0.0.0";
        hints.ai_family = AF_INET;
    }
    rc = getaddrinfo(host, cfg->port, &hints, &res);
    if (rc == EAI_NONAME || rc == EAI_SERVICE) {
        hints.ai_flags = AI_PASSIVE; /* a service name like "smtps" */
        rc = getaddrinfo(host, cfg->port, &hints, &res);
    }
    if (rc != 0) {
        snprintf(err, errlen, "unable to resolve %s port %s: %s", cfg->host,
                 cfg->port, gai_strerror(rc));
        return -1;
    }
    for (ai = res; ai != NULL; ai = ai->ai_next) {
        fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
            continue;
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        if (ai->ai_family == AF_INET6)
            setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof zero);
        if (bind(fd, ai->ai_addr, ai->ai_addrlen) == 0 &&
            listen(fd, cfg->backlog) == 0)
            break;
        snprintf(err, errlen, "unable to bind %s port %s: %s", cfg->host,
                 cfg->port, strerror(errno));
        close(fd);
        fd = -1;
    }
    if (fd < 0 && ai == NULL && err[0] == '\0')
        snprintf(err, errlen, "unable to bind %s port %s", cfg->host, cfg->port);
    freeaddrinfo(res);
    return fd;
}

/* systemd socket activation: one listening socket on fd 3 when
 * $LISTEN_PID is ours and $LISTEN_FDS is 1.  Returns the fd, -1 when not
 * activated, or -2 (with err) when the activation is unusable.  The
 * variables are removed so that the apps do not see them. */
static int systemd_listener(char *err, size_t errlen)
{
    const char *pid = getenv("LISTEN_PID"), *fds = getenv("LISTEN_FDS");
    unsigned long p, n;
    int type = 0, listening = 0;
    socklen_t len = sizeof type;

    if (pid == NULL || fds == NULL)
        return -1;
    if (util_parse_uint(pid, 0x7fffffffUL, &p) < 0 || (pid_t)p != getpid())
        return -1;
    unsetenv("LISTEN_PID");
    unsetenv("LISTEN_FDS");
    unsetenv("LISTEN_FDNAMES");
    if (util_parse_uint(fds, 64, &n) < 0 || n != 1) {
        snprintf(err, errlen, "$LISTEN_FDS=%s: exactly one socket is supported", fds);
        return -2;
    }
    if (getsockopt(3, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM ||
        getsockopt(3, SOL_SOCKET, SO_ACCEPTCONN, &listening, &(socklen_t){sizeof listening}) < 0 ||
        !listening) {
        snprintf(err, errlen, "$LISTEN_FDS: fd 3 is not a listening stream socket");
        return -2;
    }
    if (fcntl(3, F_SETFD, FD_CLOEXEC) < 0) {
        snprintf(err, errlen, "fd 3: %s", strerror(errno));
        return -2;
    }
    return 3;
}

static int bound_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;

    if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

static int reap_workers(const struct engine_config *cfg, const struct tls_context *tls,
                        struct keyd *keyd, int *active)
{
    int status;
    pid_t pid;

    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
        if (keyd_is_retired(pid))
            continue;
        rules_iptable_remove_pid(iptable, pid);
        if (pid == keyd->pid) {
            if (keyd_restart(cfg, tls, keyd, status) < 0)
                return -1;
            continue;
        }
        (*active)--;
        if (WIFSIGNALED(status))
            log_line(LOG_ERROR, "end %d signal %d", (int)pid, WTERMSIG(status));
        else
            log_line(LOG_INFO, "end %d status %d", (int)pid, WEXITSTATUS(status));
        log_line(LOG_INFO, "status: %d/%d", *active, cfg->concurrency);
    }
    return 0;
}

/* Access control before any TLS work: the tcprules file (read at every
 * connection, as tcpserver does, so that a new file applies at once) and
 * the per-address limit.  Returns 0 to serve, with the rule's variables in
 * env, or -1 to drop the connection. */
static int admit(const struct engine_config *cfg, const struct conn_addr *addr,
                 struct rules_env *env)
{
    unsigned limit = cfg->maxconip;
    const char *why = NULL;

    memset(env, 0, sizeof *env);
    if (cfg->rules_file != NULL) {
        int fd = open(cfg->rules_file, O_RDONLY | O_CLOEXEC);
        int verdict;
        if (fd < 0) {
            if (errno == ENOENT && cfg->rules_missing_ok)
                goto limit;
            log_line(LOG_ERROR, "deny %s: rules file %s: %s", addr->remote_ip,
                     cfg->rules_file, strerror(errno));
            return -1;
        }
        verdict = rules_lookup(fd, addr->remote_ip, env, &why);
        close(fd);
        if (verdict != RULES_ALLOW) {
            /* a rule that cannot be read denies, never allows */
            log_line(verdict == RULES_DENY ? LOG_INFO : LOG_ERROR, "deny %s rule '%s'%s%s",
                     addr->remote_ip, env->rule, why ? ": " : "", why ? why : "");
            return -1;
        }
        for (size_t i = 0; i < env->count; i++) {
            unsigned long v;
            if (strcmp(env->set[i].name, "MAXCONIP") == 0 &&
                util_parse_uint(env->set[i].value, 100000, &v) == 0)
                limit = (unsigned)v;
        }
    }
limit:
    if (limit > 0 && rules_iptable_count(iptable, addr->remote_ip) >= limit) {
        log_line(LOG_INFO, "deny %s: %u connections from it (MAXCONIP)", addr->remote_ip,
                 limit);
        return -1;
    }
    return 0;
}

static void accept_one(const struct engine_config *cfg, struct tls_context *tls,
                       struct keyd *keyd, int listener, int *active,
                       int *pause_ms)
{
    struct conn_addr addr;
    struct rules_env env;
    pid_t pid;
    int conn = accept4(listener, NULL, NULL, SOCK_CLOEXEC);

    if (conn < 0) {
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
            errno == ENOMEM) {
            /* Out of fds or memory: stop accepting briefly rather than
             * spin; waiting clients stay in the backlog.  The condition
             * can last: said once a second at most. */
            static long long last_said = -1000000;
            static unsigned long unsaid;
            long long now = util_now_ms();

            if (now - last_said >= 1000) {
                if (unsaid > 0)
                    log_line(LOG_ERROR, "unable to accept: %s (%lu more times since the last report)",
                             strerror(errno), unsaid);
                else
                    log_line(LOG_ERROR, "unable to accept: %s", strerror(errno));
                last_said = now;
                unsaid = 0;
            } else {
                unsaid++;
            }
            *pause_ms = 100;
        }
        return;
    }
    if (conn_addr_from_socket(conn, &addr) < 0)
        addr.have = 0;
    if ((cfg->rules_file != NULL || cfg->maxconip > 0) && !addr.have)
        log_line(LOG_ERROR, "deny: not an IP connection, and -x/MAXCONIP need its address");
    if ((cfg->rules_file != NULL || cfg->maxconip > 0) &&
        (!addr.have || admit(cfg, &addr, &env) < 0)) {
        close(conn);
        return;
    }
    pid = engine_spawn_worker(cfg, tls, keyd, conn, conn,
                              cfg->rules_file != NULL ? &env : NULL);
    if (pid < 0) {
        *pause_ms = 100;
    } else {
        (*active)++;
        if (addr.have && rules_iptable_add(iptable, addr.remote_ip, pid, 0) < 0)
            log_line(LOG_ERROR, "per-address table full");
        if (cfg->verbosity >= LOG_INFO && addr.have) {
            log_line(LOG_INFO, "status: %d/%d", *active, cfg->concurrency);
            log_line(LOG_INFO, "pid %d from %s", (int)pid, addr.remote_ip);
            log_line(LOG_INFO, "ok %d %s:%s:%s :%s::%s", (int)pid,
                     cfg->local_hostname ? cfg->local_hostname : "",
                     addr.local_ip, addr.local_port, addr.remote_ip,
                     addr.remote_port);
        }
    }
    close(conn);
}

int engine_serve(struct engine_config *cfg)
{
    reload_original = cfg;
    struct tls_context *tls;
    struct keyd keyd;
    char err[512] = "";
    int listener, active = 0, pause_ms = 0, unused;
    long long pause_until = 0; /* no accept() before then (monotonic ms) */
    int code = ENGINE_EXIT_TEMPORARY;

    tls = engine_startup(cfg, &keyd, 0, &unused);
    if (tls == NULL)
        return ENGINE_EXIT_TEMPORARY;
    listener = systemd_listener(err, sizeof err);
    if (listener == -1)
        listener = bind_listener(cfg, err, sizeof err);
    else if (listener >= 0)
        log_line(LOG_INFO, "listening on the socket systemd passed (fd 3); %s %s ignored",
                 cfg->host, cfg->port);
    if (listener < 0) {
        log_line(LOG_ERROR, "fatal: %s", err);
        goto out;
    }
    iptable = rules_iptable_new((size_t)cfg->concurrency + 16);
    if (iptable == NULL) {
        log_line(LOG_ERROR, "fatal: out of memory");
        goto out;
    }
    if (install_signals() < 0) {
        log_line(LOG_ERROR, "fatal: unable to set up signals: %s", strerror(errno));
        goto out;
    }
    if (cfg->print_port) {
        printf("%d\n", bound_port(listener));
        fflush(stdout);
    }
    log_line(LOG_INFO, "status: 0/%d", cfg->concurrency);
    for (;;) {
        struct pollfd p[2];
        long long rotate_in, now = util_now_ms(), paused;
        int n, timeout;

        /* A pause (after EMFILE and the like) ends at a fixed time: the
         * SIGCHLDs of ending workers wake poll() early and must not
         * start it again. */
        if (pause_ms > 0) {
            pause_until = now + pause_ms;
            pause_ms = 0;
        }
        paused = pause_until - now; /* > 0: ms of the pause left */
        p[0].fd = signal_pipe[0];
        p[0].events = POLLIN;
        /* At the limit the listener is not polled: new clients wait in the
         * kernel's backlog until a worker ends. */
        p[1].fd = (active < cfg->concurrency && paused <= 0) ? listener : -1;
        p[1].events = POLLIN;
        p[0].revents = p[1].revents = 0;
        /* the next key rotation bounds the wait, so that new workers get
         * the new key on time */
        rotate_in = tlsctx_rotate_tickets(tls);
        timeout = paused > 0 ? (int)paused : -1;
        if (rotate_in >= 0 && (timeout < 0 || rotate_in < timeout))
            timeout = (int)(rotate_in > 60000 ? 60000 : rotate_in);
        n = poll(p, 2, timeout);
        if (n < 0 && errno != EINTR) {
            log_line(LOG_ERROR, "fatal: poll: %s", strerror(errno));
            break;
        }
        if (p[0].revents & POLLIN) {
            unsigned char sigs[64];
            ssize_t got = read(signal_pipe[0], sigs, sizeof sigs);
            for (ssize_t i = 0; i < got; i++) {
                if (sigs[i] == SIGHUP) {
                    char why[512];
                    if (engine_reload(&cfg, reload_original, &keyd, &tls, why, sizeof why) < 0)
                        log_line(LOG_ERROR, "reload failed, keeping the running "
                                            "configuration: %s", why);
                    continue;
                }
                if (sigs[i] == SIGTERM || sigs[i] == SIGINT) {
                    /* As tcpserver: stop listening; running connections
                     * finish on their own (their handshakes are done or
                     * fail without keyd). */
                    code = 0;
                    goto out;
                }
            }
            if (reap_workers(cfg, tls, &keyd, &active) < 0)
                goto out;
        }
        if (p[1].revents & POLLIN)
            accept_one(cfg, tls, &keyd, listener, &active, &pause_ms);
    }
out:
    if (listener >= 0)
        close(listener);
    rules_iptable_free(iptable);
    iptable = NULL;
    keyd_stop(&keyd);
    tlsctx_free(tls);
    if (cfg != reload_original)
        engine_config_free(cfg);
    return code;
}
