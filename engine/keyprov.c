/* The built-in provider behind private-key handles (see keyprov.h).
 *
 * Key management keeps, per key, the public key as an ordinary OpenSSL key
 * whose operations are the default provider's (for a handle, a reference to
 * the certificate's key; for a key imported from another provider, one made
 * in OpenSSL's default library context, which never has this provider) and
 * the keyd key id; every public operation (parameters, matching the
 * certificate) is delegated to that public key.  The signature operation
 * knows no private key: it names a scheme and forwards the bytes to keyd. */
#include "keyprov.h"
#include "keyd_proto.h"
#include "internal.h"
#include "log.h"

#include <errno.h>
#include <openssl/core_dispatch.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/provider.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define PARAM_PUB_REF "ucspitls-pub-ref"
#define PARAM_KEY_ID "ucspitls-key-id"

/* Where public keys imported from another provider are made, and digests
 * fetched: OpenSSL's default library context, which never has this
 * provider (it is added to the engine's own context only), so that using
 * them cannot come back here.  (A context of its own cost every tlsd
 * connection ~2 ms of provider set-up.)  A handle's own public key is the
 * certificate's, whose operations go to the default provider's key
 * management directly. */
#define PUBCTX NULL

struct keydata {
    EVP_PKEY *pub;   /* public key (a reference of our own) */
    int has_handle;  /* a keyd key id is attached: signing is possible */
    uint16_t key_id;
    enum keyd_key_kind kind;
};

/* ---- the channel to keyd (one per thread: the engine's) ---- */

/* Thread-local only for where it lives: in the thread's TLS block, which
 * every process writes anyway (errno), and not on a data page that a worker
 * setting its channel would copy from the master and keep for the
 * connection's life.  One thread per process uses it (the engine's). */
static __thread int keyd_fd = -1;
static __thread long long keyd_deadline_ms;

void keyprov_set_channel(int fd)
{
    keyprov_close_channel();
    keyd_fd = fd;
}

void keyprov_set_deadline(long long deadline_ms)
{
    keyd_deadline_ms = deadline_ms;
}

void keyprov_close_channel(void)
{
    if (keyd_fd >= 0)
        close(keyd_fd);
    keyd_fd = -1;
}

/* One round trip to keyd: request out, answer back within the timeout. */
static int keyd_sign(uint16_t key_id, uint8_t scheme, const unsigned char *tbs,
                     size_t tbs_len, unsigned char *sig, size_t *sig_len,
                     size_t sig_cap)
{
    unsigned char req[KEYD_REQ_MAX], ans[KEYD_ANS_MAX];
    const unsigned char *s;
    struct pollfd p;
    int n, rc;
    long long left;
    ssize_t got;

    if (keyd_fd < 0) {
        log_line(LOG_ERROR, "keyd: no channel to sign with");
        return 0;
    }
    n = keyd_request_encode(scheme, key_id, tbs, tbs_len, req, sizeof req);
    if (n < 0) {
        log_line(LOG_ERROR, "keyd: request too long (%zu bytes)", tbs_len);
        return 0;
    }
    while ((got = write(keyd_fd, req, (size_t)n)) < 0 && errno == EINTR)
        ;
    if (got != n) {
        log_line(LOG_ERROR, "keyd: unable to send request: %s", strerror(errno));
        return 0;
    }
    p.fd = keyd_fd;
    p.events = POLLIN;
    p.revents = 0;
    for (;;) {
        left = keyd_deadline_ms - util_now_ms();
        rc = poll(&p, 1, left <= 0 ? 0 : left > 60000 ? 60000 : (int)left);
        if (!(rc < 0 && errno == EINTR) && !(rc == 0 && left > 60000))
            break;
    }
    if (rc == 0) {
        log_line(LOG_ERROR, "keyd: no answer within the handshake's time");
        keyprov_close_channel();
        return 0;
    }
    while ((got = read(keyd_fd, ans, sizeof ans)) < 0 && errno == EINTR)
        ;
    n = got > 0 ? keyd_answer_decode(ans, (size_t)got, &s) : -1;
    if (n < 0) {
        log_line(LOG_ERROR, "keyd: %s", got == 0 ? "channel closed (keyd gone?)"
                                        : got < 0 ? strerror(errno)
                                                  : "request refused");
        return 0;
    }
    if ((size_t)n > sig_cap)
        return 0;
    memcpy(sig, s, (size_t)n);
    *sig_len = (size_t)n;
    return 1;
}

