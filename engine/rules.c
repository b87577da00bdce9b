/* Access control (rules.h): the tcprules value decoder, the tcpserver
 * lookup order over a cdb read with tinycdb, and the per-IP table.
 *
 * Trust: the rules file is the administrator's, but it is parsed in the
 * master before any TLS work, so its values are decoded as hostile input
 * anyway -- bounded first, every entry checked, anything odd denies. */
#include "rules.h"

#include <arpa/inet.h>
#include <cdb.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#define RULES_IPTABLE_MAX ((size_t)1 << 20)

/* ---- the value decoder ------------------------------------------------ */

static int malformed(struct rules_env *env, const char **why,
                     const char *reason)
{
    env->count = 0;
    if (why != NULL)
        *why = reason;
    errno = EBADMSG;
    return -1;
}

/* Index of the setting called name (nlen bytes) in env, or env->count. */
static size_t find_setting(const struct rules_env *env,
                           const unsigned char *name, size_t nlen)
{
    for (size_t i = 0; i < env->count; i++) {
        if (strlen(env->set[i].name) == nlen &&
            memcmp(env->set[i].name, name, nlen) == 0)
            return i;
    }
    return env->count;
}

int rules_parse_value(const unsigned char *val, size_t len,
                      struct rules_env *env, const char **why)
{
    size_t pos = 0, used = 0;
    int deny = 0;

    env->count = 0;
    if (len > RULES_VALUE_MAX)
        return malformed(env, why, "rule value too long");
    if (len > 0 && val == NULL)
        return malformed(env, why, "rule value missing");
    while (pos < len) {
        const unsigned char *e = val + pos;
        const unsigned char *nul = memchr(e, 0, len - pos);
        const unsigned char *name, *eq, *value;
        size_t elen, nlen, vlen, slot;

        /* tcpserver silently skips an unterminated last entry -- even a
         * "D": a truncated deny would let the connection in.  Refuse. */
        if (nul == NULL)
            return malformed(env, why, "rule entry not NUL-terminated");
        elen = (size_t)(nul - e);
        pos += elen + 1;
        if (elen == 0)
            return malformed(env, why, "empty rule entry");
        if (e[0] == 'D') {
            if (elen != 1)
                return malformed(env, why, "malformed deny entry");
            deny = 1;
            continue;
        }
        if (e[0] != '+')
            return malformed(env, why, "unknown rule entry type");
        name = e + 1;
        eq = memchr(name, '=', elen - 1);
        if (eq == NULL)
            return malformed(env, why, "rule setting without '='");
        nlen = (size_t)(eq - name);
        value = eq + 1;
        vlen = elen - 1 - nlen - 1;
        if (nlen == 0)
            return malformed(env, why, "rule setting with an empty name");
        for (size_t i = 0; i < nlen; i++) {
            /* The name goes into the app's environment: printable, no
             * space (tcprules turns ", X=..." into the name " X"). */
            if (name[i] < 0x21 || name[i] > 0x7e)
                return malformed(env, why, "bad character in a variable name");
        }
        slot = find_setting(env, name, nlen);
        if (slot == env->count) {
            if (env->count == RULES_ENV_MAX)
                return malformed(env, why, "too many settings in one rule");
            if (nlen + 1 > sizeof env->storage - used)
                return malformed(env, why, "rule settings too long");
            memcpy(env->storage + used, name, nlen);
            env->storage[used + nlen] = '\0';
            env->set[slot].name = env->storage + used;
            used += nlen + 1;
        }
        /* A repeated name keeps its slot and takes the later value, as
         * tcpserver's successive setenv()s do. */
        if (vlen + 1 > sizeof env->storage - used)
            return malformed(env, why, "rule settings too long");
        memcpy(env->storage + used, value, vlen);
        env->storage[used + vlen] = '\0';
        env->set[slot].value = env->storage + used;
        used += vlen + 1;
        if (slot == env->count)
            env->count++;
    }
    if (deny) {
        /* A deny's settings were checked (a malformed one is reported)
         * but are never used: nothing runs. */
        env->count = 0;
        if (why != NULL)
            *why = "denied by rule";
        return RULES_DENY;
    }
    if (why != NULL)
        *why = "allowed by rule";
    return RULES_ALLOW;
}

/* ---- addresses -------------------------------------------------------- */

/* Parses ip (IPv4 dotted quad or IPv6 text) into 16 bytes, IPv4 as
 * IPv4-mapped, and when text is not NULL writes the canonical text form
 * (inet_ntop's; a mapped address as plain IPv4).  Returns 0 or -1. */
static int canon_ip(const char *ip, unsigned char bin[16], char *text,
                    size_t cap)
{
    struct in6_addr a6;
    struct in_addr a4;
    int v4;

    if (ip == NULL || strnlen(ip, RULES_KEY_MAX) >= RULES_KEY_MAX)
        return -1;
    if (inet_pton(AF_INET, ip, &a4) == 1) {
        memset(&a6, 0, sizeof a6);
        a6.s6_addr[10] = 0xff;
        a6.s6_addr[11] = 0xff;
        memcpy(&a6.s6_addr[12], &a4, 4);
        v4 = 1;
    } else if (inet_pton(AF_INET6, ip, &a6) == 1) {
        v4 = IN6_IS_ADDR_V4MAPPED(&a6);
        if (v4)
            memcpy(&a4, &a6.s6_addr[12], 4);
    } else {
        return -1;
    }
    memcpy(bin, a6.s6_addr, 16);
    if (text != NULL) {
        const char *ok = v4 ? inet_ntop(AF_INET, &a4, text, (socklen_t)cap)
                            : inet_ntop(AF_INET6, &a6, text, (socklen_t)cap);
        if (ok == NULL)
            return -1;
    }
    return 0;
}

