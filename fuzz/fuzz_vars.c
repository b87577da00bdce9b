/* libFuzzer target: the UCSPI-TLS `Y` reply / gate block decoder
 * (ucspitls_vars_parse), which apps run on what the server sends and the
 * app launcher runs on what the less-trusted worker sends.  Any input must
 * parse or be refused cleanly; whatever parses must re-encode to a block
 * that parses to the same entries. */
#include "ucspitls_app.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct ucspitls_vars v, again;
    static char out[UCSPITLS_BLOCK_MAX + 2];
    size_t len = 0;

    if (ucspitls_vars_parse((const char *)data, size, &v) == 0) {
        if (ucspitls_vars_encode(v.entries, v.count, out, sizeof out, &len) != 0)
            abort();
        if (ucspitls_vars_parse(out, len, &again) != 0 || again.count != v.count)
            abort();
        for (size_t i = 0; i < v.count; i++) {
            if (strcmp(v.entries[i].name, again.entries[i].name) != 0 ||
                v.entries[i].value_len != again.entries[i].value_len ||
                memcmp(v.entries[i].value, again.entries[i].value, v.entries[i].value_len) != 0)
                abort();
            if (ucspitls_vars_get(&v, v.entries[i].name) == NULL)
                abort();
        }
        ucspitls_vars_free(&again);
    }
    ucspitls_vars_free(&v);
    return 0;
}
