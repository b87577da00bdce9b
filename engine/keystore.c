/* The key store: the one place where a private key is read.  Keeping it to
 * this file is what lets the key later move into its own process without
 * touching the rest of the engine. */
#include "internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

/* PEM password callback: the password we were given, or none at all. */
static int give_password(char *buf, int size, int rwflag, void *u)
{
    const char *pw = u;
    size_t n;

    (void)rwflag;
    if (pw == NULL)
        return -1;
    n = strlen(pw);
    if (n > (size_t)size)
        return -1;
    memcpy(buf, pw, n);
    return (int)n;
}

int keystore_read_password(int fd, char *buf, size_t cap, char *err, size_t errlen)
{
    size_t len = 0;

    for (;;) {
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            snprintf(err, errlen, "-3: unable to read the key password from fd %d: %s",
                     fd, strerror(errno));
            return -1;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len == cap - 1) {
            snprintf(err, errlen, "-3: key password on fd %d is too long", fd);
            OPENSSL_cleanse(buf, cap);
            return -1;
        }
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r'))
        len--;
    buf[len] = '\0';
    return 0;
}

EVP_PKEY *keystore_load(const char *keyfile, const char *password, char *err,
                        size_t errlen)
{
    FILE *f = fopen(keyfile, "re");
    EVP_PKEY *key;

    if (f == NULL) {
        snprintf(err, errlen, "unable to read key file %s: %s", keyfile,
                 strerror(errno));
        return NULL;
    }
    /* Our own callback: an encrypted key without -3 fails here instead of
     * prompting on a terminal the server does not have. */
    key = PEM_read_PrivateKey(f, NULL, give_password, (void *)password);
    fclose(f);
    if (key == NULL) {
        char e[256];
        unsigned long code = ERR_peek_last_error();
        ERR_error_string_n(code, e, sizeof e);
        ERR_clear_error();
        if (ERR_GET_REASON(code) == PEM_R_BAD_PASSWORD_READ)
            snprintf(err, errlen, "private key in %s is encrypted: give its "
                     "password on fd 3 with -3", keyfile);
        else if (password != NULL)
            snprintf(err, errlen, "private key in %s: wrong password, or no key (%s)",
                     keyfile, e);
        else
            snprintf(err, errlen, "no usable private key in %s: %s", keyfile, e);
    }
    return key;
}