/* ---- key management ---- */

static void *km_new(void *provctx)
{
    (void)provctx;
    return calloc(1, sizeof(struct keydata));
}

static void km_free(void *keydata)
{
    struct keydata *k = keydata;
    if (k == NULL)
        return;
    EVP_PKEY_free(k->pub);
    free(k);
}

static int km_has(const void *keydata, int selection)
{
    const struct keydata *k = keydata;
    if (k == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY) && !k->has_handle)
        return 0;
    if (selection & (OSSL_KEYMGMT_SELECT_PUBLIC_KEY |
                     OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS))
        return k->pub != NULL;
    return 1;
}

static int km_match(const void *a, const void *b, int selection)
{
    const struct keydata *x = a, *y = b;

    if (x == NULL || y == NULL || x->pub == NULL || y->pub == NULL)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_KEYPAIR) && EVP_PKEY_eq(x->pub, y->pub) != 1)
        return 0;
    if ((selection & OSSL_KEYMGMT_SELECT_DOMAIN_PARAMETERS) &&
        EVP_PKEY_parameters_eq(x->pub, y->pub) != 1)
        return 0;
    return 1;
}

static enum keyd_key_kind kind_of(EVP_PKEY *pub)
{
    if (EVP_PKEY_is_a(pub, "RSA"))
        return KEYD_KIND_RSA;
    if (EVP_PKEY_is_a(pub, "ED25519"))
        return KEYD_KIND_ED25519;
    return KEYD_KIND_EC;
}

/* Two ways in: our own handle (a reference to the certificate's public key
 * + key id, from keyprov_handle_new in this process), or a plain public key
 * exported by another provider (OpenSSL does this to compare the
 * certificate's key with ours).  Never private material. */
static int km_import(struct keydata *k, int selection, const OSSL_PARAM params[],
                     const char *type)
{
    const OSSL_PARAM *ref = OSSL_PARAM_locate_const(params, PARAM_PUB_REF);
    const OSSL_PARAM *id = OSSL_PARAM_locate_const(params, PARAM_KEY_ID);

    if (k == NULL || k->pub != NULL)
        return 0; /* keys are immutable */
    if (ref != NULL) {
        EVP_PKEY *pub;
        unsigned int key_id;
        if (ref->data_type != OSSL_PARAM_OCTET_STRING || ref->data_size != sizeof pub ||
            id == NULL || !OSSL_PARAM_get_uint(id, &key_id) || key_id > 0xffff)
            return 0;
        memcpy(&pub, ref->data, sizeof pub);
        if (pub == NULL || !EVP_PKEY_is_a(pub, type) || EVP_PKEY_up_ref(pub) != 1)
            return 0;
        k->pub = pub;
        k->key_id = (uint16_t)key_id;
        k->has_handle = 1;
    } else {
        EVP_PKEY_CTX *c;
        if (selection & OSSL_KEYMGMT_SELECT_PRIVATE_KEY)
            selection &= ~OSSL_KEYMGMT_SELECT_PRIVATE_KEY; /* never held here */
        c = EVP_PKEY_CTX_new_from_name(PUBCTX, type, NULL);
        if (c == NULL || EVP_PKEY_fromdata_init(c) != 1 ||
            EVP_PKEY_fromdata(c, &k->pub, selection, (OSSL_PARAM *)params) != 1) {
            EVP_PKEY_CTX_free(c);
            return 0;
        }
        EVP_PKEY_CTX_free(c);
    }
    k->kind = kind_of(k->pub);
    return 1;
}

static int km_import_ec(void *k, int sel, const OSSL_PARAM p[]) { return km_import(k, sel, p, "EC"); }
static int km_import_rsa(void *k, int sel, const OSSL_PARAM p[]) { return km_import(k, sel, p, "RSA"); }
static int km_import_ed(void *k, int sel, const OSSL_PARAM p[]) { return km_import(k, sel, p, "ED25519"); }

static const OSSL_PARAM *km_import_types(int selection)
{
    static const OSSL_PARAM none[] = {OSSL_PARAM_END};
    return (selection & OSSL_KEYMGMT_SELECT_PUBLIC_KEY) ? none : NULL;
}

static int km_get_params(void *keydata, OSSL_PARAM params[])
{
    struct keydata *k = keydata;
    return k != NULL && k->pub != NULL && EVP_PKEY_get_params(k->pub, params);
}

