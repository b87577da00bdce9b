/* libFuzzer target: the tcprules value decoder (rules_parse_value), which
 * the master runs on what it reads from the -x cdb before any TLS work.
 * Any input must decode or be refused cleanly.  What decodes must:
 * - agree with tcpserver's own reading of the value (its found(): entries
 *   up to a NUL, 'D' denies, "+NAME=value" sets, the last setting wins),
 *   so the stricter decoder never allows what tcpserver denies, nor hands
 *   the app different settings;
 * - keep every name and value inside env->storage, names unique;
 * - re-encode to a value that decodes to the same settings. */
#include "rules.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* tcpserver's verdict: 1 deny, 0 allow. */
static int tcpserver_denies(const uint8_t *d, size_t len)
{
    const uint8_t *nul;

    while (len > 0 && (nul = memchr(d, 0, len)) != NULL) {
        if (d[0] == 'D')
            return 1;
        len -= (size_t)(nul - d) + 1;
        d = nul + 1;
    }
    return 0;
}

/* tcpserver's final value of name (NULL: it does not set it). */
static const uint8_t *tcpserver_value(const uint8_t *d, size_t len,
                                      const char *name, size_t *vlen)
{
    const uint8_t *found = NULL, *nul;
    size_t nlen = strlen(name);

    while (len > 0 && (nul = memchr(d, 0, len)) != NULL) {
        size_t elen = (size_t)(nul - d);
        const uint8_t *eq = elen > 0 ? memchr(d, '=', elen) : NULL;
        if (d[0] == '+' && eq != NULL && (size_t)(eq - d - 1) == nlen &&
            memcmp(d + 1, name, nlen) == 0) {
            found = eq + 1;
            *vlen = (size_t)(nul - found);
        }
        len -= elen + 1;
        d = nul + 1;
    }
    return found;
}

/* Whether tcpserver sets a variable that env lacks. */
static int tcpserver_sets_more(const uint8_t *d, size_t len,
                               const struct rules_env *env)
{
    const uint8_t *nul;

    while (len > 0 && (nul = memchr(d, 0, len)) != NULL) {
        size_t elen = (size_t)(nul - d);
        const uint8_t *eq = elen > 0 ? memchr(d, '=', elen) : NULL;
        if (d[0] == '+' && eq != NULL) {
            size_t nlen = (size_t)(eq - d - 1), i;
            for (i = 0; i < env->count; i++) {
                if (strlen(env->set[i].name) == nlen &&
                    memcmp(env->set[i].name, d + 1, nlen) == 0)
                    break;
            }
            if (i == env->count)
                return 1;
        }
        len -= elen + 1;
        d = nul + 1;
    }
    return 0;
}

static int inside(const struct rules_env *env, const char *p)
{
    return p >= env->storage && p < env->storage + sizeof env->storage &&
           memchr(p, 0, (size_t)(env->storage + sizeof env->storage - p)) != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static unsigned char again[RULES_VALUE_MAX + 16];
    struct rules_env env, env2;
    const char *why = NULL;
    size_t n = 0;
    int r;

    r = rules_parse_value(data, size, &env, &why);
    if (why == NULL)
        abort();
    if (r < 0) {
        if (env.count != 0)
            abort();
        return 0;
    }
    if (r != RULES_ALLOW && r != RULES_DENY)
        abort();
    if (r == RULES_DENY) {
        if (env.count != 0 || !tcpserver_denies(data, size))
            abort();
        return 0;
    }
    if (tcpserver_denies(data, size) || env.count > RULES_ENV_MAX ||
        tcpserver_sets_more(data, size, &env))
        abort();
    for (size_t i = 0; i < env.count; i++) {
        const char *name = env.set[i].name, *value = env.set[i].value;
        const uint8_t *tv;
        size_t tvlen = 0;

        if (!inside(&env, name) || !inside(&env, value) || name[0] == '\0' ||
            strchr(name, '=') != NULL)
            abort();
        for (const char *c = name; *c != '\0'; c++) {
            if (*c < 0x21 || *c > 0x7e)
                abort();
        }
        for (size_t j = 0; j < i; j++) {
            if (strcmp(env.set[j].name, name) == 0)
                abort();
        }
        tv = tcpserver_value(data, size, name, &tvlen);
        if (tv == NULL || tvlen != strlen(value) || memcmp(tv, value, tvlen) != 0)
            abort();
        /* re-encode as tcprules would */
        size_t nl = strlen(name), vl = strlen(value);
        if (n + nl + vl + 3 > sizeof again)
            abort();
        again[n++] = '+';
        memcpy(again + n, name, nl);
        n += nl;
        again[n++] = '=';
        memcpy(again + n, value, vl);
        n += vl;
        again[n++] = '\0';
    }
    if (rules_parse_value(again, n, &env2, &why) != RULES_ALLOW || env2.count != env.count)
        abort();
    for (size_t i = 0; i < env.count; i++) {
        if (strcmp(env.set[i].name, env2.set[i].name) != 0 ||
            strcmp(env.set[i].value, env2.set[i].value) != 0)
            abort();
    }
    return 0;
}
