/* The deterministic byte stream of the bulk benchmarks, shared by the
 * generator (bench-gen), the sink (bench-sink), the ceiling server
 * (tls-ceiling) and the client (tlsbench).
 *
 * It must cost next to nothing to produce and to check, so that a 1 GiB
 * transfer measures the TLS server and not the pattern:
 *
 *   block  = 64 KiB of xorshift64* output (seed STREAM_SEED), made once;
 *   chunk j of the stream (bytes j*64Ki .. j*64Ki+64Ki) = block, with its
 *            first 8 bytes XORed with j (little-endian);
 *   the stream is cut after N bytes.
 *
 * Producing it is a memcpy-free write of a prepared buffer whose chunk
 * headers are patched; checking it is a memcmp per chunk piece.  Every byte
 * is compared (stronger than a checksum), and the chunk number in each
 * header catches a relay that drops, repeats or reorders whole chunks.
 *
 * Header-only (static inline functions), so that each program stays one file. */
#ifndef UCSPITLS_BENCH_STREAM_H
#define UCSPITLS_BENCH_STREAM_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#define STREAM_CHUNK 65536u
#define STREAM_SEED 0x7563737069746c73ULL /* "ucspitls" */

struct stream {
    unsigned char block[STREAM_CHUNK];
};

/* Fills the 64 KiB block (call once). */
static inline void stream_init(struct stream *s)
{
    uint64_t x = STREAM_SEED;

    for (size_t i = 0; i < STREAM_CHUNK; i += 8) {
        uint64_t v;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        v = x * 0x2545F4914F6CDD1DULL;
        for (int b = 0; b < 8; b++)
            s->block[i + (size_t)b] = (unsigned char)(v >> (8 * b));
    }
}

/* The first 8 bytes of chunk j. */
static inline void stream_header(const struct stream *s, uint64_t j, unsigned char out[8])
{
    for (int b = 0; b < 8; b++)
        out[b] = (unsigned char)(s->block[b] ^ (unsigned char)(j >> (8 * b)));
}

/* Writes the stream bytes [off, off+len) into buf. */
static inline void stream_fill(const struct stream *s, uint64_t off, unsigned char *buf,
                        size_t len)
{
    while (len > 0) {
        uint64_t j = off / STREAM_CHUNK;
        size_t r = (size_t)(off % STREAM_CHUNK);
        size_t n = STREAM_CHUNK - r < len ? STREAM_CHUNK - r : len;

        memcpy(buf, s->block + r, n);
        if (r < 8) {
            unsigned char h[8];
            stream_header(s, j, h);
            for (size_t i = r; i < 8 && i - r < n; i++)
                buf[i - r] = h[i];
        }
        buf += n;
        off += n;
        len -= n;
    }
}

/* Patches the chunk headers of a buffer that holds the stream bytes
 * [off, off+len) for an earlier offset with the same alignment
 * (off % STREAM_CHUNK == 0 and len a multiple of STREAM_CHUNK): makes it
 * hold [off, off+len) without touching the other bytes. */
static inline void stream_patch(const struct stream *s, uint64_t off, unsigned char *buf,
                         size_t len)
{
    for (size_t i = 0; i < len; i += STREAM_CHUNK)
        stream_header(s, (off + i) / STREAM_CHUNK, buf + i);
}

/* Compares buf with the stream bytes [off, off+len).  Returns -1 if they
 * match, else the stream offset of the first chunk piece that differs. */
static inline int64_t stream_check(const struct stream *s, uint64_t off,
                            const unsigned char *buf, size_t len)
{
    while (len > 0) {
        uint64_t j = off / STREAM_CHUNK;
        size_t r = (size_t)(off % STREAM_CHUNK);
        size_t n = STREAM_CHUNK - r < len ? STREAM_CHUNK - r : len;
        size_t skip = 0;

        if (r < 8) {
            unsigned char h[8];
            stream_header(s, j, h);
            skip = 8 - r < n ? 8 - r : n;
            if (memcmp(buf, h + r, skip) != 0)
                return (int64_t)off;
        }
        if (memcmp(buf + skip, s->block + r + skip, n - skip) != 0)
            return (int64_t)off;
        buf += n;
        off += n;
        len -= n;
    }
    return -1;
}

/* Parses a byte count: digits with an optional k, m or g suffix (powers of
 * 1024).  Returns 0 and sets *out, or -1 when malformed or above 2^50. */
static inline int stream_parse_size(const char *str, uint64_t *out)
{
    uint64_t v = 0, mul = 1;
    const char *p = str;

    if (*p < '0' || *p > '9')
        return -1;
    for (; *p >= '0' && *p <= '9'; p++) {
        if (v > (1ULL << 50) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*p - '0');
    }
    switch (*p) {
    case '\0': break;
    case 'k': case 'K': mul = 1ULL << 10; p++; break;
    case 'm': case 'M': mul = 1ULL << 20; p++; break;
    case 'g': case 'G': mul = 1ULL << 30; p++; break;
    default: return -1;
    }
    if (*p != '\0' || v > (1ULL << 50) / mul)
        return -1;
    *out = v * mul;
    return 0;
}

#endif
