/* ucspitls_app: the application side of UCSPI-TLS, for programs that run
 * under a UCSPI-TLS server (and for the server itself, which decodes and
 * encodes the same `Y` reply block).
 *
 * The protocol (DESIGN.md section 4): the server gives the application three
 * distinct fds >= 3 in $SSLCTLFD (control socket), $SSLREADFD and
 * $SSLWRITEFD (pipes).  The application talks plaintext on fds 0/1, writes
 * one command byte to the control fd ('y' = start TLS, 'Y' = start TLS and
 * send back the session variables), then continues on the pipes.
 *
 * No OpenSSL here: applications link this without pulling in a TLS library.
 * Nothing in this module calls exit() or writes to stdout/stderr. */
#ifndef UCSPITLS_APP_H
#define UCSPITLS_APP_H

#include <stddef.h>

/* How the operator asked for TLS, from $UCSPITLS. */
enum ucspitls_level {
    UCSPITLS_OFF = 0,      /* unset or "-": do not offer STARTTLS */
    UCSPITLS_OFFERED = 1,  /* anything else (including ""): offer it */
    UCSPITLS_REQUIRED = 2, /* "!": offer it and refuse mail without it */
};

/* Error codes returned (negated) by the functions below.  Every failure is
 * one of these; UCSPITLS_ERR_SYS leaves errno set by the failing call. */
enum ucspitls_err {
    UCSPITLS_ERR_SYS = -1,         /* a system call failed; see errno */
    UCSPITLS_ERR_ARG = -2,         /* bad argument from the caller */
    UCSPITLS_ERR_EMPTY = -3,       /* block has no bytes at all */
    UCSPITLS_ERR_BARE_NAME = -4,   /* an entry without '=' */
    UCSPITLS_ERR_BAD_NAME = -5,    /* empty name, or not [A-Za-z_][A-Za-z0-9_]* */
    UCSPITLS_ERR_UNTERMINATED = -6, /* last entry has no trailing \0 */
    UCSPITLS_ERR_TRAILING = -7,    /* bytes after the terminating \0 */
    UCSPITLS_ERR_TOO_MANY = -8,    /* more than UCSPITLS_VARS_MAX entries */
    UCSPITLS_ERR_TOO_BIG = -9,     /* more than UCSPITLS_BLOCK_MAX bytes */
    UCSPITLS_ERR_DUPLICATE = -10,  /* the same name twice */
    UCSPITLS_ERR_BAD_VALUE = -11,  /* (encode) a value containing \0 */
    UCSPITLS_ERR_NOSPACE = -12,    /* (encode) output buffer too small */
    UCSPITLS_ERR_ENV = -13,        /* SSLCTLFD/SSLREADFD/SSLWRITEFD missing or invalid */
    UCSPITLS_ERR_HANDSHAKE = -14,  /* server closed ctl without a reply: TLS failed */
};

/* Limits of a `Y` reply block, enforced by both the decoder and the encoder
 * so that whatever one side produces the other accepts. */
#define UCSPITLS_VARS_MAX 64
#define UCSPITLS_BLOCK_MAX 65536

/* One NAME=value entry.  In a parsed block the strings point into the
 * block's own storage (borrowed from struct ucspitls_vars); for encoding they
 * are borrowed from the caller.  value_len is the value's length in bytes
 * (without a terminator). */
struct ucspitls_var {
    const char *name;
    const char *value;
    size_t value_len;
};

/* A decoded block.  Owns `storage`; entries[0..count) point into it, in the
 * order they appeared.  Release with ucspitls_vars_free(). */
struct ucspitls_vars {
    size_t count;
    struct ucspitls_var entries[UCSPITLS_VARS_MAX];
    char *storage;
};

/* Parses the value of $UCSPITLS (may be NULL) the way s/qmail and
 * acceptutils do: NULL or "-" => UCSPITLS_OFF, "!" => UCSPITLS_REQUIRED,
 * anything else (including "") => UCSPITLS_OFFERED. */
int ucspitls_level(const char *env_value);

/* Decodes a `Y` reply block: "NAME=value\0" entries then one more "\0".
 * Accepted: the block ending at end of input right after the last entry's
 * "\0" (no extra "\0", as smtpd-starttls-proxy accepts), and the empty block
 * written as "\0" or "\0\0".  Rejected: len == 0, an entry without '=', an
 * empty name or one not matching [A-Za-z_][A-Za-z0-9_]*, a duplicate name, an
 * entry without its "\0", any byte after the terminating "\0", more than
 * UCSPITLS_VARS_MAX entries, len > UCSPITLS_BLOCK_MAX.  Values may hold any
 * byte but \0 (callers that print them must sanitise).
 * buf is borrowed (may contain anything; NULL only with len 0).  On success
 * returns 0 and *out owns a copy; on failure returns a negative
 * UCSPITLS_ERR_* and *out is left empty (count 0, storage NULL).  Either way
 * ucspitls_vars_free(out) is safe afterwards. */
