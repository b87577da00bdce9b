/* The keyd wire protocol and what keyd agrees to sign.
 *
 * One SOCK_SEQPACKET channel per worker; one message per packet.
 *   request:  u8 version (1) | u8 scheme | u16 key id | u16 tbs length | tbs
 *   answer:   u8 status (0 ok, else refused) | u16 sig length | signature
 * (integers big-endian).  Every request is decoded by keyd_request_decode()
 * and checked by keyd_tbs_check() before any key is touched. */
#ifndef UCSPITLS_ENGINE_KEYD_PROTO_H
#define UCSPITLS_ENGINE_KEYD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define KEYD_PROTO_VERSION 1
#define KEYD_REQ_HEADER 6
#define KEYD_ANS_HEADER 3
/* Largest to-be-signed input: a TLS 1.2 ServerKeyExchange for P-521
 * (64 + 4 + 133) is the biggest shape accepted. */
#define KEYD_TBS_MAX 256
#define KEYD_SIG_MAX 1024 /* RSA-8192 */
#define KEYD_REQ_MAX (KEYD_REQ_HEADER + KEYD_TBS_MAX)
#define KEYD_ANS_MAX (KEYD_ANS_HEADER + KEYD_SIG_MAX)

/* Signature schemes keyd performs; it hashes and pads itself. */
enum keyd_scheme {
    KEYD_ECDSA_SHA256 = 1,
    KEYD_ECDSA_SHA384,
    KEYD_ECDSA_SHA512,
    KEYD_RSA_PSS_SHA256,
    KEYD_RSA_PSS_SHA384,
    KEYD_RSA_PSS_SHA512,
    KEYD_RSA_PKCS1_SHA256,
    KEYD_RSA_PKCS1_SHA384,
    KEYD_RSA_PKCS1_SHA512,
    KEYD_ED25519,
    KEYD_SCHEME_END,
};

enum keyd_key_kind { KEYD_KIND_EC, KEYD_KIND_RSA, KEYD_KIND_ED25519 };

struct keyd_request {
    uint8_t scheme;
    uint16_t key_id;
    uint16_t tbs_len;
    const unsigned char *tbs; /* borrowed from the decoded buffer */
};

/* Which TLS input a to-be-signed buffer is. */
enum keyd_shape {
    KEYD_SHAPE_NONE = 0,
    KEYD_SHAPE_TLS13_CV,  /* TLS 1.3 server CertificateVerify input */
    KEYD_SHAPE_TLS12_SKE, /* TLS 1.2 ECDHE ServerKeyExchange input */
};

/* Decodes one request packet.  Exact size: the header, then exactly
 * tbs_len bytes.  Returns 0, or -1 for anything malformed (wrong version,
 * unknown scheme, tbs_len 0 or over KEYD_TBS_MAX, wrong total length). */
int keyd_request_decode(const unsigned char *buf, size_t len,
                        struct keyd_request *req);

/* Encodes a request into out (at least KEYD_REQ_MAX bytes); returns the
 * length or -1 if tbs is too long or the scheme unknown. */
int keyd_request_encode(uint8_t scheme, uint16_t key_id,
                        const unsigned char *tbs, size_t tbs_len,
                        unsigned char *out, size_t cap);

/* The shape of a to-be-signed buffer, KEYD_SHAPE_NONE if it is neither a
 * TLS 1.3 server CertificateVerify input (64 spaces, the context string, a
 * zero byte, a 32 or 48 byte transcript hash) nor a TLS 1.2
 * ServerKeyExchange input (two 32-byte randoms, named_curve, a known group
 * and a public value of exactly that group's size). */
enum keyd_shape keyd_tbs_shape(const unsigned char *tbs, size_t len);

/* Whether scheme may be used with a key of this kind for this shape:
 * the key type must fit, and TLS 1.3 never uses RSA PKCS#1 v1.5. */
int keyd_scheme_allowed(uint8_t scheme, enum keyd_key_kind kind,
                        enum keyd_shape shape);

/* Digest name for a scheme (NULL for Ed25519) and whether it is PSS. */
const char *keyd_scheme_digest(uint8_t scheme);
int keyd_scheme_is_pss(uint8_t scheme);

/* Answer packets. */
int keyd_answer_encode(int ok, const unsigned char *sig, size_t sig_len,
                       unsigned char *out, size_t cap);
/* Returns the signature length (and a pointer to it in buf), or -1 for a
 * refusal or a malformed answer. */
int keyd_answer_decode(const unsigned char *buf, size_t len,
                       const unsigned char **sig);

#endif
