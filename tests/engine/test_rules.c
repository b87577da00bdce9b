/* Access control: the rule value decoder on hostile input; lookups in cdb
 * files written by the real tcprules(1) (tcpserver's order: exact address,
 * then shorter prefixes, then the default; no rule allows); IPv6 rules and
 * broken files written with tinycdb directly; the per-IP table.
 * Exits 77 (after running everything else) when tcprules is missing. */
#include "check.h"
#include "rules.h"

#include <cdb.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

static char dir[256];
static int tcprules_missing;

/* ---- helpers ---------------------------------------------------------- */

static void path_in_dir(char *out, size_t cap, const char *name)
{
    snprintf(out, cap, "%s/%s", dir, name);
}

static int write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    ssize_t w;

    if (fd < 0)
        return -1;
    w = len > 0 ? write(fd, data, len) : 0;
    close(fd);
    return w == (ssize_t)len ? 0 : -1;
}

/* Runs `tcprules name name.tmp < text` in dir.  Returns tcprules' exit
 * code, 127 when it cannot be run. */
static int run_tcprules(const char *name, const char *text)
{
    char in[512], cdb[512], tmp[512];
    pid_t pid;
    int status;

    path_in_dir(in, sizeof in, "rules.txt");
    path_in_dir(cdb, sizeof cdb, name);
    path_in_dir(tmp, sizeof tmp, "rules.tmp");
    if (write_file(in, text, strlen(text)) < 0)
        return -1;
    pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int fd = open(in, O_RDONLY);
        if (fd < 0 || dup2(fd, 0) < 0)
            _exit(126);
        execlp("tcprules", "tcprules", cdb, tmp, (char *)NULL);
        _exit(127);
    }
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

struct pair {
    const char *key;
    const char *val;
    size_t vlen;
};

/* Writes a cdb with tinycdb itself: keys and values tcprules cannot
 * write (IPv6 keys with this tcprules, malformed values). */
static int make_cdb(const char *name, const struct pair *p, size_t n)
{
    char path[512];
    struct cdb_make cm;
    int fd, rc = 0;

    path_in_dir(path, sizeof path, name);
    fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    if (cdb_make_start(&cm, fd) < 0)
        rc = -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        if (cdb_make_add(&cm, p[i].key, (unsigned)strlen(p[i].key), p[i].val,
                         (unsigned)p[i].vlen) < 0)
            rc = -1;
    }
    if (rc == 0 && cdb_make_finish(&cm) < 0)
        rc = -1;
    close(fd);
    return rc;
}

/* Looks ip up in dir/name; *why and env as rules_lookup leaves them. */
static int lookup(const char *name, const char *ip, struct rules_env *env,
                  const char **why)
{
    char path[512];
    int fd, r;

    *why = NULL;
    path_in_dir(path, sizeof path, name);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        fprintf(stderr, "cannot open %s\n", path);
        return -2;
    }
    r = rules_lookup(fd, ip, env, why);
    close(fd);
    return r;
}

/* The value of name in env, or NULL. */
static const char *env_get(const struct rules_env *env, const char *name)
{
    for (size_t i = 0; i < env->count; i++) {
        if (strcmp(env->set[i].name, name) == 0)
            return env->set[i].value;
    }
    return NULL;
}

static int parse(const void *v, size_t len, struct rules_env *env,
                 const char **why)
{
    *why = NULL;
    errno = 0;
    return rules_parse_value(v, len, env, why);
}

/* ---- the decoder ------------------------------------------------------ */

#define P(lit) (lit), sizeof(lit) - 1

