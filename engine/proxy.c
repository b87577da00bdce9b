/* The PROXY protocol decoder (see proxy.h for what is accepted).
 *
 * Every byte here comes from the network before any authentication, and
 * what it yields becomes the app's TCPREMOTEIP: so one pass, no copying
 * past a bound, no allocation, and every field is checked by a small
 * state machine that also knows whether an unfinished field can still
 * become valid -- that is what lets PROXY_NEED_MORE mean "a prefix of a
 * valid header" instead of "no CRLF yet" (near v1's 107-byte limit only
 * the CRLF is counted as still to come).  Addresses checked by the state
 * machines are checked again by inet_pton() before they are used. */
#include "proxy.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>

static const unsigned char V2_SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                         0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};
static const char V1_TAG[] = "PROXY ";
#define V1_TAG_LEN (sizeof V1_TAG - 1)

#define V2_CMD_LOCAL 0x0
#define V2_CMD_PROXY 0x1
#define V2_TCP4 0x11
#define V2_TCP6 0x21
#define V2_ADDR_TCP4 12 /* 2 x 4 address bytes, 2 x 2 port bytes */
#define V2_ADDR_TCP6 36 /* 2 x 16, 2 x 2 */
#define V2_TLV_HEADER 3 /* type, length (big-endian u16) */

static int invalid(const char **why, const char *reason)
{
    if (why != NULL)
        *why = reason;
    return PROXY_INVALID;
}

/* ---- field state machines: each step returns 0, or -1 when no string
 * starting with what was fed can be valid ---- */

/* Dotted-quad IPv4: exactly 4 octets, 0-255, no leading zeros. */
struct ip4 {
    int dots;
    int digits;     /* in the current octet */
    unsigned value; /* of the current octet */
};

static int ip4_step(struct ip4 *s, unsigned char c)
{
    if (c >= '0' && c <= '9') {
        if (s->digits == 1 && s->value == 0)
            return -1; /* leading zero: "01" is octal to some parsers */
        s->value = s->value * 10 + (unsigned)(c - '0');
        if (s->value > 255)
            return -1;
        s->digits++;
        return 0;
    }
    if (c == '.' && s->digits > 0 && s->dots < 3) {
        s->dots++;
        s->digits = 0;
        s->value = 0;
        return 0;
    }
    return -1;
}

static int ip4_complete(const struct ip4 *s)
{
    return s->dots == 3 && s->digits > 0;
}

/* IPv6 text as inet_pton accepts it: groups of 1-4 hex digits, at most one
 * "::" (standing for at least one zero group), 8 groups without it or at
 * most 7 with it, optionally ending in a dotted quad worth two groups.
 * units counts groups already closed by a colon; every check keeps open
 * only states from which some completion is valid. */
enum ip6_at { AT_START, AT_LEAD, AT_GROUP, AT_COLON, AT_DCOLON, AT_QUAD };

struct ip6 {
    enum ip6_at at;
    int units;
    int dc;      /* "::" seen */
    int digits;  /* hex digits in the current group */
    int quad_ok; /* the current group is also a valid first octet so far */
    struct ip4 quad;
};

static int is_hex(unsigned char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') ||
           (c >= 'A' && c <= 'F');
}

static int ip6_step(struct ip6 *s, unsigned char c)
{
    int limit = s->dc ? 7 : 8; /* groups the address can still have */

    if (s->at == AT_QUAD)
        return ip4_step(&s->quad, c);
    if (is_hex(c)) {
        if (s->at == AT_LEAD)
            return -1; /* ":1" */
        if (s->at != AT_GROUP) {
            if (s->units + 1 > limit)
                return -1;
            s->at = AT_GROUP;
            s->digits = 0;
            s->quad_ok = 1;
            memset(&s->quad, 0, sizeof s->quad);
        }
        if (++s->digits > 4)
            return -1;
        if (s->quad_ok && (c > '9' || ip4_step(&s->quad, c) < 0))
            s->quad_ok = 0;
        return 0;
    }
    if (c == ':') {
        switch (s->at) {
        case AT_START:
            s->at = AT_LEAD;
            return 0;
        case AT_GROUP:
            /* another group must follow (or "::", if none yet) */
            s->units++;
            if (s->units > (s->dc ? 6 : 7))
                return -1;
            s->at = AT_COLON;
            return 0;
        case AT_LEAD:
        case AT_COLON:
            if (s->dc)
                return -1;
            s->dc = 1;
            s->at = AT_DCOLON;
            return 0;
        default:
            return -1; /* ":::" */
        }
    }
    if (c == '.' && s->at == AT_GROUP && s->quad_ok) {
        /* the group was the first octet of a final dotted quad, which is
         * two groups and must end the address */
        if (s->dc ? s->units + 2 > 7 : s->units != 6)
            return -1;
        s->at = AT_QUAD;
        return ip4_step(&s->quad, c);
    }
    return -1;
}

