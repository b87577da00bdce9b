/* libFuzzer target: the option and environment parser (engine_config_parse,
 * engine/config.c and the certificate list of engine/certlist.c), which
 * turns a run script's argv and environment into the configuration.  It
 * reports every error by return value and exit code (no exit()), so any
 * input must give either a configuration that holds together or NULL with
 * 100 (0 for --help); whatever parses must re-read (the reload path) to the
 * same certificate list; nothing may leak.
 *
 * Input: byte 0 picks the front end (bit 0: tlsserver, else tlsd); the rest
 * is split at NUL bytes into strings: argv (argv[0] first) up to the first
 * empty string, then the environment, one "NAME=value" per string (a string
 * without '=' is passed as it is, as execve would).  The process's own
 * environment is swapped out for the call, so that only the input counts.
 *
 * Files: the parser opens none; only a --certdir / $CERTDIR directory is
 * listed (a name the input makes up does not exist; a real one, like the
 * /etc/ssl/certs of a seed, gives the same listing every time). */
#include "internal.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define MAX_STRINGS 256

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

extern char **environ;

static int alpn_ok(const unsigned char *w, size_t len)
{
    size_t i = 0;

    if (len > 256)
        return 0;
    while (i < len) {
        size_t n = w[i++];
        if (n == 0 || n > len - i)
            return 0;
        for (size_t k = 0; k < n; k++)
            if (w[i + k] <= ' ' || w[i + k] > '~')
                return 0;
        i += n;
    }
    return 1;
}

static int host_name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
              ch == '.' || (ch == '*' && i == 0 && s[1] == '.')))
            return 0;
    }
    return 1;
}

/* A configuration engine_config_parse returned must be usable as it is. */
static void check_config(const struct engine_config *c, enum engine_frontend fe,
                         char **argv, int argc)
{
    if (c->frontend != fe || c->progname == NULL || strchr(c->progname, '/') != NULL)
        abort();
    /* a program to run, taken from argv, after the host and port */
    if (c->prog == NULL || c->prog < argv + 1 || c->prog >= argv + argc || c->prog[0] == NULL)
        abort();
    if (fe == ENGINE_SERVER) {
        if (c->host == NULL || c->port == NULL || c->prog[-1] != c->port ||
            c->prog[-2] != c->host)
            abort();
    } else if (c->host != NULL || c->port != NULL) {
        abort();
    }
    if (c->concurrency < 1 || c->concurrency > 100000 || c->backlog < 0 || c->backlog > 65535 ||
        c->handshake_timeout_ms < 0 || c->handshake_timeout_ms > 86400 * 1000 ||
        c->idle_timeout_ms < 0 || c->ticket_lifetime < 4 || c->ticket_lifetime > 7 * 86400 ||
        c->verify_depth < 0 || c->verify_depth > 100 || c->maxconip > 100000)
        abort();
    if (!alpn_ok(c->alpn, c->alpn_len))
        abort();
    if (c->client_cert != CLIENT_CERT_NONE && (c->cafile == NULL || c->cafile[0] == '\0') &&
        (c->cadir == NULL || c->cadir[0] == '\0'))
        abort();
    /* the TLS worker never runs as root by our choice */
    if ((c->worker_uid_set && c->worker_uid == 0) || c->chroot_dir == NULL ||
        c->chroot_dir[0] == '\0')
        abort();
    if (c->ncerts < 1 || c->ncerts > ENGINE_MAX_CERTS || c->certs == NULL)
        abort();
    for (int i = 0; i < c->ncerts; i++) {
        const struct cert_entry *e = &c->certs[i];
        if (e->cert == NULL || e->cert[0] == '\0' || (e->key != NULL && e->key[0] == '\0'))
            abort();
        if (e->sni != NULL && !host_name_ok(e->sni))
            abort();
        if (certlist_key_file(e) == NULL)
            abort();
    }
    if (c->has_default_cert && c->certs[0].sni != NULL)
        abort();
}

/* The reload path reads the same environment again: the same list. */
static void check_reread(const struct engine_config *c)
{
    char err[512];
    struct engine_config *again = engine_config_reread(c, err, sizeof err);

    if (again == NULL || again->ncerts != c->ncerts ||
        again->has_default_cert != c->has_default_cert)
        abort();
    for (int i = 0; i < c->ncerts; i++) {
        const struct cert_entry *a = &c->certs[i], *b = &again->certs[i];
        if (strcmp(a->cert, b->cert) != 0 || (a->key == NULL) != (b->key == NULL) ||
            (a->key != NULL && strcmp(a->key, b->key) != 0) ||
            (a->sni == NULL) != (b->sni == NULL) ||
            (a->sni != NULL && strcmp(a->sni, b->sni) != 0))
            abort();
    }
    engine_config_free(again);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum engine_frontend fe;
    char *text, *p, *end;
    char **argv = NULL, **env = NULL, **saved_env;
    int argc = 0, nenv = 0, in_env = 0, code = -1;
    struct engine_config *c;

    if (size < 1)
        return 0;
    fe = (data[0] & 1) ? ENGINE_SERVER : ENGINE_HANDLE;
    /* own copy, NUL-terminated, exactly sized so that ASan sees overreads */
    text = malloc(size);
    argv = calloc(MAX_STRINGS + 1, sizeof *argv);
    env = calloc(MAX_STRINGS + 1, sizeof *env);
    if (text == NULL || argv == NULL || env == NULL)
        abort();
    memcpy(text, data + 1, size - 1);
    text[size - 1] = '\0';
    end = text + size - 1;
    for (p = text; p < end;) {
        size_t n = strlen(p);
        if (n == 0 && !in_env) {
            in_env = 1;
        } else if (in_env) {
            if (nenv < MAX_STRINGS)
                env[nenv++] = p;
        } else if (argc < MAX_STRINGS) {
            argv[argc++] = p;
        }
        p += n + 1;
    }

    saved_env = environ;
    environ = env;
    c = engine_config_parse(fe, argc, argv, &code);
    if (c != NULL) {
        check_config(c, fe, argv, argc);
        check_reread(c);
        engine_config_free(c);
    } else if (code != ENGINE_EXIT_PERMANENT && code != 0) {
        abort();
    }
    environ = saved_env;

    free(env);
    free(argv);
    free(text);
    return 0;
}