static void test_parse_wellformed(void)
{
    static struct rules_env env;
    const char *why;

    /* "allow" with no settings is tcprules' empty value. */
    CHECK(parse(P(""), &env, &why) == RULES_ALLOW && env.count == 0);
    CHECK(why != NULL);
    CHECK(parse(NULL, 0, &env, &why) == RULES_ALLOW && env.count == 0);
    CHECK(parse(P("D\0"), &env, &why) == RULES_DENY && env.count == 0);
    CHECK(why != NULL);

    CHECK(parse(P("+FOO=bar\0"), &env, &why) == RULES_ALLOW);
    CHECK(env.count == 1);
    CHECK_STREQ(env.set[0].name, "FOO");
    CHECK_STREQ(env.set[0].value, "bar");

    /* Empty values, '=' and spaces inside values, order kept. */
    CHECK(parse(P("+A=x=y\0+B=\0+Q=a b\0"), &env, &why) == RULES_ALLOW);
    CHECK(env.count == 3);
    CHECK_STREQ(env.set[0].name, "A");
    CHECK_STREQ(env.set[0].value, "x=y");
    CHECK_STREQ(env.set[1].name, "B");
    CHECK_STREQ(env.set[1].value, "");
    CHECK_STREQ(env.set[2].value, "a b");

    /* Repeated name: one slot, the last value (tcpserver's setenv order). */
    CHECK(parse(P("+FOO=1\0+BAR=x\0+FOO=2\0"), &env, &why) == RULES_ALLOW);
    CHECK(env.count == 2);
    CHECK_STREQ(env_get(&env, "FOO"), "2");
    CHECK_STREQ(env.set[0].name, "FOO");

    /* A deny with settings (tcprules writes "D\0+X=y\0"): deny, no env. */
    CHECK(parse(P("D\0+X=y\0"), &env, &why) == RULES_DENY && env.count == 0);
    /* 'D' anywhere denies, as in tcpserver. */
    CHECK(parse(P("+A=1\0D\0"), &env, &why) == RULES_DENY && env.count == 0);
}

static void expect_malformed(const void *v, size_t len, const char *what)
{
    static struct rules_env env;
    const char *why;
    int r;

    env.count = 99;
    r = parse(v, len, &env, &why);
    if (r != -1 || env.count != 0 || why == NULL || errno != EBADMSG)
        fprintf(stderr, "not refused: %s (r=%d)\n", what, r);
    CHECK(r == -1);
    CHECK(env.count == 0);
    CHECK(why != NULL);
    CHECK(errno == EBADMSG);
}

static void test_parse_hostile(void)
{
    static unsigned char big[RULES_VALUE_MAX + 16];
    static struct rules_env env;
    const char *why;
    size_t n;

    expect_malformed(P("X\0"), "unknown entry type");
    expect_malformed(P("A\0"), "'A' is not a tcprules entry type");
    expect_malformed(P("\0"), "empty entry");
    expect_malformed(P("+A=1\0\0"), "empty entry after a setting");
    /* tcpserver would ignore this unterminated "D" and allow. */
    expect_malformed(P("D"), "unterminated deny");
    expect_malformed(P("+A=b"), "unterminated setting");
    expect_malformed(P("+A=b\0+C=d"), "unterminated last setting");
    expect_malformed(P("Dx\0"), "deny with trailing bytes");
    expect_malformed(P("+A\0"), "setting without '='");
    expect_malformed(P("+\0"), "setting with nothing");
    expect_malformed(P("+=x\0"), "empty name");
    expect_malformed(P("+ A=x\0"), "space in name");
    expect_malformed(P("+A\tB=x\0"), "tab in name");
    expect_malformed(P("+A\x01=x\0"), "control byte in name");
    expect_malformed(P("+\xc3\xa9=x\0"), "non-ASCII name");
    expect_malformed(P("D\0+A\0"), "deny followed by a malformed setting");

    /* 64 distinct settings fit; 65 do not. */
    n = 0;
    for (int i = 0; i < RULES_ENV_MAX; i++)
        n += (size_t)snprintf((char *)big + n, sizeof big - n, "+V%02d=%d", i, i) + 1;
    CHECK(parse(big, n, &env, &why) == RULES_ALLOW && env.count == RULES_ENV_MAX);
    CHECK_STREQ(env_get(&env, "V63"), "63");
    n += (size_t)snprintf((char *)big + n, sizeof big - n, "+V64=x") + 1;
    expect_malformed(big, n, "65 settings");

    /* ... but repeating one name 200 times is one setting. */
    n = 0;
    for (int i = 0; i < 200; i++)
        n += (size_t)snprintf((char *)big + n, sizeof big - n, "+R=%d", i) + 1;
    CHECK(parse(big, n, &env, &why) == RULES_ALLOW && env.count == 1);
    CHECK_STREQ(env_get(&env, "R"), "199");

    /* Storage: "A\0" + value + NUL must fit in RULES_STORAGE_MAX. */
    n = RULES_STORAGE_MAX - 3; /* "A\0" + n bytes + NUL == storage */
    big[0] = '+';
    big[1] = 'A';
    big[2] = '=';
    memset(big + 3, 'v', n);
    big[3 + n] = '\0';
    CHECK(parse(big, 3 + n + 1, &env, &why) == RULES_ALLOW && env.count == 1);
    CHECK(strlen(env.set[0].value) == n);
    memset(big + 3, 'v', n + 1);
    big[3 + n + 1] = '\0';
    expect_malformed(big, 3 + n + 2, "one byte over storage");

    /* Over RULES_VALUE_MAX is refused before it is read. */
    memset(big, 0, sizeof big);
    expect_malformed(big, RULES_VALUE_MAX + 1, "value over the maximum");
    big[0] = 'D';
    big[1] = '\0';
    CHECK(parse(big, 2, &env, &why) == RULES_DENY);

    /* Every pointer points into storage. */
    CHECK(parse(P("+AA=1\0+BB=22\0"), &env, &why) == RULES_ALLOW);
    for (size_t i = 0; i < env.count; i++) {
        CHECK(env.set[i].name >= env.storage &&
              env.set[i].name < env.storage + sizeof env.storage);
        CHECK(env.set[i].value >= env.storage &&
              env.set[i].value < env.storage + sizeof env.storage);
    }
}