static int ip6_complete(const struct ip6 *s)
{
    switch (s->at) {
    case AT_QUAD:
        return ip4_complete(&s->quad);
    case AT_GROUP:
        return s->dc || s->units + 1 == 8;
    case AT_DCOLON:
        return 1;
    default:
        return 0;
    }
}

/* Decimal port 0-65535, no leading zeros. */
struct port {
    int digits;
    unsigned value;
};

static int port_step(struct port *s, unsigned char c)
{
    if (c < '0' || c > '9' || (s->digits == 1 && s->value == 0))
        return -1;
    s->value = s->value * 10 + (unsigned)(c - '0');
    if (s->value > 65535)
        return -1;
    s->digits++;
    return 0;
}

/* ---- v1 ---- */

enum v1_proto { V1_TCP4, V1_TCP6, V1_UNKNOWN };
static const char *const V1_PROTOS[] = {"TCP4", "TCP6", "UNKNOWN"};

/* Checks a field of a TCP4/TCP6 line, s[0..n), delimited (complete) or
 * not yet (a prefix).  Returns 0 or -1. */
static int v1_field(enum v1_proto proto, int k, const unsigned char *s,
                    size_t n, int complete)
{
    if (k < 2 && proto == V1_TCP4) {
        struct ip4 st = {0, 0, 0};
        for (size_t i = 0; i < n; i++)
            if (ip4_step(&st, s[i]) < 0)
                return -1;
        return complete && !ip4_complete(&st) ? -1 : 0;
    }
    if (k < 2) {
        struct ip6 st;
        memset(&st, 0, sizeof st);
        st.at = AT_START;
        for (size_t i = 0; i < n; i++)
            if (ip6_step(&st, s[i]) < 0)
                return -1;
        return complete && !ip6_complete(&st) ? -1 : 0;
    }
    struct port st = {0, 0};
    for (size_t i = 0; i < n; i++)
        if (port_step(&st, s[i]) < 0)
            return -1;
    return complete && st.digits == 0 ? -1 : 0;
}

/* The line ran out at len bytes with `need` more at least to come (the
 * CRLF, or its LF): more can help only if that still fits. */
static int v1_more(size_t len, size_t need, const char **why)
{
    if (len + need > PROXY_V1_MAX)
        return invalid(why, "v1: no CRLF within 107 bytes");
    return PROXY_NEED_MORE;
}

/* The end of a token: the first space, CR or LF at or after from, or n. */
static size_t token_end(const unsigned char *b, size_t from, size_t n)
{
    while (from < n && b[from] != ' ' && b[from] != '\r' && b[from] != '\n')
        from++;
    return from;
}

static int is_mapped(const unsigned char a[16])
{
    static const unsigned char prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    return memcmp(a, prefix, sizeof prefix) == 0;
}

/* Text of one address: a[] is 4 (IPv4) or 16 (IPv6) bytes; returns the
 * family it is reported as (a mapped IPv6 address is IPv4), or -1. */
static int addr_text(const unsigned char *a, int v6, char out[46])
{
    if (v6 && !is_mapped(a))
        return inet_ntop(AF_INET6, a, out, 46) != NULL ? AF_INET6 : -1;
    return inet_ntop(AF_INET, v6 ? a + 12 : a, out, 46) != NULL ? AF_INET : -1;
}

/* Converts a checked address token back to bytes with inet_pton (the
 * second opinion) and fills the text form.  Returns the family or -1. */
static int v1_addr(const unsigned char *s, size_t n, int v6, char out[46])
{
    char tmp[64];
    unsigned char bytes[16];

    if (n >= sizeof tmp)
        return -1;
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    if (inet_pton(v6 ? AF_INET6 : AF_INET, tmp, bytes) != 1)
        return -1;
    return addr_text(bytes, v6, out);
}