int ucspitls_vars_parse(const char *buf, size_t len, struct ucspitls_vars *out);

/* Returns the value of `name` in a parsed block, or NULL if absent.  The
 * pointer is borrowed from vars and dies with ucspitls_vars_free(). */
const char *ucspitls_vars_get(const struct ucspitls_vars *vars, const char *name);

/* Copies every entry of vars into the process environment (setenv,
 * overwriting).  Returns 0, or UCSPITLS_ERR_SYS with errno set (entries
 * before the failing one stay set). */
int ucspitls_vars_export(const struct ucspitls_vars *vars);

/* Frees what a parse allocated and leaves *vars empty.  Accepts NULL and an
 * already-freed or failed-parse struct. */
void ucspitls_vars_free(struct ucspitls_vars *vars);

/* Encodes n entries (borrowed) as "NAME=value\0"... "\0" into out[0..cap).
 * n == 0 gives "\0\0" (the spec's empty block, which readers that wait for
 * "\0\0" also recognise).  Refuses invalid or duplicate names, values
 * containing \0, n > UCSPITLS_VARS_MAX and results over UCSPITLS_BLOCK_MAX,
 * so the output always passes ucspitls_vars_parse().  *out_len (if not NULL)
 * receives the encoded length; with UCSPITLS_ERR_NOSPACE it receives the
 * length that would have been needed, and out may then be NULL with cap 0.
 * Returns 0 or a negative UCSPITLS_ERR_*; on failure out's contents are
 * unspecified. */
int ucspitls_vars_encode(const struct ucspitls_var *vars, size_t n, char *out,
                         size_t cap, size_t *out_len);

/* Reads $SSLCTLFD, $SSLREADFD, $SSLWRITEFD: strict decimal (digits only, no
 * sign, no spaces, no leading zeros), each >= 3, all distinct, each an open
 * fd.  On success returns 0 and stores them (any pointer may be NULL); else
 * returns UCSPITLS_ERR_ENV and stores nothing.  Does not touch the fds. */
int ucspitls_env_fds(int *ctl, int *rd, int *wr);

/* Starts TLS: writes cmd ('y' or 'Y') to the control fd; for 'Y' reads the
 * control fd until the data ends in "\0\0" (or is the empty block "\0") or
 * EOF, at most UCSPITLS_BLOCK_MAX bytes, and decodes it into *out (if out is
 * NULL the block is still read and checked, then dropped).  Then dup2()s the
 * read pipe onto fd 0 and the write pipe onto fd 1, and closes the original
 * pipe fds and the control fd.  For 'y' the control fd is not read (the
 * server reports nothing for 'y').
 * The caller must already have drained any plaintext the client pipelined
 * (CVE-2011-0411) and flushed its own plaintext output: after this returns,
 * fds 0/1 carry the TLS session and the old fds 0/1 are gone.
 * Returns 0 on success.  Errors: UCSPITLS_ERR_ARG (bad cmd), UCSPITLS_ERR_ENV
 * (fds missing/invalid; nothing was touched), UCSPITLS_ERR_HANDSHAKE (EOF on
 * the control fd with no data: the server's handshake failed), a parse error
 * or UCSPITLS_ERR_TOO_BIG for a bad reply, UCSPITLS_ERR_SYS (errno set).
 * After any error except ARG/ENV the three UCSPI-TLS fds are closed and the
 * connection must be considered dead; fds 0/1 are as they were unless
 * dup2() itself failed.  *out (may be uninitialised on entry; it is never
 * freed here) is empty after any failure.  SIGPIPE is avoided on the
 * control socket. */
int ucspitls_start(char cmd, struct ucspitls_vars *out);

/* CVE-2011-0411: plaintext a client pipelined after STARTTLS must never be
 * taken as if it had come over TLS.  After reading the STARTTLS command but
 * BEFORE sending the "ready" reply (the ClientHello only comes after it),
 * drop your own input buffer and call this on fd (normally 0): it reads and
 * discards whatever the kernel already holds, without blocking.  Returns the
 * number of bytes dropped, or UCSPITLS_ERR_TOO_BIG when more than max arrive
 * meanwhile (a client that keeps sending: end the connection), or
 * UCSPITLS_ERR_SYS. */
long ucspitls_drop_pending(int fd, size_t max);

/* Returns a short English description of a UCSPITLS_ERR_* code (static
 * storage; for UCSPITLS_ERR_SYS it is strerror(errno)). */
const char *ucspitls_strerror(int err);

#endif
