/* The PROXY protocol decoder: every valid header shape gives the addresses
 * the app will see and consumes exactly the header (the TLS bytes after it
 * stay); every prefix of a valid header asks for more; and hostile input
 * (malformed lines, lying lengths, other protocols) is refused, as early as
 * the bytes allow. */
#include "check.h"
#include "proxy.h"

#include <stdlib.h>

/* The first bytes of a TLS ClientHello record. */
static const unsigned char HELLO[] = {0x16, 0x03, 0x01, 0x00, 0xf4, 0x01,
                                      0x00, 0x00, 0xf0, 0x03, 0x03};

static const unsigned char SIG[12] = {0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D,
                                      0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A};

static unsigned char buf[PROXY_MAX_HEADER + 64];

/* Parses and checks that a refusal has a reason and leaves *out alone. */
static int parse(const void *p, size_t n, struct proxy_header *h)
{
    const unsigned char *bytes = (const unsigned char *)h;
    const char *why = "unset";
    int r;

    memset(h, 0xAA, sizeof *h);
    r = proxy_parse(p, n, h, &why);
    if (r == PROXY_INVALID)
        CHECK(why != NULL && why[0] != '\0');
    else
        CHECK(why == NULL);
    if (r != PROXY_OK) {
        size_t i = 0;
        while (i < sizeof *h && bytes[i] == 0xAA)
            i++;
        CHECK(i == sizeof *h); /* *out untouched */
    }
    return r;
}

static int parse_str(const char *s, struct proxy_header *h)
{
    return parse(s, strlen(s), h);
}

/* A header of n bytes: each proper prefix asks for more, the whole is OK
 * and consumes exactly n bytes, also with TLS bytes after it; the result
 * is copied to *h. */
static void check_header(const void *hdr, size_t n, struct proxy_header *h)
{
    struct proxy_header h2;

    CHECK(n + sizeof HELLO <= sizeof buf);
    memcpy(buf, hdr, n);
    for (size_t i = 0; i < n; i++)
        if (parse(buf, i, h) != PROXY_NEED_MORE) {
            fprintf(stderr, "  prefix of %zu bytes (of %zu) not NEED_MORE\n", i, n);
            CHECK(0);
            break;
        }
    CHECK(parse(buf, n, h) == PROXY_OK);
    CHECK(h->length == n);
    memcpy(buf + n, HELLO, sizeof HELLO);
    CHECK(parse(buf, n + sizeof HELLO, &h2) == PROXY_OK);
    CHECK(h2.length == n);
    CHECK(h2.version == h->version && h2.local == h->local && h2.family == h->family);
    CHECK(strcmp(h2.src_ip, h->src_ip) == 0 && strcmp(h2.dst_ip, h->dst_ip) == 0);
    CHECK(strcmp(h2.src_port, h->src_port) == 0 && strcmp(h2.dst_port, h->dst_port) == 0);
}

static void check_str(const char *s, struct proxy_header *h)
{
    check_header(s, strlen(s), h);
}

static void check_addr(const struct proxy_header *h, int version, int family,
                       const char *sip, const char *dip, const char *sport,
                       const char *dport)
{
    CHECK(h->version == version);
    CHECK(!h->local);
    CHECK(h->family == family);
    CHECK_STREQ(h->src_ip, sip);
    CHECK_STREQ(h->dst_ip, dip);
    CHECK_STREQ(h->src_port, sport);
    CHECK_STREQ(h->dst_port, dport);
}

static void check_local(const struct proxy_header *h, int version)
{
    CHECK(h->version == version);
    CHECK(h->local);
    CHECK(h->family == AF_UNSPEC);
    CHECK(h->src_ip[0] == '\0' && h->dst_ip[0] == '\0');
    CHECK(h->src_port[0] == '\0' && h->dst_port[0] == '\0');
}

#define REJECT(s)                                                          \
    do {                                                                   \
        struct proxy_header rh_;                                           \
        if (parse_str((s), &rh_) != PROXY_INVALID) {                       \
            fprintf(stderr, "  not refused: \"%s\"\n", (s));               \
            CHECK(!"refused");                                             \
        }                                                                  \
    } while (0)

#define REJECT_BYTES(p, n)                                                 \
    do {                                                                   \
        struct proxy_header rh_;                                           \
        CHECK(parse((p), (n), &rh_) == PROXY_INVALID);                     \
    } while (0)