/* "UNKNOWN" was read; pos is at the byte after it (present). */
static int v1_unknown(const unsigned char *buf, size_t len, size_t n,
                      size_t pos, struct proxy_header *h, const char **why)
{
    if (buf[pos] == ' ') {
        /* the spec lets the sender put anything here and the receiver
         * ignore it; we still refuse bytes no sender means as text */
        for (pos++; pos < n && buf[pos] != '\r'; pos++)
            if (buf[pos] < 0x20 || buf[pos] > 0x7e)
                return invalid(why, "v1: control or non-ASCII byte in an UNKNOWN line");
        if (pos == n)
            return v1_more(len, 2, why);
    } else if (buf[pos] != '\r') {
        return invalid(why, buf[pos] == '\n' ? "v1: line ends in LF without CR"
                                              : "v1: unknown protocol");
    }
    if (++pos == n)
        return v1_more(len, 1, why);
    if (buf[pos] != '\n')
        return invalid(why, "v1: CR not followed by LF");
    h->version = 1;
    h->local = 1;
    h->family = AF_UNSPEC;
    h->length = pos + 1;
    return PROXY_OK;
}

static int v1_parse(const unsigned char *buf, size_t len,
                    struct proxy_header *h, const char **why)
{
    static const char *const field_why[] = {
        "v1: bad source address", "v1: bad destination address",
        "v1: bad source port", "v1: bad destination port"};
    /* a header ends by byte 107; never look further */
    size_t n = len < PROXY_V1_MAX ? len : PROXY_V1_MAX;
    size_t pos, e, start[4], end[4];
    int proto;

    for (pos = 0; pos < V1_TAG_LEN; pos++) {
        if (pos == n)
            return PROXY_NEED_MORE; /* n < 6: far from 107 */
        if (buf[pos] != (unsigned char)V1_TAG[pos])
            return invalid(why, "not a PROXY header");
    }

    e = token_end(buf, pos, n);
    for (proto = V1_TCP4; proto <= V1_UNKNOWN; proto++) {
        size_t plen = strlen(V1_PROTOS[proto]);
        if ((e < n ? e - pos == plen : e - pos <= plen) &&
            memcmp(buf + pos, V1_PROTOS[proto], e - pos) == 0)
            break;
    }
    if (proto > V1_UNKNOWN)
        return invalid(why, "v1: unknown protocol");
    if (e == n) /* a prefix of a name */
        return v1_more(len, 2, why);
    if (proto == V1_UNKNOWN)
        return v1_unknown(buf, len, n, e, h, why);

    for (int k = 0; k < 4; k++) {
        if (buf[e] != ' ')
            return invalid(why, buf[e] == '\n' ? "v1: line ends in LF without CR"
                                               : "v1: missing field");
        pos = e + 1;
        e = token_end(buf, pos, n);
        if (v1_field((enum v1_proto)proto, k, buf + pos, e - pos, e < n) < 0)
            return invalid(why, field_why[k]);
        if (e == n)
            return v1_more(len, 2, why);
        start[k] = pos;
        end[k] = e;
    }
    if (buf[e] != '\r')
        return invalid(why, buf[e] == '\n' ? "v1: line ends in LF without CR"
                                           : "v1: extra field");
    if (++e == n)
        return v1_more(len, 1, why);
    if (buf[e] != '\n')
        return invalid(why, "v1: CR not followed by LF");

    h->version = 1;
    h->local = 0;
    h->family = v1_addr(buf + start[0], end[0] - start[0], proto == V1_TCP6, h->src_ip);
    if (h->family < 0 ||
        v1_addr(buf + start[1], end[1] - start[1], proto == V1_TCP6, h->dst_ip) < 0)
        return invalid(why, "v1: address refused by inet_pton");
    /* ports are at most 5 digits (checked) */
    memcpy(h->src_port, buf + start[2], end[2] - start[2]);
    memcpy(h->dst_port, buf + start[3], end[3] - start[3]);
    h->length = e + 1;
    return PROXY_OK;
}

/* ---- v2 ---- */

