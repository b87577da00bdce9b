/* Access control before any TLS work: tcprules(1)-compatible rules
 * (`-x rules.cdb`) and sslserver's per-IP connection limit (MAXCONIP).
 *
 * The rules file is the cdb that tcprules writes (tinycdb reads it):
 *   key    the rule's address: "1.2.3.4", a prefix ending in '.' ("10.",
 *          "10.2."), for IPv6 (ucspi-tcp-ipv6) one ending in ':'
 *          ("2001:db8:"), "" for the default rule; tcprules also writes
 *          "=host" and "user@ip" keys, which this server never looks up.
 *   value  a sequence of NUL-terminated entries, as tcprules writes them:
 *            "D\0"               deny (always first when tcprules wrote it)
 *            "+NAME=value\0"     set NAME in the app's environment
 *          "allow" writes no entry at all: an empty value is an allow.
 *          There is no "unset" entry: tcpserver ignores "+NAME" without
 *          '=', and this decoder refuses it.
 *
 * Lookup order is tcpserver's with -H -R (no DNS, no ident: this server
 * makes neither lookup, so "=host", "=" and "user@ip" rules never match):
 * the address text, then each shorter prefix of it ending in '.' or ':',
 * longest first, then "" -- for 10.1.2.3: "10.1.2.3", "10.1.2.", "10.1.",
 * "10.", "".  For IPv6 it is what ucspi-tcp-ipv6 does (Debian's package;
 * its tcprulescheck shows it): 2001:db8::1 tries "2001:db8::1",
 * "2001:db8::", "2001:db8:", "2001:", "".  (Its tcprules splits a line at
 * the last ':' before the instructions, so "2001:db8::allow" is the prefix
 * "2001:db8:"; plain ucspi-tcp's tcprules refuses IPv6 lines.)
 * The address is first put in the one text form the server itself uses:
 * inet_ntop's (lowercase, "::" compression), an IPv4-mapped IPv6 address
 * as plain IPv4, so "::ffff:10.0.0.1" follows the "10." rules.  The first
 * key found decides; no rule at all allows, as in tcpserver.
 *
 * Where tcpserver is lenient this decoder is not, and it fails closed: a
 * value tcpserver would half-ignore (an unterminated last entry -- even an
 * unterminated "D" --, an unknown entry type, "+NAME" without '=', an
 * empty or non-printable name) is a malformed rule, and a malformed rule
 * denies. */
#ifndef UCSPITLS_ENGINE_RULES_H
#define UCSPITLS_ENGINE_RULES_H

#include <stddef.h>
#include <sys/types.h>

enum rules_verdict { RULES_ALLOW = 0, RULES_DENY = 1 };

#define RULES_ENV_MAX 64       /* distinct variables one rule may set */
#define RULES_STORAGE_MAX 4096 /* their names and values, NUL-terminated */
/* Longest rule value read from the file; anything longer is malformed
 * (and is not read).  Above what the two limits above can hold. */
#define RULES_VALUE_MAX 8192
#define RULES_KEY_MAX 64 /* canonical IPv6 text is at most 45 bytes */

struct rules_env {
    size_t count;
    struct {
        const char *name;  /* into storage; never NULL, never empty */
        const char *value; /* into storage; never NULL (may be "") */
    } set[RULES_ENV_MAX];
    char storage[RULES_STORAGE_MAX];
    /* rules_lookup() only: whether a rule decided (0: no rule matched,
     * not even a default) and its key ("" is the default rule). */
    int matched;
    char rule[RULES_KEY_MAX];
};

/* Decodes one rule value (the bytes stored in the cdb).  len is checked
 * first (over RULES_VALUE_MAX is malformed); then each entry must be
 * NUL-terminated and be "D" or "+NAME=value" with NAME non-empty printable
 * ASCII without spaces.  A later setting of the same NAME replaces the
 * earlier one (tcpserver's last-wins), so names in env are unique.
 * Returns RULES_ALLOW with env filled (count <= RULES_ENV_MAX, all within
 * storage); RULES_DENY with env->count 0 (a deny's settings are checked,
 * then dropped); or -1 (errno EBADMSG) with env->count 0 and *why the
 * reason, for a malformed value or one whose settings exceed the limits --
 * which the caller must treat as a deny.  why may be NULL; *why is a
 * static string.  env is borrowed and overwritten. */
int rules_parse_value(const unsigned char *val, size_t len,
                      struct rules_env *env, const char **why);

/* Looks remote_ip (text, IPv4 or IPv6) up in the cdb open on cdb_fd, in
 * the order above, and decodes the first value found.  cdb_fd is
 * borrowed: the master keeps it open (reopening it on reload is the
 * caller's); its file offset is moved, so it must not be shared with
 * anything that reads it.  Returns RULES_ALLOW (env set as by
 * rules_parse_value, env->matched/rule saying which rule, matched 0 and
 * no settings when there is none) or RULES_DENY; or -1 with errno and
 * *why: EINVAL for remote_ip not an address, EIO/EPROTO/... for a read
 * error or a corrupt file, EMSGSIZE for a value over RULES_VALUE_MAX,
 * EBADMSG for a malformed value.  -1 must deny: a rule that cannot be
 * read or understood never lets a connection in.  Opening the file, and
 * what to do when it is missing (tcpserver -X), are the caller's. */
int rules_lookup(int cdb_fd, const char *remote_ip, struct rules_env *env,
                 const char **why);

/* MAXCONIP: the master's table of live connections per remote address, a
 * fixed number of slots allocated once (no allocation per connection).
 * Addresses are compared in binary, IPv4-mapped IPv6 equal to IPv4.
 * Each operation scans the live entries: size it to the concurrency limit
 * (then it is never full). */
struct rules_iptable;

/* A table for at most max_entries live connections (1 .. 1<<20).
 * Returns an owned table, or NULL with errno (EINVAL, ENOMEM). */
struct rules_iptable *rules_iptable_new(size_t max_entries);

/* Records connection pid (> 0) from ip, unless ip already has limit live
 * connections (limit 0: no per-IP limit).  Returns 0 recorded; 1 over the
 * limit (refuse the connection; nothing recorded); -1 not recorded, errno
 * ENOSPC (table full), EEXIST (pid already recorded) or EINVAL (bad ip or
 * pid) -- refuse the connection then too. */
int rules_iptable_add(struct rules_iptable *t, const char *ip, pid_t pid,
                      unsigned limit);

/* Forgets the connection of pid (call when it is reaped); unknown pids
 * and a NULL table are ignored. */
void rules_iptable_remove_pid(struct rules_iptable *t, pid_t pid);

/* Live connections recorded for ip (0 for an unparsable ip). */
unsigned rules_iptable_count(const struct rules_iptable *t, const char *ip);

/* Frees the table; NULL is ignored. */
void rules_iptable_free(struct rules_iptable *t);

#endif
