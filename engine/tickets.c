/* Session-ticket keys (see tickets.h). */
#include "tickets.h"
#include "internal.h"

#include <errno.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static int random_key(struct ticket_key *k)
{
    k->aes256 = 1;
    return RAND_bytes(k->name, sizeof k->name) == 1 && RAND_bytes(k->aes, sizeof k->aes) == 1 &&
                   RAND_bytes(k->hmac, sizeof k->hmac) == 1
               ? 0
               : -1;
}

int tickets_init_random(struct tickets *t, long lifetime)
{
    memset(t->keys, 0, sizeof t->keys);
    t->lifetime = lifetime;
    if (random_key(&t->keys[0]) < 0)
        return -1;
    t->n = 1;
    t->next_rotate = util_now_ms() + lifetime * 1000 / 4;
    return 0;
}

long long tickets_rotate_if_due(struct tickets *t)
{
    long long now = util_now_ms();
    struct ticket_key k;

    if (t->next_rotate == 0)
        return -1;
    if (now >= t->next_rotate && random_key(&k) == 0) {
        /* a key made a quarter-lifetime ago must decrypt for a whole
         * lifetime more: keep 4 + the new one */
        memmove(&t->keys[1], &t->keys[0], sizeof t->keys[0] * (TICKETS_MAX - 1));
        t->keys[0] = k;
        if (t->n < TICKETS_MAX)
            t->n++;
        OPENSSL_cleanse(&k, sizeof k);
        t->next_rotate = now + t->lifetime * 1000 / 4;
    }
    return t->next_rotate - now;
}

int tickets_parse_file(const char *text, size_t len, struct tickets *t, const char **why)
{
    struct ticket_key all[64];
    int n = 0, size = 0;
    size_t pos = 0;

    memset(t->keys, 0, sizeof t->keys);
    t->n = 0;
    t->next_rotate = 0;
    while (pos < len) {
        size_t end = pos, l;
        unsigned char raw[128];
        int got;

        while (end < len && text[end] != '\n')
            end++;
        l = end - pos;
        if (l > 0 && text[pos + l - 1] == '\r')
            l--;
        if (l == 0 || text[pos] == '#') {
            pos = end + 1;
            continue;
        }
        if (l > 120 || l % 4 != 0) {
            *why = "a line is not one base64 key of 48 or 80 bytes";
            goto fail;
        }
        for (size_t i = 0; i < l; i++) {
            char c = text[pos + i];
            if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                  c == '+' || c == '/' || c == '='))
                goto bad_b64;
        }
        got = EVP_DecodeBlock(raw, (const unsigned char *)text + pos, (int)l);
        if (got < 0)
            goto bad_b64;
        if (text[pos + l - 1] == '=')
            got -= text[pos + l - 2] == '=' ? 2 : 1;
        if (got != 48 && got != 80) {
            *why = "a key is neither 48 nor 80 bytes";
            goto fail;
        }
        if (size != 0 && got != size) {
            *why = "keys of 48 and 80 bytes are mixed";
            goto fail;
        }
        size = got;
        if (n == (int)(sizeof all / sizeof all[0])) {
            *why = "more than 64 keys";
            goto fail;
        }
        memset(&all[n], 0, sizeof all[n]);
        memcpy(all[n].name, raw, 16);
        all[n].aes256 = got == 80;
        memcpy(all[n].aes, raw + 16, got == 80 ? 32 : 16);
        memcpy(all[n].hmac, raw + (got == 80 ? 48 : 32), got == 80 ? 32 : 16);
        OPENSSL_cleanse(raw, sizeof raw);
        n++;
        pos = end + 1;
    }
    if (n < 2) {
        *why = "fewer than 2 keys (the penultimate one encrypts)";
        goto fail;
    }
    /* HAProxy: the penultimate key encrypts; the last ones decrypt */
    t->keys[t->n++] = all[n - 2];
    t->keys[t->n++] = all[n - 1];
    for (int i = n - 3; i >= 0 && t->n < TICKETS_MAX; i--)
        t->keys[t->n++] = all[i];
    OPENSSL_cleanse(all, sizeof all);
    return 0;
bad_b64:
    *why = "a line is not valid base64";
fail:
    OPENSSL_cleanse(all, sizeof all);
    memset(t->keys, 0, sizeof t->keys);
    t->n = 0;
    return -1;
}

int tickets_load_file(const char *path, struct tickets *t, char *err, size_t errlen)
{
    char text[16384];
    FILE *f = fopen(path, "re");
    size_t len;
    const char *why = NULL;
    int rc;

    if (f == NULL) {
        snprintf(err, errlen, "ticket key file %s: %s", path, strerror(errno));
        return -1;
    }
    len = fread(text, 1, sizeof text, f);
    fclose(f);
    if (len == sizeof text) {
        snprintf(err, errlen, "ticket key file %s: too big", path);
        return -1;
    }
    rc = tickets_parse_file(text, len, t, &why);
    OPENSSL_cleanse(text, sizeof text);
    if (rc < 0)
        snprintf(err, errlen, "ticket key file %s: %s", path, why);
    return rc;
}

/* RFC 5077 tickets: AES-CBC + HMAC-SHA256, key chosen by name. */
static int on_ticket(SSL *ssl, unsigned char name[16], unsigned char *iv, EVP_CIPHER_CTX *cctx,
                     EVP_MAC_CTX *mctx, int enc)
{
    struct tickets *t = SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl));
    const struct ticket_key *k = NULL;
    OSSL_PARAM params[3];
    int i;

    if (t == NULL || t->n == 0)
        return -1;
    if (enc) {
        k = &t->keys[0];
        memcpy(name, k->name, 16);
        if (RAND_bytes(iv, EVP_MAX_IV_LENGTH) != 1)
            return -1;
        i = 0;
    } else {
        for (i = 0; i < t->n; i++)
            if (memcmp(name, t->keys[i].name, 16) == 0)
                break;
        if (i == t->n)
            return 0; /* unknown key: a full handshake, and a new ticket */
        k = &t->keys[i];
    }
    params[0] = OSSL_PARAM_construct_octet_string(OSSL_MAC_PARAM_KEY, (void *)k->hmac,
                                                  k->aes256 ? 32 : 16);
    params[1] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, (char *)"SHA256", 0);
    params[2] = OSSL_PARAM_construct_end();
    if (EVP_MAC_CTX_set_params(mctx, params) != 1)
        return -1;
    if (EVP_CipherInit_ex(cctx, k->aes256 ? t->aes256 : t->aes128, NULL, k->aes, iv, enc) != 1)
        return -1;
    /* decrypted with an older key: accept, and issue a ticket under the
     * current one */
    return enc || i == 0 ? 1 : 2;
}

int tickets_prepare(struct tickets *t, OSSL_LIB_CTX *libctx)
{
    t->aes128 = EVP_CIPHER_fetch(libctx, "AES-128-CBC", NULL);
    t->aes256 = EVP_CIPHER_fetch(libctx, "AES-256-CBC", NULL);
    return t->aes128 != NULL && t->aes256 != NULL ? 0 : -1;
}

void tickets_install(SSL_CTX *ctx, struct tickets *t)
{
    SSL_CTX_set_app_data(ctx, t);
    SSL_CTX_set_timeout(ctx, t->lifetime > 0 ? t->lifetime : 7200);
    SSL_CTX_set_tlsext_ticket_key_evp_cb(ctx, on_ticket);
}

void tickets_clear(struct tickets *t)
{
    EVP_CIPHER_free(t->aes128);
    EVP_CIPHER_free(t->aes256);
    OPENSSL_cleanse(t, sizeof *t);
}