static unsigned get16(const unsigned char *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static void port_text(unsigned v, char out[6])
{
    char rev[5];
    size_t n = 0;

    do {
        rev[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0 && n < sizeof rev);
    for (size_t i = 0; i < n; i++)
        out[i] = rev[n - 1 - i];
    out[n] = '\0';
}

static int v2_parse(const unsigned char *buf, size_t len,
                    struct proxy_header *h, const char **why)
{
    size_t block, addr, off, end;
    int cmd;

    for (size_t i = 0; i < sizeof V2_SIG; i++) {
        if (i == len)
            return PROXY_NEED_MORE;
        if (buf[i] != V2_SIG[i])
            return invalid(why, "not a PROXY header");
    }
    if (len < 13)
        return PROXY_NEED_MORE;
    if (buf[12] >> 4 != 2)
        return invalid(why, "v2: version is not 2");
    cmd = buf[12] & 0x0f;
    if (cmd != V2_CMD_LOCAL && cmd != V2_CMD_PROXY)
        return invalid(why, "v2: unknown command");
    if (len < 14)
        return PROXY_NEED_MORE;
    /* PROXY for another family (UDP, UNIX, UNSPEC) means the balancer is
     * set up for something other than TLS over TCP: refuse rather than
     * present the balancer's own address as the client's */
    if (cmd == V2_CMD_PROXY && buf[13] != V2_TCP4 && buf[13] != V2_TCP6)
        return invalid(why, "v2: PROXY for a family other than TCP over IPv4/IPv6");
    if (len < PROXY_V2_FIXED)
        return PROXY_NEED_MORE;
    block = get16(buf + 14);
    if (block > PROXY_V2_MAX_BLOCK)
        return invalid(why, "v2: header longer than PROXY_V2_MAX_BLOCK");
    end = PROXY_V2_FIXED + block;

    if (cmd == V2_CMD_LOCAL) {
        /* the spec: use the real endpoints, discard the whole block
         * (family included) unread */
        if (len < end)
            return PROXY_NEED_MORE;
        h->version = 2;
        h->local = 1;
        h->family = AF_UNSPEC;
        h->length = end;
        return PROXY_OK;
    }

    addr = buf[13] == V2_TCP4 ? V2_ADDR_TCP4 : V2_ADDR_TCP6;
    if (block < addr)
        return invalid(why, "v2: length shorter than the address block");
    /* TLVs: skipped, but each must fit the block exactly; the walk checks
     * as far as the bytes go, so a broken one is refused early */
    for (off = PROXY_V2_FIXED + addr; off < end;) {
        if (end - off < V2_TLV_HEADER)
            return invalid(why, "v2: truncated TLV header");
        if (len < off + V2_TLV_HEADER)
            return PROXY_NEED_MORE;
        if (get16(buf + off + 1) > end - off - V2_TLV_HEADER)
            return invalid(why, "v2: TLV overruns the header");
        off += V2_TLV_HEADER + get16(buf + off + 1);
    }
    if (len < end)
        return PROXY_NEED_MORE;

    {
        int v6 = buf[13] == V2_TCP6;
        size_t alen = v6 ? 16 : 4;
        const unsigned char *a = buf + PROXY_V2_FIXED;

        h->version = 2;
        h->local = 0;
        h->family = addr_text(a, v6, h->src_ip);
        if (h->family < 0 || addr_text(a + alen, v6, h->dst_ip) < 0)
            return invalid(why, "v2: address not printable");
        port_text(get16(a + 2 * alen), h->src_port);
        port_text(get16(a + 2 * alen + 2), h->dst_port);
    }
    h->length = end;
    return PROXY_OK;
}

int proxy_parse(const unsigned char *buf, size_t len, struct proxy_header *out,
                const char **why)
{
    struct proxy_header h;
    int r;

    if (why != NULL)
        *why = NULL;
    if (out == NULL || (buf == NULL && len != 0))
        return invalid(why, "bad arguments");
    if (len == 0)
        return PROXY_NEED_MORE;
    memset(&h, 0, sizeof h);
    if (buf[0] == 'P')
        r = v1_parse(buf, len, &h, why);
    else if (buf[0] == V2_SIG[0])
        r = v2_parse(buf, len, &h, why);
    else
        r = invalid(why, "not a PROXY header");
    if (r == PROXY_OK)
        *out = h;
    return r;
}

size_t proxy_read_size(const unsigned char *buf, size_t len)
{
    size_t total;

    /* every header, v1 ("PROXY UNKNOWN\r\n") or v2 (16 bytes), is at
     * least 8 bytes long */
    if (len < 8)
        return 8 - len;
    if (buf[0] == 'P')
        return 1; /* v1: its end is the CRLF, so a byte at a time */
    if (len < PROXY_V2_FIXED)
        return PROXY_V2_FIXED - len;
    total = PROXY_V2_FIXED + (((size_t)buf[14] << 8) | buf[15]);
    return total > len ? total - len : 1;
}
