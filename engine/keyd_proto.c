/* keyd's one decoder and its signing policy.  Everything here runs on
 * bytes from a worker that may be compromised: lengths are checked first,
 * then every field, and only the two TLS shapes are ever signed. */
#include "keyd_proto.h"

#include <string.h>

static uint16_t get16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static void put16(unsigned char *p, size_t v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

int keyd_request_decode(const unsigned char *buf, size_t len,
                        struct keyd_request *req)
{
    if (buf == NULL || len < KEYD_REQ_HEADER || len > KEYD_REQ_MAX)
        return -1;
    if (buf[0] != KEYD_PROTO_VERSION)
        return -1;
    if (buf[1] == 0 || buf[1] >= KEYD_SCHEME_END)
        return -1;
    req->scheme = buf[1];
    req->key_id = get16(buf + 2);
    req->tbs_len = get16(buf + 4);
    if (req->tbs_len == 0 || req->tbs_len > KEYD_TBS_MAX ||
        (size_t)req->tbs_len != len - KEYD_REQ_HEADER)
        return -1;
    req->tbs = buf + KEYD_REQ_HEADER;
    return 0;
}

int keyd_request_encode(uint8_t scheme, uint16_t key_id,
                        const unsigned char *tbs, size_t tbs_len,
                        unsigned char *out, size_t cap)
{
    if (scheme == 0 || scheme >= KEYD_SCHEME_END || tbs_len == 0 ||
        tbs_len > KEYD_TBS_MAX || cap < KEYD_REQ_HEADER + tbs_len)
        return -1;
    out[0] = KEYD_PROTO_VERSION;
    out[1] = scheme;
    put16(out + 2, key_id);
    put16(out + 4, tbs_len);
    memcpy(out + KEYD_REQ_HEADER, tbs, tbs_len);
    return (int)(KEYD_REQ_HEADER + tbs_len);
}

static const char TLS13_SERVER_CV[] = "TLS 1.3, server CertificateVerify";

/* RFC 8446 4.4.3: 64 x 0x20, the context string, 0x00, Transcript-Hash. */
static int is_tls13_cv(const unsigned char *p, size_t len)
{
    size_t ctx = sizeof TLS13_SERVER_CV - 1, head = 64 + ctx + 1;

    if (len != head + 32 && len != head + 48) /* SHA-256 or SHA-384 */
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (p[i] != 0x20)
            return 0;
    return memcmp(p + 64, TLS13_SERVER_CV, ctx) == 0 && p[64 + ctx] == 0;
}

/* The size of the ECDHE public value of each group the server offers
 * (DEFAULT_GROUPS in tlsctx.c), 0 for any other: no handshake of this
 * server signs another group's parameters, so a worker asking for one
 * (secp521r1's 133-byte point would leave it 196 bytes of a 201-byte
 * message to choose) is refused. */
static size_t group_point_len(uint16_t group)
{
    switch (group) {
    case 0x0017: return 65;  /* secp256r1, uncompressed */
    case 0x0018: return 97;  /* secp384r1 */
    case 0x001d: return 32;  /* x25519 */
    }
    return 0;
}

/* RFC 8422 5.4: client_random | server_random | ServerECDHParams, with
 * curve_type named_curve (3), the group, a length byte and the point. */
static int is_tls12_ske(const unsigned char *p, size_t len)
{
    size_t want;

    if (len < 64 + 4 || p[64] != 3)
        return 0;
    want = group_point_len(get16(p + 65));
    if (want == 0 || p[67] != want || len != 64 + 4 + want)
        return 0;
    if (want == 65 || want == 97)
        return p[68] == 4; /* NIST curves: uncompressed points only */
    return 1;
}

enum keyd_shape keyd_tbs_shape(const unsigned char *tbs, size_t len)
{
    if (tbs == NULL)
        return KEYD_SHAPE_NONE;
    if (is_tls13_cv(tbs, len))
        return KEYD_SHAPE_TLS13_CV;
    if (is_tls12_ske(tbs, len))
        return KEYD_SHAPE_TLS12_SKE;
    return KEYD_SHAPE_NONE;
}

int keyd_scheme_allowed(uint8_t scheme, enum keyd_key_kind kind,
                        enum keyd_shape shape)
{
    if (shape == KEYD_SHAPE_NONE)
        return 0;
    switch (scheme) {
    case KEYD_ECDSA_SHA256:
    case KEYD_ECDSA_SHA384:
    case KEYD_ECDSA_SHA512:
        return kind == KEYD_KIND_EC;
    case KEYD_RSA_PSS_SHA256:
    case KEYD_RSA_PSS_SHA384:
    case KEYD_RSA_PSS_SHA512:
        return kind == KEYD_KIND_RSA;
    case KEYD_RSA_PKCS1_SHA256:
    case KEYD_RSA_PKCS1_SHA384:
    case KEYD_RSA_PKCS1_SHA512:
        /* RFC 8446 4.4.3: PKCS#1 v1.5 is never used in TLS 1.3 */
        return kind == KEYD_KIND_RSA && shape == KEYD_SHAPE_TLS12_SKE;
    case KEYD_ED25519:
        return kind == KEYD_KIND_ED25519;
    }
    return 0;
}

const char *keyd_scheme_digest(uint8_t scheme)
{
    switch (scheme) {
    case KEYD_ECDSA_SHA256: case KEYD_RSA_PSS_SHA256: case KEYD_RSA_PKCS1_SHA256:
        return "SHA256";
    case KEYD_ECDSA_SHA384: case KEYD_RSA_PSS_SHA384: case KEYD_RSA_PKCS1_SHA384:
        return "SHA384";
    case KEYD_ECDSA_SHA512: case KEYD_RSA_PSS_SHA512: case KEYD_RSA_PKCS1_SHA512:
        return "SHA512";
    }
    return NULL;
}

int keyd_scheme_is_pss(uint8_t scheme)
{
    return scheme == KEYD_RSA_PSS_SHA256 || scheme == KEYD_RSA_PSS_SHA384 ||
           scheme == KEYD_RSA_PSS_SHA512;
}

int keyd_answer_encode(int ok, const unsigned char *sig, size_t sig_len,
                       unsigned char *out, size_t cap)
{
    if (!ok)
        sig_len = 0;
    if (sig_len > KEYD_SIG_MAX || cap < KEYD_ANS_HEADER + sig_len)
        return -1;
    out[0] = ok ? 0 : 1;
    put16(out + 1, sig_len);
    if (sig_len > 0)
        memcpy(out + KEYD_ANS_HEADER, sig, sig_len);
    return (int)(KEYD_ANS_HEADER + sig_len);
}

int keyd_answer_decode(const unsigned char *buf, size_t len,
                       const unsigned char **sig)
{
    size_t n;

    if (buf == NULL || len < KEYD_ANS_HEADER || buf[0] != 0)
        return -1;
    n = get16(buf + 1);
    if (n == 0 || n > KEYD_SIG_MAX || n != len - KEYD_ANS_HEADER)
        return -1;
    *sig = buf + KEYD_ANS_HEADER;
    return (int)n;
}