static const OSSL_PARAM *km_gettable_params(void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_int(OSSL_PKEY_PARAM_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_SECURITY_BITS, NULL),
        OSSL_PARAM_int(OSSL_PKEY_PARAM_MAX_SIZE, NULL),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_PKEY_PARAM_DEFAULT_DIGEST, NULL, 0),
        OSSL_PARAM_octet_string(OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, NULL, 0),
        OSSL_PARAM_END,
    };
    (void)provctx;
    return list;
}

static const char *km_opname_ec(int op) { return op == OSSL_OP_SIGNATURE ? "ECDSA" : "EC"; }
static const char *km_opname_rsa(int op) { (void)op; return "RSA"; }
static const char *km_opname_ed(int op) { (void)op; return "ED25519"; }

#define KEYMGMT_TABLE(name, import, opname)                                        \
    static const OSSL_DISPATCH name[] = {                                          \
        {OSSL_FUNC_KEYMGMT_NEW, (void (*)(void))km_new},                           \
        {OSSL_FUNC_KEYMGMT_FREE, (void (*)(void))km_free},                         \
        {OSSL_FUNC_KEYMGMT_HAS, (void (*)(void))km_has},                           \
        {OSSL_FUNC_KEYMGMT_MATCH, (void (*)(void))km_match},                       \
        {OSSL_FUNC_KEYMGMT_IMPORT, (void (*)(void))import},                        \
        {OSSL_FUNC_KEYMGMT_IMPORT_TYPES, (void (*)(void))km_import_types},         \
        {OSSL_FUNC_KEYMGMT_GET_PARAMS, (void (*)(void))km_get_params},             \
        {OSSL_FUNC_KEYMGMT_GETTABLE_PARAMS, (void (*)(void))km_gettable_params},   \
        {OSSL_FUNC_KEYMGMT_QUERY_OPERATION_NAME, (void (*)(void))opname},          \
        {0, NULL},                                                                 \
    }

KEYMGMT_TABLE(KEYMGMT_EC, km_import_ec, km_opname_ec);
KEYMGMT_TABLE(KEYMGMT_RSA, km_import_rsa, km_opname_rsa);
KEYMGMT_TABLE(KEYMGMT_ED25519, km_import_ed, km_opname_ed);

/* ---- signature ---- */

struct sigctx {
    struct keydata *key; /* borrowed: the EVP_PKEY_CTX holds the key */
    const char *md;      /* "SHA256", "SHA384", "SHA512" or NULL */
    int pss;
};

static void *sig_newctx(void *provctx, const char *propq)
{
    (void)provctx;
    (void)propq;
    return calloc(1, sizeof(struct sigctx));
}

static void sig_freectx(void *ctx)
{
    free(ctx);
}

static void *sig_dupctx(void *ctx)
{
    struct sigctx *s = malloc(sizeof *s);
    if (s != NULL)
        *s = *(struct sigctx *)ctx;
    return s;
}

/* The digests keyd signs with; anything else (SHA-1, MD5-SHA1) is refused
 * here, so OpenSSL does not offer it to the peer. */
static const char *normal_digest(const char *name)
{
    static const char *const ok[] = {"SHA256", "SHA384", "SHA512"};
    EVP_MD *md;
    const char *found = NULL;

    if (name == NULL || *name == '\0')
        return NULL;
    md = EVP_MD_fetch(PUBCTX, name, NULL);
    for (size_t i = 0; md != NULL && i < sizeof ok / sizeof ok[0]; i++)
        if (EVP_MD_is_a(md, ok[i]))
            found = ok[i];
    EVP_MD_free(md);
    return found;
}

