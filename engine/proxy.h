/* The PROXY protocol header (HAProxy's "The PROXY protocol, Versions 1 &
 * 2") at the start of a connection's input, when a load balancer in front
 * of us is configured to send one: the one decoder for those bytes.
 *
 * The header arrives from the network before any TLS, so it is parsed as
 * hostile input: strictly (anything not exactly a v1 line or a v2 block is
 * refused, never guessed at), without I/O and without allocation.  The
 * caller reads, calls proxy_parse() on everything read so far, and reads
 * more only while it answers PROXY_NEED_MORE; that never happens past
 * PROXY_MAX_HEADER bytes. */
#ifndef UCSPITLS_ENGINE_PROXY_H
#define UCSPITLS_ENGINE_PROXY_H

#include <stddef.h>
#include <sys/socket.h> /* AF_INET, AF_INET6, AF_UNSPEC */

/* v1: the spec's longest line, CRLF included ("PROXY UNKNOWN" with two
 * full IPv6 addresses and two 5-digit ports). */
#define PROXY_V1_MAX 107

/* v2: the fixed part (signature, version/command, family, length). */
#define PROXY_V2_FIXED 16

/* v2: the largest address block + TLVs we accept (the length field may say
 * up to 65535).  1024 holds the largest address block (2 x 108 bytes of
 * UNIX paths, only meaningful for LOCAL here) or TCP over IPv6 (36) plus
 * every registered TLV at its realistic size: AUTHORITY (an SNI name, at
 * most 255), UNIQUE_ID (at most 128 by the spec), SSL with version, client
 * CN, cipher, signature and key algorithm (~200), NETNS, CRC32C, ALPN and a
 * cloud provider's endpoint id (AWS, Azure, GCP: under 64 each), which sum
 * to about 700.  It bounds what a connection holds before the TLS stream
 * starts to 1 KiB instead of 64 KiB; a sender configured to attach more is
 * refused with a reason that says so, rather than silently truncated. */
#define PROXY_V2_MAX_BLOCK 1024

/* The most bytes a header can take: the v2 maximum (more than v1's 107). */
#define PROXY_MAX_HEADER (PROXY_V2_FIXED + PROXY_V2_MAX_BLOCK)

/* Result of parsing the start of a connection's input. */
struct proxy_header {
    int version; /* 1 or 2 */
    int local;   /* v2 LOCAL command or v1 "UNKNOWN": no address, use the
                  * socket's (family AF_UNSPEC, the strings below empty) */
    int family;  /* when !local: AF_INET or AF_INET6, the source's (the
                  * client's); an IPv4-mapped IPv6 address (::ffff:a.b.c.d)
                  * counts as AF_INET, as on a dual-stack socket */
    char src_ip[46], dst_ip[46];   /* text form (inet_ntop; a mapped address
                                    * in dotted form, each address mapped
                                    * on its own), when !local */
    char src_port[6], dst_port[6]; /* decimal text, when !local */
    size_t length; /* total header bytes consumed (v2: including TLVs) */
};

enum { PROXY_OK = 0, PROXY_NEED_MORE = 1, PROXY_INVALID = -1 };

/* Parses buf[0..len) (buf may be NULL when len is 0; out must not be NULL).
 *
 * Returns PROXY_NEED_MORE while buf is a proper prefix of a header that can
 * still become valid: the caller reads more, then calls again with all of
 * it (never the case once len >= PROXY_MAX_HEADER, nor for a v1 line once
 * its CRLF could no longer end within PROXY_V1_MAX bytes).
 * Returns PROXY_OK with *out filled when a complete valid header starts buf;
 * the bytes from out->length on are the TLS stream and must be kept.
 * Returns PROXY_INVALID for anything else, as soon as the bytes seen rule a
 * valid header out (a TLS ClientHello at the first byte), with a short
 * static reason in *why if why != NULL.
 * *out is written only on PROXY_OK; *why is set to NULL unless INVALID.
 *
 * Accepted, and nothing else:
 *   v1  "PROXY TCP4 " ip4 " " ip4 " " port " " port "\r\n"
 *       "PROXY TCP6 " ip6 " " ip6 " " port " " port "\r\n"
 *       "PROXY UNKNOWN\r\n", "PROXY UNKNOWN " printable-ASCII* "\r\n"
 *       at most PROXY_V1_MAX bytes; single spaces; ip4 is exactly four
 *       decimal octets 0-255 without leading zeros; ip6 is what inet_pton
 *       accepts (1-4 hex digits a group, one "::", an optional final dotted
 *       ip4 without leading zeros); ports 0-65535 without leading zeros.
 *   v2  the 12-byte signature, version 2, then
 *       PROXY (1) with TCP over IPv4 (0x11) or IPv6 (0x21) only, a length
 *       covering the address block, and after it only well-formed TLVs
 *       (3-byte header, value within the block), skipped unread;
 *       LOCAL (0) with any family byte: the block is skipped unread (the
 *       spec: "discard the protocol block including the family");
 *       a length field of at most PROXY_V2_MAX_BLOCK in both cases. */
int proxy_parse(const unsigned char *buf, size_t len, struct proxy_header *out,
                const char **why);

/* For buf[0..len) on which proxy_parse said PROXY_NEED_MORE: how many more
 * bytes certainly belong to the header (at least 1).  Reading exactly that
 * many from the socket never takes a byte of the TLS stream behind it. */
size_t proxy_read_size(const unsigned char *buf, size_t len);

#endif
