/* libFuzzer target: the PROXY protocol header decoder (proxy_parse), which
 * runs on the first bytes a network peer sends, before any TLS.  Whatever
 * it accepts must lie within the input and the cap, be NUL-terminated text
 * that parses back as addresses, and be exactly what the header's own bytes
 * give; its answers must be consistent across prefixes (a header's every
 * proper prefix asks for more; asking for more never happens at the cap). */
#include "proxy.h"

#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int terminated(const char *s, size_t cap)
{
    return memchr(s, '\0', cap) != NULL;
}

/* Decimal 0-65535 without leading zeros. */
static int is_port(const char *s)
{
    unsigned long v = 0;
    size_t n = strlen(s);

    if (n == 0 || n > 5 || (s[0] == '0' && n > 1))
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return 0;
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    return v <= 65535;
}

static int is_addr(const char *s)
{
    unsigned char a[16];
    return inet_pton(AF_INET, s, a) == 1 || inet_pton(AF_INET6, s, a) == 1;
}

static int same(const struct proxy_header *a, const struct proxy_header *b)
{
    return a->version == b->version && a->local == b->local &&
           a->family == b->family && a->length == b->length &&
           strcmp(a->src_ip, b->src_ip) == 0 && strcmp(a->dst_ip, b->dst_ip) == 0 &&
           strcmp(a->src_port, b->src_port) == 0 && strcmp(a->dst_port, b->dst_port) == 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proxy_header h, again;
    const char *why = NULL;
    int r;

    r = proxy_parse(data, size, &h, &why);
    if (r == PROXY_INVALID) {
        if (why == NULL || why[0] == '\0')
            abort();
        return 0;
    }
    if (why != NULL)
        abort();
    if (r == PROXY_NEED_MORE) {
        if (size >= PROXY_MAX_HEADER)
            abort();
        /* a shorter prefix cannot be further from a header */
        if (size > 0 && proxy_parse(data, size - 1, &again, NULL) != PROXY_NEED_MORE)
            abort();
        return 0;
    }
    if (r != PROXY_OK)
        abort();

    if (h.length == 0 || h.length > size || h.length > PROXY_MAX_HEADER)
        abort();
    if (h.version == 1 ? h.length > PROXY_V1_MAX || data[0] != 'P'
                       : h.version != 2 || h.length < PROXY_V2_FIXED)
        abort();
    if (!terminated(h.src_ip, sizeof h.src_ip) || !terminated(h.dst_ip, sizeof h.dst_ip) ||
        !terminated(h.src_port, sizeof h.src_port) ||
        !terminated(h.dst_port, sizeof h.dst_port))
        abort();
    if (h.local) {
        if (h.family != AF_UNSPEC || h.src_ip[0] || h.dst_ip[0] || h.src_port[0] ||
            h.dst_port[0])
            abort();
    } else {
        unsigned char a[16];
        if (h.family != AF_INET && h.family != AF_INET6)
            abort();
        if (inet_pton(h.family, h.src_ip, a) != 1 || !is_addr(h.dst_ip))
            abort();
        if (!is_port(h.src_port) || !is_port(h.dst_port))
            abort();
    }
    /* the header's own bytes give the same, whatever followed them... */
    if (proxy_parse(data, h.length, &again, NULL) != PROXY_OK || !same(&h, &again))
        abort();
    /* ...and every proper prefix of them asks for more */
    for (size_t i = 0; i < h.length; i++)
        if (proxy_parse(data, i, &again, NULL) != PROXY_NEED_MORE)
            abort();
    return 0;
}