static int sig_set_ctx_params(void *ctx, const OSSL_PARAM params[])
{
    struct sigctx *s = ctx;
    const OSSL_PARAM *p;

    if (params == NULL)
        return 1;
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_DIGEST)) != NULL) {
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) ||
            (s->md = normal_digest(name)) == NULL)
            return 0;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PAD_MODE)) != NULL) {
        const char *name = NULL;
        int mode;
        if (p->data_type == OSSL_PARAM_UTF8_STRING && OSSL_PARAM_get_utf8_string_ptr(p, &name))
            mode = strcmp(name, "pss") == 0 ? RSA_PKCS1_PSS_PADDING
                   : strcmp(name, "pkcs1") == 0 ? RSA_PKCS1_PADDING : -1;
        else if (!OSSL_PARAM_get_int(p, &mode))
            return 0;
        if (mode != RSA_PKCS1_PSS_PADDING && mode != RSA_PKCS1_PADDING)
            return 0; /* no raw RSA, no other padding */
        s->pss = mode == RSA_PKCS1_PSS_PADDING;
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_PSS_SALTLEN)) != NULL) {
        const char *name = NULL;
        int len;
        /* keyd always uses salt length = digest length (RFC 8446 4.2.3) */
        if (p->data_type == OSSL_PARAM_UTF8_STRING && OSSL_PARAM_get_utf8_string_ptr(p, &name)) {
            if (strcmp(name, "digest") != 0)
                return 0;
        } else if (!OSSL_PARAM_get_int(p, &len) || len != RSA_PSS_SALTLEN_DIGEST) {
            return 0;
        }
    }
    if ((p = OSSL_PARAM_locate_const(params, OSSL_SIGNATURE_PARAM_MGF1_DIGEST)) != NULL) {
        const char *name = NULL;
        if (!OSSL_PARAM_get_utf8_string_ptr(p, &name) || s->md == NULL ||
            normal_digest(name) != s->md)
            return 0;
    }
    return 1;
}

static const OSSL_PARAM *sig_settable_ctx_params(void *ctx, void *provctx)
{
    static const OSSL_PARAM list[] = {
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_DIGEST, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PAD_MODE, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_PSS_SALTLEN, NULL, 0),
        OSSL_PARAM_utf8_string(OSSL_SIGNATURE_PARAM_MGF1_DIGEST, NULL, 0),
        OSSL_PARAM_END,
    };
    (void)ctx;
    (void)provctx;
    return list;
}

static int sig_digest_sign_init(void *ctx, const char *mdname, void *provkey,
                                const OSSL_PARAM params[])
{
    struct sigctx *s = ctx;
    struct keydata *k = provkey;

    if (k == NULL || !k->has_handle)
        return 0;
    s->key = k;
    s->pss = 0;
    s->md = NULL;
    if (k->kind == KEYD_KIND_ED25519) {
        if (mdname != NULL && *mdname != '\0')
            return 0; /* Ed25519 hashes internally */
    } else if ((s->md = normal_digest(mdname)) == NULL) {
        return 0;
    }
    return sig_set_ctx_params(s, params);
}

static int scheme_of(const struct sigctx *s)
{
    int h = s->md == NULL ? -1 : strcmp(s->md, "SHA256") == 0 ? 0
                              : strcmp(s->md, "SHA384") == 0 ? 1 : 2;
    switch (s->key->kind) {
    case KEYD_KIND_ED25519: return KEYD_ED25519;
    case KEYD_KIND_EC: return h < 0 ? 0 : KEYD_ECDSA_SHA256 + h;
    case KEYD_KIND_RSA:
        if (h < 0)
            return 0;
        return (s->pss ? KEYD_RSA_PSS_SHA256 : KEYD_RSA_PKCS1_SHA256) + h;
    }
    return 0;
}

static int sig_digest_sign(void *ctx, unsigned char *sig, size_t *siglen,
                           size_t sigsize, const unsigned char *tbs, size_t tbslen)
{
    struct sigctx *s = ctx;
    int scheme;

    if (s->key == NULL)
        return 0;
    if (sig == NULL) { /* size query */
        *siglen = (size_t)EVP_PKEY_get_size(s->key->pub);
        return 1;
    }
    scheme = scheme_of(s);
    if (scheme == 0)
        return 0;
    return keyd_sign(s->key->key_id, (uint8_t)scheme, tbs, tbslen, sig, siglen, sigsize);
}

static const OSSL_DISPATCH SIGNATURE[] = {
    {OSSL_FUNC_SIGNATURE_NEWCTX, (void (*)(void))sig_newctx},
    {OSSL_FUNC_SIGNATURE_FREECTX, (void (*)(void))sig_freectx},
    {OSSL_FUNC_SIGNATURE_DUPCTX, (void (*)(void))sig_dupctx},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN_INIT, (void (*)(void))sig_digest_sign_init},
    {OSSL_FUNC_SIGNATURE_DIGEST_SIGN, (void (*)(void))sig_digest_sign},
    {OSSL_FUNC_SIGNATURE_SET_CTX_PARAMS, (void (*)(void))sig_set_ctx_params},
    {OSSL_FUNC_SIGNATURE_SETTABLE_CTX_PARAMS, (void (*)(void))sig_settable_ctx_params},
    {0, NULL},
};