/* ---- lookups in tcprules' files --------------------------------------- */

static void test_tcprules_order(void)
{
    static struct rules_env env;
    const char *why;

    int rc = run_tcprules("order.cdb",
                          "# a comment\n"
                          "127.0.0.1:allow,FOO=\"exact\"\n"
                          "127.0.0.:allow,FOO=\"p3\"\n"
                          "127.0.:deny\n"
                          "127.:allow,FOO=\"p1\"\n"
                          "10.:deny\n"
                          "1.2.3.37-39:deny\n"
                          "=host.example:deny\n"
                          "joe@192.0.2.1:deny\n"
                          ":allow,FOO=\"default\"\n");
    if (rc == 127) {
        tcprules_missing = 1;
        return;
    }
    CHECK(rc == 0);

    /* exact beats every prefix */
    CHECK(lookup("order.cdb", "127.0.0.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "exact");
    CHECK(env.matched == 1);
    CHECK_STREQ(env.rule, "127.0.0.1");
    /* the longest prefix wins */
    CHECK(lookup("order.cdb", "127.0.0.2", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "p3");
    CHECK_STREQ(env.rule, "127.0.0.");
    CHECK(lookup("order.cdb", "127.0.1.1", &env, &why) == RULES_DENY);
    CHECK(env.count == 0);
    CHECK_STREQ(env.rule, "127.0.");
    CHECK(why != NULL);
    CHECK(lookup("order.cdb", "127.1.1.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "p1");
    /* the default last */
    CHECK(lookup("order.cdb", "192.168.1.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "default");
    CHECK(env.matched == 1);
    CHECK_STREQ(env.rule, "");
    CHECK(lookup("order.cdb", "10.9.9.9", &env, &why) == RULES_DENY);
    /* prefixes end at a dot: "10." is no prefix of 100.1.1.1 */
    CHECK(lookup("order.cdb", "100.1.1.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "default");
    /* tcprules' ranges */
    CHECK(lookup("order.cdb", "1.2.3.38", &env, &why) == RULES_DENY);
    CHECK(lookup("order.cdb", "1.2.3.40", &env, &why) == RULES_ALLOW);
    /* no DNS or ident: "=host" and "user@ip" rules never match */
    CHECK(lookup("order.cdb", "192.0.2.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "default");
    /* an IPv4-mapped IPv6 address follows the IPv4 rules */
    CHECK(lookup("order.cdb", "::ffff:10.1.1.1", &env, &why) == RULES_DENY);
    CHECK_STREQ(env.rule, "10.");
    CHECK(lookup("order.cdb", "::ffff:127.0.0.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "exact");
    /* an IPv6 address meets only the default here */
    CHECK(lookup("order.cdb", "2001:db8::1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "FOO"), "default");
}

static void test_tcprules_env(void)
{
    static struct rules_env env;
    const char *why;

    if (tcprules_missing)
        return;
    CHECK(run_tcprules("env.cdb",
                       "9.9.9.9:allow,A=/x=y/,B=\"\",C=|c d|,A=\"again\"\n"
                       "5.6.7.8:deny,X=\"y\"\n"
                       "1.2.3.4:allow\n"
                       "1.2.3.4:deny\n"
                       "10.:deny\n") == 0);
    CHECK(lookup("env.cdb", "9.9.9.9", &env, &why) == RULES_ALLOW);
    CHECK(env.count == 3);
    CHECK_STREQ(env_get(&env, "A"), "again");
    CHECK_STREQ(env_get(&env, "B"), "");
    CHECK_STREQ(env_get(&env, "C"), "c d");
    /* a deny's settings are dropped */
    CHECK(lookup("env.cdb", "5.6.7.8", &env, &why) == RULES_DENY && env.count == 0);
    /* the same address twice: the first line wins (cdb's first record) */
    CHECK(lookup("env.cdb", "1.2.3.4", &env, &why) == RULES_ALLOW && env.count == 0);
    /* no rule and no default: allowed, as tcpserver does */
    CHECK(lookup("env.cdb", "11.1.1.1", &env, &why) == RULES_ALLOW);
    CHECK(env.count == 0 && env.matched == 0);
    CHECK(why != NULL);

    /* tcprules with no rules at all */
    CHECK(run_tcprules("none.cdb", "# nothing\n") == 0);
    CHECK(lookup("none.cdb", "10.0.0.1", &env, &why) == RULES_ALLOW);
    CHECK(env.matched == 0);
}

/* A cdb written by tcprules, then cut short: a read error, never allow. */
static void test_tcprules_truncated(void)
{
    static struct rules_env env;
    static char buf[65536];
    char path[512], cut[512];
    const char *why;
    ssize_t n;
    int fd;

    if (tcprules_missing)
        return;
    CHECK(run_tcprules("full.cdb", "10.:allow,A=\"1\"\n:deny\n") == 0);
    path_in_dir(path, sizeof path, "full.cdb");
    path_in_dir(cut, sizeof cut, "cut.cdb");
    fd = open(path, O_RDONLY | O_CLOEXEC);
    CHECK(fd >= 0);
    n = fd >= 0 ? read(fd, buf, sizeof buf) : -1;
    if (fd >= 0)
        close(fd);
    CHECK(n > 2048 + 8);
    if (n <= 2048 + 8)
        return;
    /* header intact, records and hash tables gone */
    CHECK(write_file(cut, buf, 2048 + 8) == 0);
    CHECK(lookup("cut.cdb", "10.0.0.1", &env, &why) == -1);
    CHECK(why != NULL);
    /* shorter than the header */
    CHECK(write_file(cut, buf, 100) == 0);
    CHECK(lookup("cut.cdb", "10.0.0.1", &env, &why) == -1);
    CHECK(write_file(cut, buf, 0) == 0);
    CHECK(lookup("cut.cdb", "10.0.0.1", &env, &why) == -1);
}

/* ---- files tcprules cannot write -------------------------------------- */

static void test_ipv6(void)
{
    static struct rules_env env;
    const char *why;
    static const struct pair p[] = {
        {"2001:db8::1", P("D\0")},
        {"2001:db8:", P("+A=db8\0")},
        {"2001:", P("+A=2001\0")},
        {"::1", P("+A=loopback\0")},
        {"fe80::", P("D\0")},
        {"", P("+A=default\0")},
    };

    CHECK(make_cdb("v6.cdb", p, sizeof p / sizeof p[0]) == 0);
    CHECK(lookup("v6.cdb", "2001:db8::1", &env, &why) == RULES_DENY);
    CHECK_STREQ(env.rule, "2001:db8::1");
    /* any spelling of it is the same address */
    CHECK(lookup("v6.cdb", "2001:DB8:0:0:0:0:0:1", &env, &why) == RULES_DENY);
    CHECK(lookup("v6.cdb", "2001:db8:5::2", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "A"), "db8");
    CHECK_STREQ(env.rule, "2001:db8:");
    CHECK(lookup("v6.cdb", "2001:db9::5", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "A"), "2001");
    CHECK(lookup("v6.cdb", "::1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "A"), "loopback");
    CHECK(lookup("v6.cdb", "fe80::1", &env, &why) == RULES_DENY);
    CHECK_STREQ(env.rule, "fe80::");
    CHECK(lookup("v6.cdb", "2002::1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "A"), "default");
    CHECK(lookup("v6.cdb", "10.0.0.1", &env, &why) == RULES_ALLOW);
    CHECK_STREQ(env_get(&env, "A"), "default");
}

static void test_hostile_files(void)
{
    static struct rules_env env;
    static char huge[RULES_VALUE_MAX + 1];
    const char *why;
    const struct pair p[] = {
        {"1.1.1.1", P("D")},           /* unterminated deny */
        {"1.1.1.2", P("+A\0")},        /* no '=' */
        {"1.1.1.3", P("A+A=1\0")},     /* not tcprules' format */
        {"1.1.1.4", huge, sizeof huge}, /* over RULES_VALUE_MAX */
        {"", P("")},                   /* default: allow */
    };

    CHECK(make_cdb("bad.cdb", p, sizeof p / sizeof p[0]) == 0);
    for (int i = 1; i <= 3; i++) {
        char ip[32];
        snprintf(ip, sizeof ip, "1.1.1.%d", i);
        errno = 0;
        CHECK(lookup("bad.cdb", ip, &env, &why) == -1);
        CHECK(errno == EBADMSG && why != NULL && env.count == 0);
        CHECK(env.matched == 1);
        CHECK_STREQ(env.rule, ip);
    }
    errno = 0;
    CHECK(lookup("bad.cdb", "1.1.1.4", &env, &why) == -1);
    CHECK(errno == EMSGSIZE && why != NULL);
    /* the good default still works */
    CHECK(lookup("bad.cdb", "1.1.1.5", &env, &why) == RULES_ALLOW);
    CHECK(env.matched == 1 && env.count == 0);

    /* not addresses */
    static const char *const notip[] = {
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "host.example", "1.2.3.4 ",
        "::1::2", "1.2.3.4/8", "0x7f.1.1.1",
        "1111:2222:3333:4444:5555:6666:7777:8888:9999:aaaa:bbbb:cccc:dddd"};
    for (size_t i = 0; i < sizeof notip / sizeof notip[0]; i++) {
        errno = 0;
        CHECK(lookup("bad.cdb", notip[i], &env, &why) == -1);
        CHECK(errno == EINVAL && why != NULL);
    }
    CHECK(rules_lookup(-1, "1.2.3.4", &env, &why) == -1);
    CHECK(rules_lookup(0, NULL, &env, &why) == -1 && errno == EINVAL);

    /* a file of zeros is a valid empty cdb: no rule, allowed */
    {
        static char zeros[2048];
        char path[512];
        path_in_dir(path, sizeof path, "zero.cdb");
        CHECK(write_file(path, zeros, sizeof zeros) == 0);
        CHECK(lookup("zero.cdb", "1.2.3.4", &env, &why) == RULES_ALLOW);
        CHECK(env.matched == 0);
    }
}

/* ---- MAXCONIP --------------------------------------------------------- */

static void test_iptable(void)
{
    struct rules_iptable *t;

    errno = 0;
    CHECK(rules_iptable_new(0) == NULL && errno == EINVAL);
    CHECK(rules_iptable_new((size_t)-1) == NULL);
    rules_iptable_free(NULL);
    rules_iptable_remove_pid(NULL, 1);
    CHECK(rules_iptable_count(NULL, "1.2.3.4") == 0);

    t = rules_iptable_new(4);
    CHECK(t != NULL);
    if (t == NULL)
        return;
    CHECK(rules_iptable_add(t, "10.0.0.1", 100, 2) == 0);
    CHECK(rules_iptable_add(t, "10.0.0.1", 101, 2) == 0);
    CHECK(rules_iptable_count(t, "10.0.0.1") == 2);
    /* the third from the same address is over the limit, and not kept */
    CHECK(rules_iptable_add(t, "10.0.0.1", 102, 2) == 1);
    CHECK(rules_iptable_add(t, "::ffff:10.0.0.1", 103, 2) == 1);
    CHECK(rules_iptable_count(t, "10.0.0.1") == 2);
    CHECK(rules_iptable_count(t, "::FFFF:10.0.0.1") == 2);
    /* other addresses are counted apart */
    CHECK(rules_iptable_add(t, "10.0.0.2", 104, 2) == 0);
    CHECK(rules_iptable_count(t, "10.0.0.2") == 1);
    CHECK(rules_iptable_count(t, "10.0.0.3") == 0);
    /* limit 0: no per-IP limit */
    CHECK(rules_iptable_add(t, "10.0.0.1", 105, 0) == 0);
    CHECK(rules_iptable_count(t, "10.0.0.1") == 3);
    /* a (lower) per-rule limit still refuses */
    CHECK(rules_iptable_add(t, "10.0.0.1", 106, 1) == 1);
    /* full table */
    errno = 0;
    CHECK(rules_iptable_add(t, "10.0.0.3", 107, 0) == -1 && errno == ENOSPC);
    CHECK(rules_iptable_count(t, "10.0.0.3") == 0);
    /* removal by pid frees a slot and a place under the limit */
    rules_iptable_remove_pid(t, 101);
    CHECK(rules_iptable_count(t, "10.0.0.1") == 2);
    rules_iptable_remove_pid(t, 101); /* twice: ignored */
    rules_iptable_remove_pid(t, 999); /* unknown: ignored */
    CHECK(rules_iptable_count(t, "10.0.0.1") == 2);
    CHECK(rules_iptable_add(t, "10.0.0.3", 107, 0) == 0);
    /* bad arguments */
    errno = 0;
    CHECK(rules_iptable_add(t, "10.0.0.9", 100, 0) == -1 && errno == EEXIST);
    rules_iptable_remove_pid(t, 104);
    errno = 0;
    CHECK(rules_iptable_add(t, "not an ip", 200, 0) == -1 && errno == EINVAL);
    CHECK(rules_iptable_add(t, "10.0.0.9", 0, 0) == -1 && errno == EINVAL);
    CHECK(rules_iptable_add(t, "10.0.0.9", -5, 0) == -1 && errno == EINVAL);
    CHECK(rules_iptable_add(t, NULL, 200, 0) == -1 && errno == EINVAL);
    CHECK(rules_iptable_count(t, "garbage") == 0);
    /* IPv6, any spelling */
    CHECK(rules_iptable_add(t, "2001:db8::1", 300, 1) == 0);
    CHECK(rules_iptable_add(t, "2001:DB8:0::1", 301, 1) == 1);
    CHECK(rules_iptable_count(t, "2001:db8:0:0:0:0:0:1") == 1);
    /* everything gone */
    rules_iptable_remove_pid(t, 100);
    rules_iptable_remove_pid(t, 105);
    rules_iptable_remove_pid(t, 107);
    rules_iptable_remove_pid(t, 300);
    CHECK(rules_iptable_count(t, "10.0.0.1") == 0);
    CHECK(rules_iptable_count(t, "10.0.0.3") == 0);
    CHECK(rules_iptable_count(t, "2001:db8::1") == 0);
    for (pid_t p = 1; p <= 4; p++)
        CHECK(rules_iptable_add(t, "192.0.2.7", p, 4) == 0);
    CHECK(rules_iptable_add(t, "192.0.2.7", 5, 0) == -1);
    rules_iptable_free(t);
}

/* ---- main ------------------------------------------------------------- */

static void cleanup(void)
{
    static const char *const names[] = {
        "rules.txt", "rules.tmp", "order.cdb", "env.cdb", "none.cdb", "full.cdb",
        "cut.cdb", "v6.cdb", "bad.cdb", "zero.cdb"};
    char path[512];

    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        path_in_dir(path, sizeof path, names[i]);
        unlink(path);
    }
    rmdir(dir);
}

int main(void)
{
    const char *tmp = getenv("TMPDIR");

    snprintf(dir, sizeof dir, "%s/test_rules.XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(dir) == NULL) {
        perror("mkdtemp");
        return 1;
    }
    test_parse_wellformed();
    test_parse_hostile();
    test_tcprules_order();
    test_tcprules_env();
    test_tcprules_truncated();
    test_ipv6();
    test_hostile_files();
    test_iptable();
    cleanup();
    if (tcprules_missing && check_failures == 0) {
        fprintf(stderr, "test_rules: SKIPPED the tcprules(1) fixtures: tcprules "
                        "not found in PATH (install ucspi-tcp)\n");
        return 77;
    }
    return check_done("test_rules");
}
