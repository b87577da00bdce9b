/* Options and environment -> struct engine_config.  Names follow sslserver
 * (ucspi-ssl) and tcpserver where they have one, s6-tlsd's where only it
 * has one.  Everything is checked here, before any socket or file is
 * touched, so that a bad run script fails at once with one clear line. */
#include "internal.h"
#include "log.h"

#include <getopt.h>
#include <stdarg.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

enum { OPT_HALF_CLOSE = 1000, OPT_HELP, OPT_CERTDIR, OPT_SNI_STRICT, OPT_ALPN,
       OPT_CC_OPTIONAL, OPT_CC_PEM, OPT_TICKET_KEYS, OPT_TICKET_LIFETIME, OPT_PROXY };

static const struct option LONG_OPTS[] = {
    {"tcp-half-close", no_argument, NULL, OPT_HALF_CLOSE},
    {"certdir", required_argument, NULL, OPT_CERTDIR},
    {"sni-strict", no_argument, NULL, OPT_SNI_STRICT},
    {"alpn", required_argument, NULL, OPT_ALPN},
    {"client-cert-optional", no_argument, NULL, OPT_CC_OPTIONAL},
    {"client-cert-pem", no_argument, NULL, OPT_CC_PEM},
    {"ticket-keys", required_argument, NULL, OPT_TICKET_KEYS},
    {"proxy", no_argument, NULL, OPT_PROXY},
    {"ticket-lifetime", required_argument, NULL, OPT_TICKET_LIFETIME},
    {"help", no_argument, NULL, OPT_HELP},
    {NULL, 0, NULL, 0},
};

static void usage(const struct engine_config *c)
{
    static const char common[] =
        "[-nNsSqQvJjdDmzZ3] [-T secs] [-w secs] [-u uid] [-g gid] [-U] [-l name]\n"
        "  [--tcp-half-close] [--certdir dir] [--sni-strict] [--alpn list]\n"
        "  [--client-cert-optional] [--client-cert-pem] [--ticket-keys file]\n"
        "  [--ticket-lifetime secs] [--proxy]";

    if (c->frontend == ENGINE_SERVER)
        fprintf(stderr, "usage: %s [-1X] [-c limit] [-b backlog] [-x rules.cdb] %s\n"
                        "  host port prog...\n", c->progname, common);
    else
        fprintf(stderr, "usage: %s %s\n  prog...\n", c->progname, common);
}