/* ---- the provider ---- */

#define PROPS "provider=" KEYPROV_NAME

static const OSSL_ALGORITHM KEYMGMTS[] = {
    {"EC:id-ecPublicKey", PROPS, KEYMGMT_EC, "keyd handle, EC"},
    {"RSA:rsaEncryption", PROPS, KEYMGMT_RSA, "keyd handle, RSA"},
    {"ED25519", PROPS, KEYMGMT_ED25519, "keyd handle, Ed25519"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM SIGNATURES[] = {
    {"ECDSA", PROPS, SIGNATURE, "keyd signature, ECDSA"},
    {"RSA:rsaEncryption", PROPS, SIGNATURE, "keyd signature, RSA"},
    {"ED25519", PROPS, SIGNATURE, "keyd signature, Ed25519"},
    {NULL, NULL, NULL, NULL},
};

static const OSSL_ALGORITHM *prov_query(void *provctx, int op, int *no_store)
{
    (void)provctx;
    *no_store = 0;
    if (op == OSSL_OP_KEYMGMT)
        return KEYMGMTS;
    if (op == OSSL_OP_SIGNATURE)
        return SIGNATURES;
    return NULL;
}

static const OSSL_DISPATCH PROVIDER[] = {
    {OSSL_FUNC_PROVIDER_QUERY_OPERATION, (void (*)(void))prov_query},
    {0, NULL},
};

static int prov_init(const OSSL_CORE_HANDLE *handle, const OSSL_DISPATCH *in,
                     const OSSL_DISPATCH **out, void **provctx)
{
    static char context; /* the provider keeps no state: any non-NULL value */

    (void)handle;
    (void)in;
    *out = PROVIDER;
    *provctx = &context;
    return 1;
}

int keyprov_install(OSSL_LIB_CTX *libctx, OSSL_PROVIDER *loaded[2])
{
    loaded[0] = loaded[1] = NULL;
    if (OSSL_PROVIDER_add_builtin(libctx, KEYPROV_NAME, prov_init) != 1 ||
        (loaded[0] = OSSL_PROVIDER_load(libctx, KEYPROV_NAME)) == NULL ||
        (loaded[1] = OSSL_PROVIDER_load(libctx, "default")) == NULL)
        return -1;
    /* Ordinary fetches prefer the default provider; ours is used for our
     * handles because OpenSSL fetches an operation from the key's own
     * provider first. */
    return EVP_set_default_properties(libctx, "?provider!=" KEYPROV_NAME) == 1 ? 0 : -1;
}

void keyprov_uninstall(OSSL_PROVIDER *loaded[2])
{
    /* OSSL_LIB_CTX_free() does not free a provider that is still loaded */
    for (int i = 1; i >= 0; i--) {
        if (loaded[i] != NULL)
            OSSL_PROVIDER_unload(loaded[i]);
        loaded[i] = NULL;
    }
}

EVP_PKEY *keyprov_handle_new(OSSL_LIB_CTX *libctx, EVP_PKEY *pub, uint16_t key_id)
{
    unsigned int id = key_id;
    const char *type = EVP_PKEY_is_a(pub, "RSA") ? "RSA"
                       : EVP_PKEY_is_a(pub, "ED25519") ? "ED25519"
                       : EVP_PKEY_is_a(pub, "EC") ? "EC" : NULL;
    EVP_PKEY_CTX *c = NULL;
    EVP_PKEY *handle = NULL;
    OSSL_PARAM params[3];

    if (type == NULL)
        return NULL;
    /* The handle shares the certificate's public key (a reference, not a
     * DER copy: encoding and decoding it cost each tlsd ~1 ms). */
    params[0] = OSSL_PARAM_construct_octet_string(PARAM_PUB_REF, &pub, sizeof pub);
    params[1] = OSSL_PARAM_construct_uint(PARAM_KEY_ID, &id);
    params[2] = OSSL_PARAM_construct_end();
    c = EVP_PKEY_CTX_new_from_name(libctx, type, "provider=" KEYPROV_NAME);
    if (c == NULL || EVP_PKEY_fromdata_init(c) != 1 ||
        EVP_PKEY_fromdata(c, &handle, EVP_PKEY_KEYPAIR, params) != 1)
        handle = NULL;
    EVP_PKEY_CTX_free(c);
    return handle;
}
