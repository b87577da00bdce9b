/* libFuzzer target: the tls-ticket-keys file parser.  Any input parses or
 * is refused; what parses has 2..TICKETS_MAX keys of one size. */
#include "tickets.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct tickets t;
    const char *why = NULL;

    if (tickets_parse_file((const char *)data, size, &t, &why) == 0) {
        if (t.n < 2 || t.n > TICKETS_MAX)
            abort();
        for (int i = 1; i < t.n; i++)
            if (t.keys[i].aes256 != t.keys[0].aes256)
                abort();
    } else if (why == NULL) {
        abort();
    }
    return 0;
}
