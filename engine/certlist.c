/* The certificates to serve, as one ordered list that the master (which
 * loads the certificates) and keyd (which loads the keys) derive from the
 * same configuration, so that list index == keyd key id on both sides.
 *
 * Sources, in this order: the default ($CERTCHAINFILE or $CERTFILE, with
 * $KEYFILE); s6-tlsd's $CERTFILE:name / $KEYFILE:name pairs (sorted by
 * name); every *.pem file of $CERTDIR / --certdir (sorted; each holds a
 * certificate chain and its key, the names taken from the certificate). */
#include "internal.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

static int add(struct engine_config *c, char *cert, char *key, char *sni)
{
    struct cert_entry *n;

    if (c->ncerts == ENGINE_MAX_CERTS)
        return -1;
    n = realloc(c->certs, (size_t)(c->ncerts + 1) * sizeof *n);
    if (n == NULL)
        return -1;
    c->certs = n;
    c->certs[c->ncerts].cert = cert;
    c->certs[c->ncerts].key = key;
    c->certs[c->ncerts].sni = sni;
    c->ncerts++;
    return 0;
}

static char *dup_or_null(const char *s)
{
    return s != NULL && *s != '\0' ? strdup(s) : NULL;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A host name as SNI will present it: letters, digits, '-', '.', and a
 * leading "*." for a first-label wildcard; stored lower-case. */
static int host_name_ok(char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > 253)
        return 0;
    for (size_t i = 0; i < n; i++) {
        char ch = s[i];
        if (ch >= 'A' && ch <= 'Z')
            s[i] = (char)(ch - 'A' + 'a');
        else if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '-' ||
                   ch == '.' || (ch == '*' && i == 0 && s[1] == '.')))
            return 0;
    }
    return 1;
}

static int from_env_pairs(struct engine_config *c, char *err, size_t errlen)
{
    char **names = NULL;
    size_t n = 0;
    int rc = 0;

    for (char **e = environ; e && *e; e++) {
        const char *eq = strchr(*e, '=');
        char **grown;
        if (strncmp(*e, "CERTFILE:", 9) != 0 || eq == NULL)
            continue;
        grown = realloc(names, (n + 1) * sizeof *names);
        if (grown == NULL)
            goto oom;
        names = grown;
        names[n] = strndup(*e + 9, (size_t)(eq - *e - 9));
        if (names[n] == NULL)
            goto oom;
        n++;
    }
    if (n > 1)
        qsort(names, n, sizeof *names, cmp_str);
    for (size_t i = 0; i < n && rc == 0; i++) {
        char var[300];
        char *cert, *key, *sni;
        snprintf(var, sizeof var, "CERTFILE:%s", names[i]);
        cert = dup_or_null(getenv(var));
        snprintf(var, sizeof var, "KEYFILE:%s", names[i]);
        key = dup_or_null(getenv(var));
        sni = strdup(names[i]);
        if (cert == NULL || sni == NULL || !host_name_ok(sni)) {
            snprintf(err, errlen, "$CERTFILE:%s: not a host name, or empty", names[i]);
            free(cert), free(key), free(sni);
            rc = -1;
        } else if (add(c, cert, key, sni) < 0) {
            free(cert), free(key), free(sni);
            snprintf(err, errlen, "too many certificates (at most %d)", ENGINE_MAX_CERTS);
            rc = -1;
        }
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
oom:
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    snprintf(err, errlen, "out of memory");
    return -1;
}

static int from_dir(struct engine_config *c, const char *dir, char *err, size_t errlen)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    char **files = NULL;
    size_t n = 0;
    int rc = 0;

    if (d == NULL) {
        snprintf(err, errlen, "certificate directory %s: %s", dir, strerror(errno));
        return -1;
    }
    while ((e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        char **grown;
        if (e->d_name[0] == '.' || len < 5 || strcmp(e->d_name + len - 4, ".pem") != 0)
            continue;
        grown = realloc(files, (n + 1) * sizeof *files);
        if (grown == NULL || (grown[n] = malloc(strlen(dir) + len + 2)) == NULL) {
            if (grown != NULL)
                files = grown;
            rc = -1;
            break;
        }
        files = grown;
        snprintf(files[n], strlen(dir) + len + 2, "%s/%s", dir, e->d_name);
        n++;
    }
    closedir(d);
    if (n > 1)
        qsort(files, n, sizeof *files, cmp_str);
    for (size_t i = 0; i < n; i++) {
        if (rc == 0) {
            char *key = strdup(files[i]);
            if (key == NULL || add(c, files[i], key, NULL) < 0) {
                free(key);
                rc = -1;
            } else {
                files[i] = NULL; /* owned by the list now */
            }
        }
        free(files[i]);
    }
    free(files);
    if (rc < 0)
        snprintf(err, errlen, "certificate directory %s: too many files or out of memory", dir);
    else if (n == 0)
        snprintf(err, errlen, "certificate directory %s: no *.pem file", dir), rc = -1;
    return rc;
}

int certlist_build(struct engine_config *c, char *err, size_t errlen)
{
    const char *cert = c->certchainfile && *c->certchainfile ? c->certchainfile : c->certfile;

    if (cert != NULL && *cert != '\0') {
        char *cf = strdup(cert), *kf = dup_or_null(c->keyfile);
        if (cf == NULL || add(c, cf, kf, NULL) < 0) {
            free(cf), free(kf);
            snprintf(err, errlen, "out of memory");
            return -1;
        }
        c->has_default_cert = 1;
    }
    if (from_env_pairs(c, err, errlen) < 0)
        return -1;
    if (c->certdir != NULL && from_dir(c, c->certdir, err, errlen) < 0)
        return -1;
    if (c->ncerts == 0) {
        snprintf(err, errlen, "$CERTFILE is not set (the server certificate, PEM)");
        return -1;
    }
    return 0;
}

void certlist_free(struct engine_config *c)
{
    for (int i = 0; i < c->ncerts; i++) {
        free(c->certs[i].cert);
        free(c->certs[i].key);
        free(c->certs[i].sni);
    }
    free(c->certs);
    c->certs = NULL;
    c->ncerts = 0;
}

const char *certlist_key_file(const struct cert_entry *e)
{
    return e->key != NULL ? e->key : e->cert;
}
