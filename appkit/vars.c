/* The `Y` reply block: NAME=value\0 ... \0.  The decoder reads bytes from a
 * less-trusted process (the TLS worker, or whoever holds the other end of
 * the control socket), so it checks every byte and bound before keeping
 * anything, and either accepts the whole block or nothing. */
#include "ucspitls_app.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

int ucspitls_level(const char *env_value)
{
    if (env_value == NULL || strcmp(env_value, "-") == 0)
        return UCSPITLS_OFF;
    if (strcmp(env_value, "!") == 0)
        return UCSPITLS_REQUIRED;
    return UCSPITLS_OFFERED;
}

/* Environment-name syntax: the names end up in setenv() and in shell
 * scripts, so only what a shell accepts as a variable name passes. */
static int name_ok(const char *name, size_t len)
{
    if (len == 0 || (name[0] >= '0' && name[0] <= '9'))
        return 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
              (c >= '0' && c <= '9') || c == '_'))
            return 0;
    }
    return 1;
}

static void vars_clear(struct ucspitls_vars *out)
{
    out->count = 0;
    out->storage = NULL;
    memset(out->entries, 0, sizeof out->entries);
}

/* First pass over the borrowed input: validates the whole block without
 * allocating, and reports where the entries end (entries_end) so the
 * second pass need not re-check anything. */
static int validate(const char *buf, size_t len, size_t *entries_end, size_t *count)
{
    size_t pos = 0, n = 0;

    while (pos < len) {
        if (buf[pos] == '\0') {
            *entries_end = pos;
            *count = n;
            pos++;
            /* "\0\0" is how the spec writes the empty block; after any
             * entry a second \0 is trailing garbage. */
            if (n == 0 && pos < len && buf[pos] == '\0')
                pos++;
            return pos == len ? 0 : UCSPITLS_ERR_TRAILING;
        }
        const char *entry = buf + pos;
        const char *nul = memchr(entry, '\0', len - pos);
        if (nul == NULL)
            return UCSPITLS_ERR_UNTERMINATED;
        size_t elen = (size_t)(nul - entry);
        const char *eq = memchr(entry, '=', elen);
        if (eq == NULL)
            return UCSPITLS_ERR_BARE_NAME;
        size_t nlen = (size_t)(eq - entry);
        if (!name_ok(entry, nlen))
            return UCSPITLS_ERR_BAD_NAME;
        if (n == UCSPITLS_VARS_MAX)
            return UCSPITLS_ERR_TOO_MANY;
        /* Duplicates: O(n^2) over at most 64 names of a 64 KiB block. */
        for (size_t q = 0; q < pos;) {
            const char *other = buf + q;
            size_t olen = strlen(other); /* bounded: validated entry ends in \0 */
            const char *oeq = memchr(other, '=', olen);
            if ((size_t)(oeq - other) == nlen && memcmp(other, entry, nlen) == 0)
                return UCSPITLS_ERR_DUPLICATE;
            q += olen + 1;
        }
        n++;
        pos += elen + 1;
    }
    /* End of input right after an entry: accepted without the final \0. */
    *entries_end = pos;
    *count = n;
    return 0;
}

int ucspitls_vars_parse(const char *buf, size_t len, struct ucspitls_vars *out)
{
    size_t end = 0, n = 0;
    int rc;

    if (out == NULL || (buf == NULL && len != 0))
        return UCSPITLS_ERR_ARG;
    vars_clear(out);
    if (len == 0)
        return UCSPITLS_ERR_EMPTY;
    if (len > UCSPITLS_BLOCK_MAX)
        return UCSPITLS_ERR_TOO_BIG;
    rc = validate(buf, len, &end, &n);
    if (rc != 0)
        return rc;

    /* One owned copy; '=' becomes the name's terminator, the entry's own \0
     * the value's.  +1 so an empty block still gets a non-NULL storage. */
    char *s = malloc(end + 1);
    if (s == NULL)
        return UCSPITLS_ERR_SYS;
    memcpy(s, buf, end);
    s[end] = '\0';
    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t elen = strlen(s + pos);
        char *eq = memchr(s + pos, '=', elen);
        *eq = '\0';
        out->entries[i].name = s + pos;
        out->entries[i].value = eq + 1;
        out->entries[i].value_len = elen - (size_t)(eq - (s + pos)) - 1;
        pos += elen + 1;
    }
    out->count = n;
    out->storage = s;
    return 0;
}

