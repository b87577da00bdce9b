/* libFuzzer target: keyd's request decoder and signing policy, which run on
 * bytes from a possibly compromised worker.  Whatever decodes must stay
 * within the packet; the shape check must never accept anything that is not
 * exactly one of the two TLS inputs. */
#include "keyd_proto.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

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
    if (shape == KEYD_SHAPE_TLS13_CV &&
        (req.tbs[0] != 0x20 || req.tbs[63] != 0x20 || req.tbs[97] != 0))
        abort();
    if (shape == KEYD_SHAPE_TLS12_SKE && (req.tbs[64] != 3 || req.tbs_len < 64 + 4 + 32))
        abort();
    for (int kind = KEYD_KIND_EC; kind <= KEYD_KIND_ED25519; kind++)
        if (shape == KEYD_SHAPE_NONE &&
            keyd_scheme_allowed(req.scheme, (enum keyd_key_kind)kind, shape))
            abort();
    return 0;
}
