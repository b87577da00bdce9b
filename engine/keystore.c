/* The key store: the one place where a private key is read.  Keeping it to
 * this file is what lets the key later move into its own process without
 * touching the rest of the engine. */
#include "internal.h"

#include <errno.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

EVP_PKEY *keystore_load(const char *keyfile, char *err, size_t errlen)
{
    FILE *f = fopen(keyfile, "re");
    EVP_PKEY *key;

    if (f == NULL) {
        snprintf(err, errlen, "unable to read key file %s: %s", keyfile,
                 strerror(errno));
        return NULL;
    }
    /* No password callback: an encrypted key must fail here, not prompt on
     * a terminal the server does not have. */
    key = PEM_read_PrivateKey(f, NULL, NULL, (void *)"");
    fclose(f);
    if (key == NULL) {
        char e[256];
        ERR_error_string_n(ERR_peek_last_error(), e, sizeof e);
        ERR_clear_error();
        snprintf(err, errlen, "no usable private key in %s: %s", keyfile, e);
    }
    return key;
}
