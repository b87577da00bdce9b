/* libFuzzer target: keyd's request decoder and signing policy, which run on
 * bytes from a possibly compromised worker.  Whatever decodes must stay
 * within the packet; the shape check must agree with a reference written
 * here from the RFCs, byte for byte (it accepts exactly the two TLS inputs);
 * PKCS#1 v1.5 is never allowed for a TLS 1.3 input, nor any scheme for
 * anything else. */
#include "keyd_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* RFC 8446 4.4.3: 64 spaces, the server context string, a zero byte, a
 * SHA-256 or SHA-384 transcript hash. */
static int ref_tls13_cv(const unsigned char *t, size_t len)
{
    static const char ctx[] = "TLS 1.3, server CertificateVerify";

    if (len != 64 + 33 + 1 + 32 && len != 64 + 33 + 1 + 48)
        return 0;
    for (size_t i = 0; i < 64; i++)
        if (t[i] != ' ')
            return 0;
    return memcmp(t + 64, ctx, 33) == 0 && t[97] == 0;
}

/* RFC 8422 5.4: two randoms, named_curve (3), one of the server's groups
 * (x25519, secp256r1, secp384r1), the point's length, the point
 * (uncompressed for the NIST curves). */
static int ref_tls12_ske(const unsigned char *t, size_t len)
{
    static const struct {
        unsigned char hi, lo, point;
    } groups[] = {{0x00, 0x1d, 32}, {0x00, 0x17, 65}, {0x00, 0x18, 97}};

    for (size_t g = 0; g < sizeof groups / sizeof groups[0]; g++)
        if (len == 64 + 4 + (size_t)groups[g].point && t[64] == 3 && t[65] == groups[g].hi &&
            t[66] == groups[g].lo && t[67] == groups[g].point &&
            (groups[g].point == 32 || t[68] == 4))
            return 1;
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct keyd_request req;
    unsigned char again[KEYD_REQ_MAX];
    enum keyd_shape shape;
    int n;

    if (keyd_request_decode(data, size, &req) != 0)
        return 0;
    if (req.tbs < data || req.tbs + req.tbs_len > data + size)
        abort();
    n = keyd_request_encode(req.scheme, req.key_id, req.tbs, req.tbs_len, again, sizeof again);
    if (n != (int)size || memcmp(again, data, size) != 0)
        abort();
    shape = keyd_tbs_shape(req.tbs, req.tbs_len);
    if ((shape == KEYD_SHAPE_TLS13_CV) != ref_tls13_cv(req.tbs, req.tbs_len) ||
        (shape == KEYD_SHAPE_TLS12_SKE) != ref_tls12_ske(req.tbs, req.tbs_len))
        abort();
    for (int kind = KEYD_KIND_EC; kind <= KEYD_KIND_ED25519; kind++) {
        int ok = keyd_scheme_allowed(req.scheme, (enum keyd_key_kind)kind, shape);
        if (ok && (shape == KEYD_SHAPE_NONE ||
                   (shape == KEYD_SHAPE_TLS13_CV && req.scheme >= KEYD_RSA_PKCS1_SHA256 &&
                    req.scheme <= KEYD_RSA_PKCS1_SHA512)))
            abort();
    }
    return 0;
}