const char *ucspitls_vars_get(const struct ucspitls_vars *vars, const char *name)
{
    if (vars == NULL || name == NULL)
        return NULL;
    for (size_t i = 0; i < vars->count; i++)
        if (strcmp(vars->entries[i].name, name) == 0)
            return vars->entries[i].value;
    return NULL;
}

int ucspitls_vars_export(const struct ucspitls_vars *vars)
{
    if (vars == NULL)
        return UCSPITLS_ERR_ARG;
    for (size_t i = 0; i < vars->count; i++)
        if (setenv(vars->entries[i].name, vars->entries[i].value, 1) != 0)
            return UCSPITLS_ERR_SYS;
    return 0;
}

void ucspitls_vars_free(struct ucspitls_vars *vars)
{
    if (vars == NULL)
        return;
    free(vars->storage);
    vars_clear(vars);
}

int ucspitls_vars_encode(const struct ucspitls_var *vars, size_t n, char *out,
                         size_t cap, size_t *out_len)
{
    size_t need = 0;

    if (vars == NULL && n != 0)
        return UCSPITLS_ERR_ARG;
    if (n > UCSPITLS_VARS_MAX)
        return UCSPITLS_ERR_TOO_MANY;
    for (size_t i = 0; i < n; i++) {
        if (vars[i].name == NULL || (vars[i].value == NULL && vars[i].value_len != 0))
            return UCSPITLS_ERR_ARG;
        size_t nlen = strlen(vars[i].name);
        if (!name_ok(vars[i].name, nlen))
            return UCSPITLS_ERR_BAD_NAME;
        for (size_t j = 0; j < i; j++)
            if (strcmp(vars[j].name, vars[i].name) == 0)
                return UCSPITLS_ERR_DUPLICATE;
        /* Bound value_len before scanning value with it; each term is then
         * bounded and the running sum checked, so it cannot wrap. */
        if (vars[i].value_len > UCSPITLS_BLOCK_MAX || nlen > UCSPITLS_BLOCK_MAX)
            return UCSPITLS_ERR_TOO_BIG;
        if (vars[i].value_len != 0 && memchr(vars[i].value, '\0', vars[i].value_len))
            return UCSPITLS_ERR_BAD_VALUE;
        need += nlen + 1 + vars[i].value_len + 1;
        if (need > UCSPITLS_BLOCK_MAX)
            return UCSPITLS_ERR_TOO_BIG;
    }
    need += n == 0 ? 2 : 1;
    if (need > UCSPITLS_BLOCK_MAX)
        return UCSPITLS_ERR_TOO_BIG;
    if (out_len != NULL)
        *out_len = need;
    if (out == NULL || cap < need)
        return UCSPITLS_ERR_NOSPACE;

    size_t pos = 0;
    for (size_t i = 0; i < n; i++) {
        size_t nlen = strlen(vars[i].name);
        memcpy(out + pos, vars[i].name, nlen);
        pos += nlen;
        out[pos++] = '=';
        if (vars[i].value_len != 0)
            memcpy(out + pos, vars[i].value, vars[i].value_len);
        pos += vars[i].value_len;
        out[pos++] = '\0';
    }
    out[pos++] = '\0';
    if (n == 0)
        out[pos++] = '\0';
    return 0;
}

const char *ucspitls_strerror(int err)
{
    switch (err) {
    case 0: return "success";
    case UCSPITLS_ERR_SYS: return strerror(errno);
    case UCSPITLS_ERR_ARG: return "invalid argument";
    case UCSPITLS_ERR_EMPTY: return "empty variable block";
    case UCSPITLS_ERR_BARE_NAME: return "variable without '='";
    case UCSPITLS_ERR_BAD_NAME: return "invalid variable name";
    case UCSPITLS_ERR_UNTERMINATED: return "unterminated variable";
    case UCSPITLS_ERR_TRAILING: return "data after end of variable block";
    case UCSPITLS_ERR_TOO_MANY: return "too many variables";
    case UCSPITLS_ERR_TOO_BIG: return "variable block too large";
    case UCSPITLS_ERR_DUPLICATE: return "duplicate variable name";
    case UCSPITLS_ERR_BAD_VALUE: return "variable value contains NUL";
    case UCSPITLS_ERR_NOSPACE: return "output buffer too small";
    case UCSPITLS_ERR_ENV: return "SSLCTLFD/SSLREADFD/SSLWRITEFD missing or invalid";
    case UCSPITLS_ERR_HANDSHAKE: return "TLS handshake failed";
    default: return "unknown error";
    }
}