/* The line refused, and a well-formed rest of it (the CRLF) cannot save
 * it: refused already at the first byte that rules it out. */
#define REJECT_LINE(s)                                                     \
    do {                                                                   \
        REJECT(s "\r\n");                                                  \
        REJECT(s);                                                         \
    } while (0)

static void test_v1_valid(void)
{
    struct proxy_header h;
    char line[128];

    check_str("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", &h);
    check_addr(&h, 1, AF_INET, "192.168.0.1", "192.168.0.11", "56324", "443");
    check_str("PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n", &h);
    CHECK(h.length == 56);
    check_addr(&h, 1, AF_INET, "255.255.255.255", "255.255.255.255", "65535", "65535");
    check_str("PROXY TCP4 0.0.0.0 10.0.0.100 0 0\r\n", &h);
    check_addr(&h, 1, AF_INET, "0.0.0.0", "10.0.0.100", "0", "0");

    check_str("PROXY TCP6 2001:db8::1 2001:db8::2 1234 25\r\n", &h);
    check_addr(&h, 1, AF_INET6, "2001:db8::1", "2001:db8::2", "1234", "25");
    /* non-canonical forms come out canonical */
    check_str("PROXY TCP6 2001:DB8:0:0:0:0:0:1 0::1 1 2\r\n", &h);
    check_addr(&h, 1, AF_INET6, "2001:db8::1", "::1", "1", "2");
    check_str("PROXY TCP6 :: 1:2:3:4:5:6:7:: 1 2\r\n", &h);
    check_addr(&h, 1, AF_INET6, "::", "1:2:3:4:5:6:7:0", "1", "2");
    check_str("PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
              "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n", &h);
    CHECK(h.length == 104);
    /* a v4 client on the balancer's dual-stack socket is a v4 client */
    check_str("PROXY TCP6 ::ffff:10.0.0.1 ::ffff:10.0.0.2 5000 25\r\n", &h);
    check_addr(&h, 1, AF_INET, "10.0.0.1", "10.0.0.2", "5000", "25");
    check_str("PROXY TCP6 ::ffff:10.0.0.1 2001:db8::2 5000 25\r\n", &h);
    check_addr(&h, 1, AF_INET, "10.0.0.1", "2001:db8::2", "5000", "25");
    check_str("PROXY TCP6 2001:db8::1 ::ffff:10.0.0.2 5000 25\r\n", &h);
    check_addr(&h, 1, AF_INET6, "2001:db8::1", "10.0.0.2", "5000", "25");
    check_str("PROXY TCP6 1:2:3:4:5:6:1.2.3.4 ::1.2.3.4 5 6\r\n", &h);
    CHECK(h.family == AF_INET6);

    check_str("PROXY UNKNOWN\r\n", &h);
    check_local(&h, 1);
    CHECK(h.length == 15);
    check_str("PROXY UNKNOWN \r\n", &h);
    check_local(&h, 1);
    check_str("PROXY UNKNOWN 1.2.3.4 5.6.7.8 1 2\r\n", &h);
    check_local(&h, 1);
    /* the spec's worst case is exactly the limit */
    snprintf(line, sizeof line, "PROXY UNKNOWN %s %s 65535 65535\r\n",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
    CHECK(strlen(line) == PROXY_V1_MAX);
    check_str(line, &h);
    check_local(&h, 1);
    CHECK(h.length == PROXY_V1_MAX);
}

static void test_v1_hostile(void)
{
    struct proxy_header h;
    char line[160];

    /* spacing */
    REJECT("PROXY  TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8  1 2\r\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1  2\r\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n");
    REJECT(" PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY\tTCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY TCP4\t1.2.3.4 5.6.7.8 1 2\r\n");
    /* line ends */
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n\r");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\r\n");
    REJECT("PROXY UNKNOWN\n");
    REJECT("PROXY UNKNOWN 1.2.3.4\n");
    REJECT("PROXY UNKNOWN\rX");
    /* missing CRLF: the TLS stream right after the line */
    memcpy(line, "PROXY TCP4 1.2.3.4 5.6.7.8 1 2", 30);
    memcpy(line + 30, HELLO, sizeof HELLO);
    REJECT_BYTES(line, 30 + sizeof HELLO);
    CHECK(parse(line, 30, &h) == PROXY_NEED_MORE);
    memcpy(line + 29, HELLO, sizeof HELLO); /* "1 " then 0x16 */
    REJECT_BYTES(line, 29 + sizeof HELLO);
    /* fields */
    REJECT("PROXY TCP4\r\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8\r\n");
    REJECT("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n");
    REJECT("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY TCP 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n");
    REJECT("PROXY UNKNOWNX\r\n");
    REJECT("PROXY UNKNOW\r\n");
    REJECT("PROXY \r\n");
    REJECT("PROXY\r\n");
    /* the ignored rest of an UNKNOWN line is still text */
    REJECT("PROXY UNKNOWN \x01\r\n");
    REJECT("PROXY UNKNOWN \x80\r\n");
    REJECT_BYTES("PROXY UNKNOWN \0\r\n", 17);
    /* IPv4 */
    REJECT_LINE("PROXY TCP4 256.1.1.1 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4.5 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 01.2.3.4 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.04 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.00 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1..2.3 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 .1.2.3 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3. 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.1000 1 2");
    REJECT_LINE("PROXY TCP4 0x1.2.3.4 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.-4 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8/24 1 2");
    /* IPv6 */
    REJECT_LINE("PROXY TCP6 ::g ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::1 ::g 1 2");
    REJECT_LINE("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2");
    REJECT_LINE("PROXY TCP6 1:2:3:4:5:6:7 ::1 1 2");
    REJECT_LINE("PROXY TCP6 1:2:3:4:5:6:7:8:: ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::1:2:3:4:5:6:7:8 ::1 1 2");
    REJECT_LINE("PROXY TCP6 1::2:3:4:5:6:7:8 ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::: ::1 1 2");
    REJECT_LINE("PROXY TCP6 1::2::3 ::1 1 2");
    REJECT_LINE("PROXY TCP6 :1:: ::1 1 2");
    REJECT_LINE("PROXY TCP6 1: ::1 1 2");
    REJECT_LINE("PROXY TCP6 12345:: ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::ffff:01.2.3.4 ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::ffff:1.2.3.4.5 ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::ffff:1.2.3 ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::1.2.3.4:5 ::1 1 2");
    REJECT_LINE("PROXY TCP6 1:2:3:4:5:1.2.3.4 ::1 1 2");
    REJECT_LINE("PROXY TCP6 1:2:3:4:5:6:7:1.2.3.4 ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::a.2.3.4 ::1 1 2");
    REJECT_LINE("PROXY TCP6 fe80::1%eth0 ::1 1 2");
    REJECT_LINE("PROXY TCP6 [::1] ::1 1 2");
    /* ports */
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 65536 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 01 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 1 00");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 +1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 1x 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 123456 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 5.6.7.8 99999999999999999999 2");
    /* family mismatch */
    REJECT_LINE("PROXY TCP4 ::1 5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP4 1.2.3.4 ::ffff:5.6.7.8 1 2");
    REJECT_LINE("PROXY TCP6 1.2.3.4 ::1 1 2");
    REJECT_LINE("PROXY TCP6 ::1 5.6.7.8 1 2");

    /* refused as soon as the bytes rule it out, not at the CRLF */
    CHECK(parse_str("PROXY TCP4 256", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 0", &h) == PROXY_NEED_MORE);
    CHECK(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 01", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP5", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP6 :::", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP6 1:2:3:4:5:6:7:8:", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP6 1:2:3:4:5:6:7:8", &h) == PROXY_NEED_MORE);
    CHECK(parse_str("PROXY TCP4 1.2.3.4.", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP6 1::2:3:4:5:6:7", &h) == PROXY_NEED_MORE);
    CHECK(parse_str("PROXY TCP6 1::2:3:4:5:6:7:", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP6 1:2:3:4:5:6:7:", &h) == PROXY_NEED_MORE);
    CHECK(parse_str("PROXY TCP6 1:2:3:4:5:1.", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP6 ::ffff:1.", &h) == PROXY_NEED_MORE);
    CHECK(parse_str("PRX", &h) == PROXY_INVALID);
    CHECK(parse_str("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", &h) == PROXY_NEED_MORE);

    /* length: the CRLF must end within 107 bytes */
    snprintf(line, sizeof line, "PROXY UNKNOWN %s %s 65535 65535\r\n",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
             "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffff");
    CHECK(strlen(line) == PROXY_V1_MAX + 1);
    REJECT(line);
    CHECK(parse(line, PROXY_V1_MAX - 2, &h) == PROXY_NEED_MORE); /* CRLF fits */
    CHECK(parse(line, PROXY_V1_MAX - 1, &h) == PROXY_INVALID);   /* it cannot */
    memset(line, 'a', sizeof line);
    memcpy(line, "PROXY UNKNOWN ", 14);
    CHECK(parse(line, sizeof line, &h) == PROXY_INVALID);
    /* a TCP6 line with two 45-character addresses is over the limit */
    snprintf(line, sizeof line, "PROXY TCP6 %s %s 1 2\r\n",
             "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
             "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255");
    CHECK(strlen(line) > PROXY_V1_MAX);
    REJECT(line);
}

/* A v2 header: signature, ver_cmd, fam, big-endian length, body. */
static size_t v2(unsigned char *out, unsigned ver_cmd, unsigned fam,
                 const unsigned char *body, size_t blen)
{
    memcpy(out, SIG, sizeof SIG);
    out[12] = (unsigned char)ver_cmd;
    out[13] = (unsigned char)fam;
    out[14] = (unsigned char)(blen >> 8);
    out[15] = (unsigned char)blen;
    if (blen > 0)
        memcpy(out + 16, body, blen);
    return 16 + blen;
}

static const unsigned char ADDR4[12] = {192, 0, 2, 1, 198, 51, 100, 7,
                                        0xdc, 0x04, 0x01, 0xbb}; /* 56324, 443 */
static const unsigned char ADDR6[36] = {
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
    0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2,
    0xff, 0xff, 0x00, 0x19}; /* 65535, 25 */
static const unsigned char ADDR6_MAPPED[36] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 5,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 10, 1, 2, 3,
    0x00, 0x00, 0x03, 0xe1}; /* 0, 993 */
/* NOOP "abc", AUTHORITY "example.com", NOOP empty, a custom type */
static const unsigned char TLVS[] = {
    0x04, 0x00, 0x03, 'a', 'b', 'c',
    0x02, 0x00, 0x0b, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
    0x04, 0x00, 0x00,
    0xea, 0x00, 0x02, 0x01, 0x02};

static void test_v2_valid(void)
{
    unsigned char hdr[PROXY_MAX_HEADER], body[PROXY_V2_MAX_BLOCK];
    struct proxy_header h;
    size_t n;

    n = v2(hdr, 0x21, 0x11, ADDR4, sizeof ADDR4);
    check_header(hdr, n, &h);
    CHECK(h.length == 28);
    check_addr(&h, 2, AF_INET, "192.0.2.1", "198.51.100.7", "56324", "443");

    memcpy(body, ADDR4, sizeof ADDR4);
    memcpy(body + sizeof ADDR4, TLVS, sizeof TLVS);
    n = v2(hdr, 0x21, 0x11, body, sizeof ADDR4 + sizeof TLVS);
    check_header(hdr, n, &h);
    CHECK(h.length == 16 + 12 + sizeof TLVS);
    check_addr(&h, 2, AF_INET, "192.0.2.1", "198.51.100.7", "56324", "443");

    n = v2(hdr, 0x21, 0x21, ADDR6, sizeof ADDR6);
    check_header(hdr, n, &h);
    CHECK(h.length == 52);
    check_addr(&h, 2, AF_INET6, "2001:db8::1", "2001:db8::2", "65535", "25");

    memcpy(body, ADDR6, sizeof ADDR6);
    memcpy(body + sizeof ADDR6, TLVS, sizeof TLVS);
    n = v2(hdr, 0x21, 0x21, body, sizeof ADDR6 + sizeof TLVS);
    check_header(hdr, n, &h);
    check_addr(&h, 2, AF_INET6, "2001:db8::1", "2001:db8::2", "65535", "25");

    n = v2(hdr, 0x21, 0x21, ADDR6_MAPPED, sizeof ADDR6_MAPPED);
    check_header(hdr, n, &h);
    check_addr(&h, 2, AF_INET, "203.0.113.5", "10.1.2.3", "0", "993");

    /* LOCAL (health checks): no address, whatever the family byte */
    n = v2(hdr, 0x20, 0x00, NULL, 0);
    check_header(hdr, n, &h);
    check_local(&h, 2);
    CHECK(h.length == 16);
    n = v2(hdr, 0x20, 0x11, ADDR4, sizeof ADDR4);
    check_header(hdr, n, &h);
    check_local(&h, 2);
    CHECK(h.length == 28);
    n = v2(hdr, 0x20, 0x00, TLVS, sizeof TLVS);
    check_header(hdr, n, &h);
    check_local(&h, 2);
    memset(body, 0, 216);
    n = v2(hdr, 0x20, 0x31, body, 216);
    check_header(hdr, n, &h);
    check_local(&h, 2);
    n = v2(hdr, 0x20, 0x11, NULL, 0); /* the spec: family ignored */
    check_header(hdr, n, &h);
    check_local(&h, 2);
    n = v2(hdr, 0x20, 0xff, (const unsigned char *)"xyz", 3);
    check_header(hdr, n, &h);
    check_local(&h, 2);

    /* exactly at the cap: one NOOP TLV filling the block */
    memcpy(body, ADDR4, sizeof ADDR4);
    body[12] = 0x04;
    body[13] = (PROXY_V2_MAX_BLOCK - 12 - 3) >> 8;
    body[14] = (PROXY_V2_MAX_BLOCK - 12 - 3) & 0xff;
    memset(body + 15, 0x5a, PROXY_V2_MAX_BLOCK - 15);
    n = v2(hdr, 0x21, 0x11, body, PROXY_V2_MAX_BLOCK);
    CHECK(n == PROXY_MAX_HEADER);
    check_header(hdr, n, &h);
    CHECK(h.length == PROXY_MAX_HEADER);
    n = v2(hdr, 0x20, 0x00, body, PROXY_V2_MAX_BLOCK);
    check_header(hdr, n, &h);
    check_local(&h, 2);
}

static void test_v2_hostile(void)
{
    unsigned char hdr[PROXY_MAX_HEADER + 16], body[64];
    struct proxy_header h;
    size_t n;

    /* version nibble */
    n = v2(hdr, 0x11, 0x11, ADDR4, sizeof ADDR4);
    REJECT_BYTES(hdr, n);
    REJECT_BYTES(hdr, 13); /* refused at the byte that says so */
    n = v2(hdr, 0x31, 0x11, ADDR4, sizeof ADDR4);
    REJECT_BYTES(hdr, n);
    n = v2(hdr, 0x01, 0x11, ADDR4, sizeof ADDR4);
    REJECT_BYTES(hdr, n);
    /* command */
    for (unsigned cmd = 2; cmd < 16; cmd++) {
        n = v2(hdr, 0x20 | cmd, 0x11, ADDR4, sizeof ADDR4);
        REJECT_BYTES(hdr, n);
        REJECT_BYTES(hdr, 13);
    }
    /* PROXY over anything but TCP over IPv4/IPv6 */
    {
        static const unsigned fams[] = {0x00, 0x01, 0x10, 0x12, 0x13, 0x20, 0x22,
                                        0x31, 0x32, 0x41, 0xff};
        memset(body, 0, sizeof body);
        for (size_t i = 0; i < sizeof fams / sizeof fams[0]; i++) {
            n = v2(hdr, 0x21, fams[i], body, fams[i] >> 4 == 3 ? 0 : 36);
            REJECT_BYTES(hdr, n);
            REJECT_BYTES(hdr, 14);
        }
        hdr[13] = 0x31;
        hdr[14] = 0;
        hdr[15] = 216;
        memset(hdr + 16, 0, 216);
        REJECT_BYTES(hdr, 16 + 216); /* UNIX with its full block */
    }
    /* length shorter than the address block */
    n = v2(hdr, 0x21, 0x11, ADDR4, 11);
    REJECT_BYTES(hdr, n);
    REJECT_BYTES(hdr, 16);
    n = v2(hdr, 0x21, 0x11, NULL, 0);
    REJECT_BYTES(hdr, n);
    n = v2(hdr, 0x21, 0x21, ADDR6, 35);
    REJECT_BYTES(hdr, n);
    n = v2(hdr, 0x21, 0x21, ADDR6, 12); /* a v4-sized block for v6 */
    REJECT_BYTES(hdr, n);
    /* TLVs that do not fit the block */
    memcpy(body, ADDR4, 12);
    memcpy(body + 12, "\x04\x00\x0a" "abcde", 8); /* says 10, has 5 */
    n = v2(hdr, 0x21, 0x11, body, 20);
    REJECT_BYTES(hdr, n);
    REJECT_BYTES(hdr, 16 + 15); /* refused once its header is in */
    memcpy(body + 12, "\x04\xff\xff", 3);
    n = v2(hdr, 0x21, 0x11, body, 15);
    REJECT_BYTES(hdr, n);
    memcpy(body + 12, "\x04\x00\x01" "a" "\x04", 5); /* 1 stray byte */
    n = v2(hdr, 0x21, 0x11, body, 17);
    REJECT_BYTES(hdr, n);
    CHECK(parse(hdr, 16 + 12 + 4, &h) == PROXY_INVALID); /* known from the length */
    memcpy(body + 12, "\x04\x00", 2); /* 2 stray bytes */
    n = v2(hdr, 0x21, 0x11, body, 14);
    REJECT_BYTES(hdr, n);
    CHECK(parse(hdr, 16 + 12, &h) == PROXY_INVALID);
    /* over the cap: refused from the fixed part alone */
    memset(hdr + 16, 0, PROXY_V2_MAX_BLOCK + 1);
    memcpy(hdr + 16, ADDR4, 12);
    hdr[28] = 0x04;
    hdr[29] = (PROXY_V2_MAX_BLOCK + 1 - 15) >> 8;
    hdr[30] = (PROXY_V2_MAX_BLOCK + 1 - 15) & 0xff;
    hdr[14] = (PROXY_V2_MAX_BLOCK + 1) >> 8;
    hdr[15] = (PROXY_V2_MAX_BLOCK + 1) & 0xff;
    hdr[12] = 0x21;
    hdr[13] = 0x11;
    REJECT_BYTES(hdr, 16);
    REJECT_BYTES(hdr, 16 + PROXY_V2_MAX_BLOCK + 1);
    hdr[12] = 0x20; /* LOCAL too */
    REJECT_BYTES(hdr, 16);
    hdr[14] = 0xff;
    hdr[15] = 0xff;
    REJECT_BYTES(hdr, 16);
    /* signature */
    n = v2(hdr, 0x21, 0x11, ADDR4, sizeof ADDR4);
    for (size_t i = 0; i < 12; i++) {
        hdr[i] ^= 0x01;
        REJECT_BYTES(hdr, n);
        REJECT_BYTES(hdr, i + 1);
        hdr[i] ^= 0x01;
    }
    CHECK(parse(hdr, 5, &h) == PROXY_NEED_MORE);
    CHECK(parse("\r\n\r\n\0\r\nQUIT\n", 12, &h) == PROXY_NEED_MORE);
    REJECT_BYTES("\r\n\r\n\0\r\nQUIT\r", 12);
}

static void test_other_protocols(void)
{
    struct proxy_header h;
    /* a ClientHello, as a client that skipped the balancer sends it */
    static const unsigned char hello[] = {
        0x16, 0x03, 0x01, 0x00, 0x2f, 0x01, 0x00, 0x00, 0x2b, 0x03, 0x03,
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x0a,
        0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15,
        0x16, 0x17, 0x18, 0x19, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x00,
        0x00, 0x02, 0x13, 0x01, 0x01, 0x00, 0x00, 0x00};

    REJECT_BYTES(hello, sizeof hello);
    REJECT_BYTES(hello, 1);
    REJECT("GET / HTTP/1.1\r\nHost: example.com\r\n\r\n");
    REJECT("G");
    REJECT("EHLO example.com\r\n");
    CHECK(parse_str("\r\n", &h) == PROXY_NEED_MORE); /* the v2 signature's start */
    REJECT("\r\r");
    REJECT("\r\n\r\n\r\n"); /* 5th signature byte is NUL */
    REJECT("\n");
    REJECT_BYTES("\0", 1);
    CHECK(parse_str("PROXY", &h) == PROXY_NEED_MORE);
    CHECK(parse_str("P", &h) == PROXY_NEED_MORE);
    CHECK(parse(NULL, 0, &h) == PROXY_NEED_MORE);
    CHECK(parse("", 0, &h) == PROXY_NEED_MORE);
    CHECK(parse(NULL, 5, &h) == PROXY_INVALID);
    CHECK(proxy_parse((const unsigned char *)"PROXY UNKNOWN\r\n", 15, NULL, NULL) == PROXY_INVALID);
    /* why is optional */
    CHECK(proxy_parse(hello, sizeof hello, &h, NULL) == PROXY_INVALID);
    CHECK(proxy_parse((const unsigned char *)"PROXY UNKNOWN\r\n", 15, &h, NULL) == PROXY_OK);
}

int main(void)
{
    test_v1_valid();
    test_v1_hostile();
    test_v2_valid();
    test_v2_hostile();
    test_other_protocols();
    return check_done("test_proxy");
}
