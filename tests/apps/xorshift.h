/* The deterministic byte stream of the data-integrity tests, shared by
 * ucspi-testapp (source/duplex) and gen-verify.
 *
 * Algorithm (xorshift64*, Vigna), so that Python can produce the same bytes:
 *
 *   state = SEED (unsigned 64-bit); if state == 0: state = 0x9E3779B97F4A7C15
 *   for each 8-byte block:
 *       state ^= state >> 12
 *       state ^= (state << 25) & 0xFFFFFFFFFFFFFFFF
 *       state ^= state >> 27
 *       out = (state * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF
 *       emit out.to_bytes(8, "little")
 *   the stream is cut after N bytes (the last block may be partial).
 *
 *   def stream(n, seed):
 *       s = seed & 0xFFFFFFFFFFFFFFFF or 0x9E3779B97F4A7C15
 *       out = bytearray()
 *       while len(out) < n:
 *           s ^= s >> 12; s ^= (s << 25) & 0xFFFFFFFFFFFFFFFF; s ^= s >> 27
 *           out += ((s * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
 *       return bytes(out[:n])
 *
 * Check values: stream(16, 1).hex() == "1ddd6c894bcee4471d6579e0a8a6cfab",
 * stream(16, 0).hex() == "7a48219ae2b3830d679dfef1794cc454" (seed 0 = the
 * fallback seed); `gen-verify gen 16 1 | xxd -p` prints the first. */
#ifndef UCSPITLS_TESTS_XORSHIFT_H
#define UCSPITLS_TESTS_XORSHIFT_H

#include <stddef.h>
#include <stdint.h>

struct xorshift {
    uint64_t state;
    unsigned char out[8];
    size_t avail; /* unused bytes left in out[8 - avail .. 8) */
};

static inline void xorshift_init(struct xorshift *x, uint64_t seed)
{
    x->state = seed ? seed : UINT64_C(0x9E3779B97F4A7C15);
    x->avail = 0;
}

/* Fills buf[0..n) with the next n bytes of the stream. */
static inline void xorshift_fill(struct xorshift *x, unsigned char *buf, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (x->avail == 0) {
            uint64_t s = x->state;
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            x->state = s;
            uint64_t o = s * UINT64_C(0x2545F4914F6CDD1D);
            for (int k = 0; k < 8; k++)
                x->out[k] = (unsigned char)(o >> (8 * k));
            x->avail = 8;
        }
        buf[i] = x->out[8 - x->avail--];
    }
}

#endif