static int bad(struct engine_config *c, int *exit_code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int bad(struct engine_config *c, int *exit_code, const char *fmt, ...)
{
    va_list ap;

    fprintf(stderr, "%s: fatal: ", c->progname);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    *exit_code = ENGINE_EXIT_PERMANENT;
    return -1;
}

static int opt_number(struct engine_config *c, int *exit_code, char opt,
                      const char *arg, unsigned long max, unsigned long *out)
{
    char what[64];

    if (util_parse_uint(arg, max, out) == 0)
        return 0;
    snprintf(what, sizeof what, "-%c %.32s", opt, arg);
    return bad(c, exit_code, "%s: not a number in range", what);
}

/* $NAME as a uid/gid number, the first of two names that is set. */
static int env_id(struct engine_config *c, int *exit_code, const char *a,
                  const char *b, int *set, unsigned long *out)
{
    const char *name = getenv(a) ? a : b;
    const char *v = getenv(name);

    *set = 0;
    if (v == NULL)
        return 0;
    if (util_parse_uint(v, 0x7fffffffUL, out) < 0 || *out == 0)
        return bad(c, exit_code,
                   "$%s: must be a non-zero number (the TLS worker never runs as root)",
                   name);
    *set = 1;
    return 0;
}

/* The worker's ids when none are configured: nobody/nogroup, so that a
 * root-started server never runs TLS as root. */
static void default_worker_ids(struct engine_config *c)
{
    struct passwd *pw = getpwnam("nobody");
    struct group *gr = getgrnam("nogroup");

    if (!c->worker_uid_set)
        c->worker_uid = pw != NULL ? pw->pw_uid : 65534;
    if (!c->worker_gid_set)
        c->worker_gid = gr != NULL ? gr->gr_gid : pw != NULL ? pw->pw_gid : 65534;
}

static int parse_env(struct engine_config *c, int *exit_code)
{
    unsigned long v;
    int set;

    c->certfile = getenv("CERTFILE");
    c->certchainfile = getenv("CERTCHAINFILE");
    c->keyfile = getenv("KEYFILE");
    c->ciphers = getenv("CIPHERS");
    c->ciphersuites = getenv("CIPHERSUITES");
    c->dhfile = getenv("DHFILE");
    if (c->key_password_fd3 && getenv("LISTEN_FDS") != NULL)
        return bad(c, exit_code, "%s", "-3 reads fd 3, where systemd passes the socket: "
                   "use one or the other");
    if (getenv("MAXCONIP") != NULL) {
        if (util_parse_uint(getenv("MAXCONIP"), 100000, &v) < 0)
            return bad(c, exit_code, "%s", "$MAXCONIP: not a number");
        c->maxconip = (unsigned)v;
    }
    c->cafile = getenv("CAFILE");
    c->cadir = getenv("CADIR");
    c->ccafile = getenv("CCAFILE");
    if (getenv("VERIFYDEPTH") != NULL) {
        if (util_parse_uint(getenv("VERIFYDEPTH"), 100, &v) < 0)
            return bad(c, exit_code, "%s", "$VERIFYDEPTH: not a number from 0 to 100");
        c->verify_depth = (int)v;
    } else {
        c->verify_depth = 9;
    }
    if (c->client_cert != CLIENT_CERT_NONE && (c->cafile == NULL || *c->cafile == '\0') &&
        (c->cadir == NULL || *c->cadir == '\0'))
        return bad(c, exit_code, "%s", "client certificates (-m, -z, --client-cert-optional) "
                   "need $CAFILE or $CADIR to verify them");
    c->bench_key_in_worker = getenv("UCSPITLS_BENCH_KEY_IN_WORKER") != NULL &&
                             strcmp(getenv("UCSPITLS_BENCH_KEY_IN_WORKER"), "1") == 0;
    c->chroot_dir = getenv("SSL_CHROOT");
    if (c->chroot_dir == NULL || *c->chroot_dir == '\0')
        c->chroot_dir = ENGINE_DEFAULT_CHROOT;
    if (c->certdir == NULL && getenv("CERTDIR") != NULL && *getenv("CERTDIR") != '\0')
        c->certdir = getenv("CERTDIR");
    {
        char err[512];
        if (certlist_build(c, err, sizeof err) < 0)
            return bad(c, exit_code, "%s", err);
    }
    if (env_id(c, exit_code, "SSL_UID", "TLS_UID", &set, &v) < 0)
        return -1;
    c->worker_uid_set = set;
    c->worker_uid = (uid_t)v;
    if (env_id(c, exit_code, "SSL_GID", "TLS_GID", &set, &v) < 0)
        return -1;
    c->worker_gid_set = set;
    c->worker_gid = (gid_t)v;
    if (c->worker_uid_set && !c->worker_gid_set) {
        struct passwd *pw = getpwuid(c->worker_uid);
        if (pw != NULL && pw->pw_gid != 0) {
            c->worker_gid = pw->pw_gid;
            c->worker_gid_set = 1;
        }
    }
    default_worker_ids(c);
    return 0;
}

/* -U: the app's ids from $UID and $GID, as tcpserver does. */
static int ids_from_env(struct engine_config *c, int *exit_code)
{
    unsigned long v;
    const char *u = getenv("UID"), *g = getenv("GID");

    if (u == NULL || util_parse_uint(u, 0x7fffffffUL, &v) < 0)
        return bad(c, exit_code, "%s", "-U: $UID is not set to a number");
    c->app_uid = (uid_t)v;
    c->set_app_uid = 1;
    if (g == NULL || util_parse_uint(g, 0x7fffffffUL, &v) < 0)
        return bad(c, exit_code, "%s", "-U: $GID is not set to a number");
    c->app_gid = (gid_t)v;
    c->set_app_gid = 1;
    return 0;
}

/* "h2,http/1.1" -> the ALPN wire format: each name preceded by its length. */
static int parse_alpn(struct engine_config *c, const char *list)
{
    size_t out = 0;

    while (*list) {
        const char *end = strchr(list, ',');
        size_t n = end ? (size_t)(end - list) : strlen(list);
        if (n == 0 || n > 255 || out + 1 + n > sizeof c->alpn)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (list[i] <= ' ' || list[i] > '~')
                return -1;
        c->alpn[out++] = (unsigned char)n;
        memcpy(c->alpn + out, list, n);
        out += n;
        list += n;
        if (*list == ',' && *++list == '\0')
            return -1; /* trailing comma */
    }
    if (out == 0)
        return -1;
    c->alpn_len = out;
    return 0;
}

static int parse_opts(struct engine_config *c, int argc, char **argv,
                      int *exit_code)
{
    const char *optstring = c->frontend == ENGINE_SERVER
                                ? "+:nNsSc:b:T:w:u:g:U1qQvVJjdDl:hHrRpPoOt:46x:XzmZ3"
                                : "+:nNsST:w:u:g:UqQvVJjdDl:hHrRpPoOt:46zmZ3";
    unsigned long v;
    int ch;

    opterr = 0;
    optind = 0; /* glibc: full re-initialisation, also for repeated calls */
    while ((ch = getopt_long(argc, argv, optstring, LONG_OPTS, NULL)) != -1) {
        char opt[3] = {'-', (char)optopt, '\0'};
        switch (ch) {
        case 'n': c->delayed = 1; break;
        case 'N': c->delayed = 0; break;
        case 's': c->session_env = 1; break;
        case 'S': c->session_env = 0; break;
        case 'c':
            if (opt_number(c, exit_code, 'c', optarg, 100000, &v) < 0)
                return -1;
            if (v == 0)
                return bad(c, exit_code, "%s", "-c 0: the limit must be at least 1");
            c->concurrency = (int)v;
            break;
        case 'b':
            if (opt_number(c, exit_code, 'b', optarg, 65535, &v) < 0)
                return -1;
            c->backlog = (int)v;
            break;
        case 'T':
            if (opt_number(c, exit_code, 'T', optarg, 86400, &v) < 0)
                return -1;
            c->handshake_timeout_ms = (int)v * 1000;
            break;
        case 'w':
            if (opt_number(c, exit_code, 'w', optarg, 86400 * 7, &v) < 0)
                return -1;
            c->idle_timeout_ms = (int)v * 1000;
            break;
        case 'u':
            if (opt_number(c, exit_code, 'u', optarg, 0x7fffffffUL, &v) < 0)
                return -1;
            c->app_uid = (uid_t)v;
            c->set_app_uid = 1;
            break;
        case 'g':
            if (opt_number(c, exit_code, 'g', optarg, 0x7fffffffUL, &v) < 0)
                return -1;
            c->app_gid = (gid_t)v;
            c->set_app_gid = 1;
            break;
        case 'U':
            if (ids_from_env(c, exit_code) < 0)
                return -1;
            break;
        case '1': c->print_port = 1; break;
        case 'q': c->verbosity = LOG_QUIET; break;
        case 'Q': c->verbosity = LOG_ERROR; break;
        case 'v': case 'V': c->verbosity = LOG_INFO; break;
        case 'J': c->strict_close = 1; break;
        case 'j': c->strict_close = 0; break;
        case 'D': c->nodelay = 1; break;
        case 'd': c->nodelay = 0; break;
        case 'l': c->local_hostname = optarg; break;
        /* tcpserver/sslserver flags about DNS, ident and IP options: this
         * server never looks names up and never sends IP options, so they
         * are accepted for run-script compatibility and change nothing. */
        case 'h': case 'H': case 'r': case 'R': case 'p': case 'P':
        case 'o': case 'O': case 't': case '4': case '6':
            break;
        case 'Z': c->client_cert = CLIENT_CERT_NONE; break;
        case 'm': c->client_cert = CLIENT_CERT_REQUIRE; break;
        case 'z': c->client_cert = CLIENT_CERT_MATCH; break;
        case 'x': c->rules_file = optarg; break;
        case 'X': c->rules_missing_ok = 1; break;
        case '3': c->key_password_fd3 = 1; break;
        case OPT_HALF_CLOSE: c->tcp_half_close = 1; break;
        case OPT_CERTDIR: c->certdir = optarg; break;
        case OPT_SNI_STRICT: c->sni_strict = 1; break;
        case OPT_CC_OPTIONAL: c->client_cert = CLIENT_CERT_OPTIONAL; break;
        case OPT_CC_PEM: c->client_cert_pem = 1; break;
        case OPT_TICKET_KEYS: c->ticket_keys = optarg; break;
        case OPT_PROXY: c->proxy = 1; break;
        case OPT_TICKET_LIFETIME:
            if (util_parse_uint(optarg, 7 * 86400, &v) < 0 || v < 4)
                return bad(c, exit_code, "--ticket-lifetime %.32s: seconds, 4 to 604800", optarg);
            c->ticket_lifetime = (long)v;
            break;
        case OPT_ALPN:
            if (parse_alpn(c, optarg) < 0)
                return bad(c, exit_code, "--alpn %.64s: a comma-separated list of "
                           "protocol names (1-255 printable bytes each)", optarg);
            break;
        case OPT_HELP:
            usage(c);
            *exit_code = 0;
            return -1;
        case ':':
            opt[1] = (char)optopt;
            return bad(c, exit_code, "option %s needs an argument", opt);
        default:
            if (optopt == 0)
                return bad(c, exit_code, "unknown option %s", argv[optind - 1]);
            return bad(c, exit_code, "unknown option %s", opt);
        }
    }
    return optind;
}

struct engine_config *engine_config_parse(enum engine_frontend fe, int argc,
                                          char **argv, int *exit_code)
{
    struct engine_config *c = calloc(1, sizeof *c);
    const char *slash;
    int i;

    *exit_code = ENGINE_EXIT_TEMPORARY;
    if (c == NULL) {
        fprintf(stderr, "ucspi-tls: fatal: out of memory\n");
        return NULL;
    }
    c->frontend = fe;
    c->progname = fe == ENGINE_SERVER ? "tlsserver" : "tlsd";
    if (argc > 0 && argv[0] != NULL && (slash = strrchr(argv[0], '/')) != NULL)
        c->progname = slash + 1;
    else if (argc > 0 && argv[0] != NULL && argv[0][0] != '\0')
        c->progname = argv[0];
    c->concurrency = 40;
    c->backlog = 128;
    c->handshake_timeout_ms = 26 * 1000;
    c->idle_timeout_ms = 3600 * 1000;
    c->verbosity = LOG_ERROR;
    c->nodelay = 1;
    c->ticket_lifetime = 7200;

    i = parse_opts(c, argc, argv, exit_code);
    if (i < 0)
        goto fail;
    if (fe == ENGINE_SERVER) {
        if (argc - i < 3) {
            usage(c);
            *exit_code = ENGINE_EXIT_PERMANENT;
            goto fail;
        }
        c->host = argv[i++];
        c->port = argv[i++];
    } else if (argc - i < 1) {
        usage(c);
        *exit_code = ENGINE_EXIT_PERMANENT;
        goto fail;
    }
    c->prog = argv + i;
    if (parse_env(c, exit_code) < 0)
        goto fail;
    return c;
fail:
    engine_config_free(c);
    return NULL;
}

struct engine_config *engine_config_reread(const struct engine_config *cfg, char *err,
                                           size_t errlen)
{
    struct engine_config *c = malloc(sizeof *c);

    if (c == NULL) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    *c = *cfg;
    c->certs = NULL;
    c->ncerts = 0;
    c->has_default_cert = 0;
    if (certlist_build(c, err, errlen) < 0) {
        engine_config_free(c);
        return NULL;
    }
    return c;
}

void engine_config_free(struct engine_config *cfg)
{
    if (cfg == NULL)
        return;
    certlist_free(cfg);
    free(cfg);
}