/* ---- the lookup ------------------------------------------------------- */

/* Looks up the first klen bytes of key.  Returns 0 when there is no such
 * rule, 1 with the decoded verdict in *verdict, or -1 (errno, *why). */
static int probe(int fd, const char *key, size_t klen, struct rules_env *env,
                 int *verdict, const char **why)
{
    unsigned char val[RULES_VALUE_MAX];
    unsigned dlen = 0;
    int r;

    errno = 0;
    r = cdb_seek(fd, key, (unsigned)klen, &dlen);
    if (r == 0)
        return 0;
    if (r < 0) {
        if (errno == 0)
            errno = EIO;
        if (why != NULL)
            *why = "cannot read the rules file (corrupt or unreadable cdb)";
        return -1;
    }
    env->matched = 1;
    memcpy(env->rule, key, klen);
    env->rule[klen] = '\0';
    /* Bounded before anything is read: dlen comes from the file. */
    if (dlen > RULES_VALUE_MAX) {
        errno = EMSGSIZE;
        if (why != NULL)
            *why = "rule value too long";
        return -1;
    }
    errno = 0;
    if (cdb_bread(fd, val, (int)dlen) < 0) {
        if (errno == 0)
            errno = EIO;
        if (why != NULL)
            *why = "cannot read a rule value (truncated cdb?)";
        return -1;
    }
    *verdict = rules_parse_value(val, dlen, env, why);
    return *verdict < 0 ? -1 : 1;
}

int rules_lookup(int cdb_fd, const char *remote_ip, struct rules_env *env,
                 const char **why)
{
    char key[RULES_KEY_MAX];
    unsigned char bin[16];
    size_t klen;
    int verdict = RULES_DENY, r;

    env->count = 0;
    env->matched = 0;
    env->rule[0] = '\0';
    if (canon_ip(remote_ip, bin, key, sizeof key) < 0) {
        errno = EINVAL;
        if (why != NULL)
            *why = "not an IP address";
        return -1;
    }
    if (cdb_fd < 0) {
        errno = EBADF;
        if (why != NULL)
            *why = "no rules file";
        return -1;
    }
    klen = strlen(key);
    /* tcpserver's order (rules.c in ucspi-tcp, -H -R): the address, its
     * prefixes ending in a separator, longest first, then "". */
    r = probe(cdb_fd, key, klen, env, &verdict, why);
    for (size_t n = klen - 1; r == 0 && n > 0; n--) {
        if (key[n - 1] == '.' || key[n - 1] == ':')
            r = probe(cdb_fd, key, n, env, &verdict, why);
    }
    if (r == 0)
        r = probe(cdb_fd, key, 0, env, &verdict, why);
    if (r < 0)
        return -1;
    if (r == 0) {
        /* No rule, not even a default: tcpserver lets it in. */
        if (why != NULL)
            *why = "no rule matched";
        return RULES_ALLOW;
    }
    return verdict;
}

/* ---- MAXCONIP --------------------------------------------------------- */

struct rules_iptable_slot {
    pid_t pid;
    unsigned char addr[16];
};

struct rules_iptable {
    size_t cap;
    size_t used; /* slots[0 .. used) are live; kept dense */
    struct rules_iptable_slot slots[];
};

struct rules_iptable *rules_iptable_new(size_t max_entries)
{
    struct rules_iptable *t;

    if (max_entries == 0 || max_entries > RULES_IPTABLE_MAX) {
        errno = EINVAL;
        return NULL;
    }
    t = calloc(1, sizeof *t + max_entries * sizeof t->slots[0]);
    if (t == NULL)
        return NULL;
    t->cap = max_entries;
    return t;
}

static unsigned count_addr(const struct rules_iptable *t,
                           const unsigned char addr[16])
{
    unsigned n = 0;

    for (size_t i = 0; i < t->used; i++) {
        if (memcmp(t->slots[i].addr, addr, 16) == 0)
            n++;
    }
    return n;
}

int rules_iptable_add(struct rules_iptable *t, const char *ip, pid_t pid,
                      unsigned limit)
{
    unsigned char addr[16];

    if (t == NULL || pid <= 0 || canon_ip(ip, addr, NULL, 0) < 0) {
        errno = EINVAL;
        return -1;
    }
    for (size_t i = 0; i < t->used; i++) {
        if (t->slots[i].pid == pid) {
            errno = EEXIST;
            return -1;
        }
    }
    if (limit > 0 && count_addr(t, addr) >= limit)
        return 1;
    if (t->used == t->cap) {
        errno = ENOSPC;
        return -1;
    }
    t->slots[t->used].pid = pid;
    memcpy(t->slots[t->used].addr, addr, 16);
    t->used++;
    return 0;
}

void rules_iptable_remove_pid(struct rules_iptable *t, pid_t pid)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->used; i++) {
        if (t->slots[i].pid == pid) {
            t->slots[i] = t->slots[t->used - 1];
            t->used--;
            return; /* add() keeps pids unique */
        }
    }
}

unsigned rules_iptable_count(const struct rules_iptable *t, const char *ip)
{
    unsigned char addr[16];

    if (t == NULL || canon_ip(ip, addr, NULL, 0) < 0)
        return 0;
    return count_addr(t, addr);
}

void rules_iptable_free(struct rules_iptable *t)
{
    free(t);
}
