/* keyd: its decoder and signing policy on hostile input, then a live keyd
 * (the real process, locked in) asked by a "compromised worker" to sign
 * what it must not: each refused, the channel ended, keyd still serving;
 * and what it must: a signature that verifies with the certificate's key. */
#include "check.h"
#include "internal.h"
#include "keyd.h"
#include "keyd_proto.h"

#include <errno.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static unsigned char cv13[64 + 33 + 1 + 48];
static unsigned char ske12[64 + 4 + 65];

static void make_inputs(void)
{
    memset(cv13, 0x20, 64);
    memcpy(cv13 + 64, "TLS 1.3, server CertificateVerify", 33);
    cv13[97] = 0;
    for (size_t i = 98; i < sizeof cv13; i++)
        cv13[i] = (unsigned char)i;
    for (int i = 0; i < 64; i++)
        ske12[i] = (unsigned char)(i * 7);
    ske12[64] = 3;    /* named_curve */
    ske12[65] = 0x00; /* secp256r1 */
    ske12[66] = 0x17;
    ske12[67] = 65;
    ske12[68] = 4;    /* uncompressed */
    for (size_t i = 69; i < sizeof ske12; i++)
        ske12[i] = (unsigned char)i;
}

static void test_decoder(void)
{
    unsigned char buf[KEYD_REQ_MAX + 8];
    struct keyd_request r;
    int n;

    CHECK(keyd_request_decode(NULL, 0, &r) < 0);
    CHECK(keyd_request_decode(buf, 0, &r) < 0);
    n = keyd_request_encode(KEYD_ECDSA_SHA256, 0, cv13, 130, buf, sizeof buf);
    CHECK(n == KEYD_REQ_HEADER + 130);
    CHECK(keyd_request_decode(buf, (size_t)n, &r) == 0 && r.tbs_len == 130);
    CHECK(keyd_request_decode(buf, (size_t)n - 1, &r) < 0); /* short */
    CHECK(keyd_request_decode(buf, (size_t)n + 1, &r) < 0); /* trailing byte */
    buf[0] = 2;
    CHECK(keyd_request_decode(buf, (size_t)n, &r) < 0); /* version */
    buf[0] = 1;
    buf[1] = 0;
    CHECK(keyd_request_decode(buf, (size_t)n, &r) < 0); /* scheme 0 */
    buf[1] = KEYD_SCHEME_END;
    CHECK(keyd_request_decode(buf, (size_t)n, &r) < 0); /* unknown scheme */
    buf[1] = KEYD_ECDSA_SHA256;
    buf[4] = 0xff; /* length field lies */
    CHECK(keyd_request_decode(buf, (size_t)n, &r) < 0);
    buf[4] = 0;
    buf[5] = 0;
    CHECK(keyd_request_decode(buf, KEYD_REQ_HEADER, &r) < 0); /* empty tbs */
    CHECK(keyd_request_decode(buf, sizeof buf, &r) < 0);      /* over max */
    CHECK(keyd_request_encode(KEYD_ECDSA_SHA256, 0, cv13, KEYD_TBS_MAX + 1, buf, sizeof buf) < 0);

    /* answers */
    {
        const unsigned char *sig;
        unsigned char ans[KEYD_ANS_MAX];
        n = keyd_answer_encode(1, (const unsigned char *)"abc", 3, ans, sizeof ans);
        CHECK(keyd_answer_decode(ans, (size_t)n, &sig) == 3 && memcmp(sig, "abc", 3) == 0);
        CHECK(keyd_answer_decode(ans, (size_t)n - 1, &sig) < 0);
        n = keyd_answer_encode(0, NULL, 0, ans, sizeof ans);
        CHECK(keyd_answer_decode(ans, (size_t)n, &sig) < 0); /* refusal */
    }
}

static void test_shapes(void)
{
    unsigned char t[256];

    CHECK(keyd_tbs_shape(cv13, sizeof cv13) == KEYD_SHAPE_TLS13_CV);
    CHECK(keyd_tbs_shape(cv13, 64 + 33 + 1 + 32) == KEYD_SHAPE_TLS13_CV);
    CHECK(keyd_tbs_shape(cv13, 64 + 33 + 1 + 33) == KEYD_SHAPE_NONE);
    memcpy(t, cv13, sizeof cv13);
    memcpy(t + 64, "TLS 1.3, client CertificateVerify", 33); /* client context */
    CHECK(keyd_tbs_shape(t, sizeof cv13) == KEYD_SHAPE_NONE);
    memcpy(t, cv13, sizeof cv13);
    t[10] = 0x21;
    CHECK(keyd_tbs_shape(t, sizeof cv13) == KEYD_SHAPE_NONE);
    memcpy(t, cv13, sizeof cv13);
    t[97] = 1; /* separator */
    CHECK(keyd_tbs_shape(t, sizeof cv13) == KEYD_SHAPE_NONE);

    CHECK(keyd_tbs_shape(ske12, sizeof ske12) == KEYD_SHAPE_TLS12_SKE);
    CHECK(keyd_tbs_shape(ske12, sizeof ske12 - 1) == KEYD_SHAPE_NONE);
    memcpy(t, ske12, sizeof ske12);
    t[68] = 2; /* compressed point */
    CHECK(keyd_tbs_shape(t, sizeof ske12) == KEYD_SHAPE_NONE);
    memcpy(t, ske12, sizeof ske12);
    t[64] = 1; /* explicit curve */
    CHECK(keyd_tbs_shape(t, sizeof ske12) == KEYD_SHAPE_NONE);
    memcpy(t, ske12, sizeof ske12);
    t[66] = 0x1d; /* x25519 with a P-256 sized point */
    CHECK(keyd_tbs_shape(t, sizeof ske12) == KEYD_SHAPE_NONE);
    t[67] = 32;
    CHECK(keyd_tbs_shape(t, 64 + 4 + 32) == KEYD_SHAPE_TLS12_SKE);
    /* groups the server never offers: secp521r1, x448 */
    t[65] = 0x00;
    t[66] = 0x19;
    t[67] = 133;
    t[68] = 4;
    CHECK(keyd_tbs_shape(t, 64 + 4 + 133) == KEYD_SHAPE_NONE);
    t[66] = 0x1e;
    t[67] = 56;
    CHECK(keyd_tbs_shape(t, 64 + 4 + 56) == KEYD_SHAPE_NONE);
    memcpy(t, ske12, sizeof ske12);
    t[66] = 0x18; /* secp384r1 */
    t[67] = 97;
    CHECK(keyd_tbs_shape(t, 64 + 4 + 97) == KEYD_SHAPE_TLS12_SKE);
    memset(t, 'A', sizeof t);
    CHECK(keyd_tbs_shape(t, 36) == KEYD_SHAPE_NONE); /* an RSA key exchange */
    CHECK(keyd_tbs_shape(t, 200) == KEYD_SHAPE_NONE);
    CHECK(keyd_tbs_shape(NULL, 0) == KEYD_SHAPE_NONE);

    CHECK(keyd_scheme_allowed(KEYD_RSA_PKCS1_SHA256, KEYD_KIND_RSA, KEYD_SHAPE_TLS13_CV) == 0);
    CHECK(keyd_scheme_allowed(KEYD_RSA_PKCS1_SHA256, KEYD_KIND_RSA, KEYD_SHAPE_TLS12_SKE) == 1);
    CHECK(keyd_scheme_allowed(KEYD_RSA_PSS_SHA256, KEYD_KIND_RSA, KEYD_SHAPE_TLS13_CV) == 1);
    CHECK(keyd_scheme_allowed(KEYD_ECDSA_SHA256, KEYD_KIND_RSA, KEYD_SHAPE_TLS13_CV) == 0);
    CHECK(keyd_scheme_allowed(KEYD_RSA_PSS_SHA256, KEYD_KIND_EC, KEYD_SHAPE_TLS13_CV) == 0);
    CHECK(keyd_scheme_allowed(KEYD_ED25519, KEYD_KIND_ED25519, KEYD_SHAPE_TLS12_SKE) == 1);
    CHECK(keyd_scheme_allowed(KEYD_ECDSA_SHA256, KEYD_KIND_EC, KEYD_SHAPE_NONE) == 0);
}

/* ---- a live keyd ---- */

static char dir[64], certfile[128], keyfile[128], otherkey[128];
static char rsacert[128], rsakey[128];
static EVP_PKEY *pub, *rsapub;

static void write_pem(const char *path, EVP_PKEY *key, X509 *cert)
{
    FILE *f = fopen(path, "w");
    if (f == NULL)
        abort();
    if (key)
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    if (cert)
        PEM_write_X509(f, cert);
    fclose(f);
    chmod(path, 0600);
}

/* key's self-signed certificate in certpath, key in keypath; returns the
 * certificate's public key */
static EVP_PKEY *write_pair(EVP_PKEY *key, const char *certpath, const char *keypath)
{
    X509 *x = X509_new();
    EVP_PKEY *p;

    X509_set_version(x, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
    X509_gmtime_adj(X509_getm_notBefore(x), 0);
    X509_gmtime_adj(X509_getm_notAfter(x), 3600);
    X509_set_pubkey(x, key);
    X509_NAME_add_entry_by_txt(X509_get_subject_name(x), "CN", MBSTRING_ASC,
                               (const unsigned char *)"keyd-test", -1, -1, 0);
    X509_set_issuer_name(x, X509_get_subject_name(x));
    X509_sign(x, key, EVP_sha256());
    write_pem(certpath, NULL, x);
    write_pem(keypath, key, NULL);
    p = X509_get_pubkey(x);
    X509_free(x);
    EVP_PKEY_free(key);
    return p;
}

static void make_files(void)
{
    EVP_PKEY *other = EVP_EC_gen("P-256");

    snprintf(certfile, sizeof certfile, "%s/cert.pem", dir);
    snprintf(keyfile, sizeof keyfile, "%s/key.pem", dir);
    snprintf(otherkey, sizeof otherkey, "%s/other.pem", dir);
    snprintf(rsacert, sizeof rsacert, "%s/rsa-cert.pem", dir);
    snprintf(rsakey, sizeof rsakey, "%s/rsa-key.pem", dir);
    pub = write_pair(EVP_EC_gen("P-256"), certfile, keyfile);
    rsapub = write_pair(EVP_RSA_gen(2048), rsacert, rsakey);
    write_pem(otherkey, other, NULL);
    EVP_PKEY_free(other);
}

/* Sends one packet, returns the answer's signature length (>0), -1 for a
 * refusal, and sets *closed if keyd ended the channel afterwards. */
static int ask(int fd, const void *pkt, size_t len, unsigned char *sig, int *closed)
{
    unsigned char ans[KEYD_ANS_MAX];
    const unsigned char *s;
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;
    int rc;

    *closed = 0;
    if (send(fd, pkt, len, MSG_NOSIGNAL) != (ssize_t)len)
        return -2;
    if (poll(&p, 1, 5000) != 1)
        return -3; /* keyd must answer, not hang */
    n = recv(fd, ans, sizeof ans, 0);
    rc = n > 0 ? keyd_answer_decode(ans, (size_t)n, &s) : -1;
    if (rc > 0)
        memcpy(sig, s, (size_t)rc);
    p.revents = 0;
    if (rc < 0 && poll(&p, 1, 2000) == 1 && recv(fd, ans, sizeof ans, MSG_DONTWAIT) == 0)
        *closed = 1;
    return rc;
}

static int verifies(const unsigned char *sig, size_t len, const unsigned char *tbs,
                    size_t tbs_len)
{
    EVP_MD_CTX *m = EVP_MD_CTX_new();
    int ok = EVP_DigestVerifyInit(m, NULL, EVP_sha256(), NULL, pub) == 1 &&
             EVP_DigestVerify(m, sig, len, tbs, tbs_len) == 1;
    EVP_MD_CTX_free(m);
    return ok;
}

static struct engine_config config_pair(const char *cert, const char *key)
{
    struct engine_config c;
    char err[256];

    memset(&c, 0, sizeof c);
    c.progname = "test_keyd";
    c.certfile = cert;
    c.keyfile = key;
    c.worker_uid = 65534;
    c.worker_gid = 65534;
    c.chroot_dir = dir;
    c.concurrency = 4;
    if (certlist_build(&c, err, sizeof err) < 0)
        fprintf(stderr, "certlist: %s\n", err);
    return c;
}

static struct engine_config config(const char *key)
{
    return config_pair(certfile, key);
}

/* Starts keyd for c (checked); -1 when it did not start. */
static int start(const struct engine_config *c, struct keyd *k)
{
    char err[512];

    CHECK(keyd_start(c, NULL, 0, k, NULL, err, sizeof err) == 0);
    if (k->pid <= 0) {
        fprintf(stderr, "keyd did not start: %s\n", err);
        return -1;
    }
    return 0;
}

/* Whether the channel fd gets a TLS 1.3 input signed, the signature
 * verifying with the EC certificate's key; closes fd (-1: none, 0). */
static int signs_on(int fd)
{
    unsigned char pkt[KEYD_REQ_MAX + 64], sig[KEYD_SIG_MAX];
    int n = keyd_request_encode(KEYD_ECDSA_SHA256, 0, cv13, sizeof cv13, pkt, sizeof pkt);
    int closed, len;

    if (fd < 0)
        return 0;
    len = ask(fd, pkt, (size_t)n, sig, &closed);
    close(fd);
    return len > 0 && verifies(sig, (size_t)len, cv13, sizeof cv13);
}

static void test_live(void)
{
    struct engine_config c = config(keyfile);
    struct keyd k;
    unsigned char pkt[KEYD_REQ_MAX + 64], sig[KEYD_SIG_MAX];
    int n, closed, fd;

    if (start(&c, &k) < 0)
        return;

    /* a good request, then a second one past the allowance */
    fd = keyd_channel_new(&k);
    CHECK(fd >= 0);
    n = keyd_request_encode(KEYD_ECDSA_SHA256, 0, cv13, sizeof cv13, pkt, sizeof pkt);
    int len = ask(fd, pkt, (size_t)n, sig, &closed);
    CHECK(len > 0 && verifies(sig, (size_t)len, cv13, sizeof cv13));
    {
        /* keyd ends a channel as soon as its allowance is used: the worker
         * cannot even send a second request (EPIPE), or reads EOF */
        struct pollfd p = {.fd = fd, .events = POLLIN};
        CHECK(poll(&p, 1, 5000) == 1 && recv(fd, sig, sizeof sig, MSG_DONTWAIT) == 0);
        CHECK(send(fd, pkt, (size_t)n, MSG_NOSIGNAL) < 0 && errno == EPIPE);
    }
    close(fd);

    /* hostile requests: each refused, each channel ended */
    {
        static const char hello[] = "please sign this";
        unsigned char big[KEYD_REQ_MAX + 40];
        struct {
            const char *what;
            unsigned char buf[KEYD_REQ_MAX + 64];
            size_t len;
        } bad[6];
        int nb = 0;

        bad[nb].what = "non-TLS message";
        bad[nb].len = (size_t)keyd_request_encode(KEYD_ECDSA_SHA256, 0,
                                                  (const unsigned char *)hello,
                                                  sizeof hello, bad[nb].buf, sizeof bad[nb].buf);
        nb++;
        bad[nb].what = "over-long packet";
        memset(big, 0x20, sizeof big);
        memcpy(bad[nb].buf, big, sizeof big);
        bad[nb].len = sizeof big;
        nb++;
        bad[nb].what = "garbage";
        memcpy(bad[nb].buf, "\x01\x07garbage", 9);
        bad[nb].len = 9;
        nb++;
        bad[nb].what = "unknown key id";
        bad[nb].len = (size_t)keyd_request_encode(KEYD_ECDSA_SHA256, 7, cv13, sizeof cv13,
                                                  bad[nb].buf, sizeof bad[nb].buf);
        nb++;
        bad[nb].what = "RSA scheme on an EC key";
        bad[nb].len = (size_t)keyd_request_encode(KEYD_RSA_PSS_SHA256, 0, cv13, sizeof cv13,
                                                  bad[nb].buf, sizeof bad[nb].buf);
        nb++;
        bad[nb].what = "TLS 1.2 input with a bad point";
        memcpy(pkt, ske12, sizeof ske12);
        pkt[68] = 2;
        bad[nb].len = (size_t)keyd_request_encode(KEYD_ECDSA_SHA256, 0, pkt, sizeof ske12,
                                                  bad[nb].buf, sizeof bad[nb].buf);
        nb++;
        for (int i = 0; i < nb; i++) {
            fd = keyd_channel_new(&k);
            int rc = ask(fd, bad[i].buf, bad[i].len, sig, &closed);
            if (rc != -1 || !closed)
                fprintf(stderr, "%s: rc %d closed %d\n", bad[i].what, rc, closed);
            CHECK(rc == -1 && closed);
            close(fd);
        }
    }

    /* an empty packet (recv returns 0, as for a hang-up): refused with an
     * answer, not taken for the worker's end */
    {
        unsigned char ans[KEYD_ANS_MAX];
        struct pollfd p = {.fd = -1, .events = POLLIN};
        ssize_t got;

        p.fd = fd = keyd_channel_new(&k);
        CHECK(send(fd, pkt, 0, MSG_NOSIGNAL) == 0);
        CHECK(poll(&p, 1, 5000) == 1);
        got = recv(fd, ans, sizeof ans, 0);
        CHECK(got == KEYD_ANS_HEADER && ans[0] == 1);
        close(fd);
    }

    /* keyd keeps serving others, including TLS 1.2 inputs, many at once */
    {
        int fds[8];
        for (int i = 0; i < 8; i++)
            fds[i] = keyd_channel_new(&k);
        for (int i = 0; i < 8; i++) {
            const unsigned char *tbs = (i & 1) ? ske12 : cv13;
            size_t tl = (i & 1) ? sizeof ske12 : sizeof cv13;
            n = keyd_request_encode(KEYD_ECDSA_SHA256, 0, tbs, tl, pkt, sizeof pkt);
            len = ask(fds[i], pkt, (size_t)n, sig, &closed);
            CHECK(len > 0 && verifies(sig, (size_t)len, tbs, tl));
            close(fds[i]);
        }
    }
    keyd_stop(&k);
    CHECK(k.pid == -1);
    certlist_free(&c);
}

/* More channels at once than keyd's table holds (2 x concurrency + 2
 * pools): keyd refuses the rest, closing its ends, some of them still in
 * the master's pool.  Once the load has gone, every new connection must
 * get a live channel: none of the refused ones may be handed out. */
static void test_table_full(void)
{
    struct engine_config c = config(keyfile);
    struct keyd k;
    int held[60], good = 0;

    c.concurrency = 1; /* a table of 2 + 2 x KEYD_POOL = 34 channels */
    if (start(&c, &k) < 0)
        return;
    /* while the table is full, a new connection may get no channel at
     * all (keyd has refused every pooled one): that is the overload */
    for (int i = 0; i < 60; i++)
        held[i] = keyd_channel_new(&k);
    usleep(300 * 1000); /* keyd refuses what it was handed last */
    for (int i = 0; i < 60; i++)
        if (held[i] >= 0)
            close(held[i]);
    for (int i = 0; i < 20; i++)
        good += signs_on(keyd_channel_new(&k));
    if (good != 20)
        fprintf(stderr, "after a full table: %d of 20 connections signed\n", good);
    CHECK(good == 20);
    keyd_stop(&k);
    certlist_free(&c);
}

/* A stopped keyd: the master's hand-overs queue up on its control socket
 * until the queue is full.  Then a new connection must get no channel
 * (the master drops it), not block the master in sendmsg; once keyd runs
 * again, channels work again. */
static void test_stopped_keyd(void)
{
    struct engine_config c = config(keyfile);
    struct keyd k;
    int fd, got = 0;

    if (start(&c, &k) < 0)
        return;
    CHECK(kill(k.pid, SIGSTOP) == 0);
    alarm(20); /* a blocked sendmsg fails the test (SIGALRM) */
    for (int i = 0; i < 200000 && (fd = keyd_channel_new(&k)) >= 0; i++) {
        close(fd);
        got++;
    }
    alarm(0);
    /* EAGAIN: the queue is full; ETOOMANYREFS: not root, the fds in flight
     * reached RLIMIT_NOFILE first.  Either way the master did not block. */
    CHECK(fd < 0 && (errno == EAGAIN || errno == ETOOMANYREFS));
    fprintf(stderr, "stopped keyd: %d channels handed over before the queue was full\n", got);
    CHECK(kill(k.pid, SIGCONT) == 0);
    fd = -1;
    for (int i = 0; i < 500 && (fd = keyd_channel_new(&k)) < 0; i++)
        usleep(10 * 1000); /* keyd drains its queue */
    CHECK(fd >= 0);
    CHECK(signs_on(fd));
    keyd_stop(&k);
    certlist_free(&c);
}

/* An RSA key: PSS for TLS 1.3 and TLS 1.2, PKCS#1 v1.5 for TLS 1.2 only.
 * A worker asking for PKCS#1 v1.5 over a TLS 1.3 input is refused by keyd
 * itself, whatever the worker's OpenSSL would have negotiated. */
static void test_live_rsa(void)
{
    struct engine_config c = config_pair(rsacert, rsakey);
    struct keyd k;
    unsigned char pkt[KEYD_REQ_MAX + 64], sig[KEYD_SIG_MAX];
    static const struct {
        uint8_t scheme;
        int tls13, pss, signs;
    } cases[] = {
        {KEYD_RSA_PSS_SHA256, 1, 1, 1},
        {KEYD_RSA_PSS_SHA256, 0, 1, 1},
        {KEYD_RSA_PKCS1_SHA256, 0, 0, 1},
        {KEYD_RSA_PKCS1_SHA256, 1, 0, 0},
        {KEYD_RSA_PKCS1_SHA384, 1, 0, 0},
        {KEYD_RSA_PKCS1_SHA512, 1, 0, 0},
    };

    if (start(&c, &k) < 0)
        return;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const unsigned char *tbs = cases[i].tls13 ? cv13 : ske12;
        size_t tl = cases[i].tls13 ? sizeof cv13 : sizeof ske12;
        int fd = keyd_channel_new(&k), closed, len, ok = 0;
        int n = keyd_request_encode(cases[i].scheme, 0, tbs, tl, pkt, sizeof pkt);

        len = ask(fd, pkt, (size_t)n, sig, &closed);
        if (len > 0) {
            EVP_MD_CTX *m = EVP_MD_CTX_new();
            EVP_PKEY_CTX *pc = NULL;
            ok = EVP_DigestVerifyInit(m, &pc, EVP_sha256(), NULL, rsapub) == 1 &&
                 EVP_PKEY_CTX_set_rsa_padding(pc, cases[i].pss ? RSA_PKCS1_PSS_PADDING
                                                               : RSA_PKCS1_PADDING) == 1 &&
                 (!cases[i].pss || EVP_PKEY_CTX_set_rsa_pss_saltlen(pc, 32) == 1) &&
                 EVP_DigestVerify(m, sig, (size_t)len, tbs, tl) == 1;
            EVP_MD_CTX_free(m);
        }
        if (cases[i].signs ? !(len > 0 && ok) : !(len == -1 && closed))
            fprintf(stderr, "RSA scheme %d over a TLS 1.%d input: len %d verified %d closed %d\n",
                    cases[i].scheme, cases[i].tls13 ? 3 : 2, len, ok, closed);
        CHECK(cases[i].signs ? len > 0 && ok : len == -1 && closed);
        close(fd);
    }
    keyd_stop(&k);
    certlist_free(&c);
}

static void test_bad_config(void)
{
    struct engine_config c = config(otherkey);
    struct keyd k;
    char err[512] = "";

    CHECK(keyd_start(&c, NULL, 0, &k, NULL, err, sizeof err) < 0);
    CHECK(strstr(err, "does not match") != NULL);
    certlist_free(&c);
    c = config("/nonexistent/key.pem");
    err[0] = '\0';
    CHECK(keyd_start(&c, NULL, 0, &k, NULL, err, sizeof err) < 0);
    CHECK(strstr(err, "/nonexistent/key.pem") != NULL);
    certlist_free(&c);
    fprintf(stderr, "bad config messages are clear: ok\n");
}

int main(void)
{
    snprintf(dir, sizeof dir, "/tmp/ucspitls-keyd-XXXXXX");
    CHECK(mkdtemp(dir) != NULL);
    chmod(dir, 0755);
    make_inputs();
    test_decoder();
    test_shapes();
    /* keyd chroots into dir: the key files go in a sub-directory of
     * another temporary directory, so that dir itself stays empty */
    {
        static char files[64];
        snprintf(files, sizeof files, "/tmp/ucspitls-keyd-files-XXXXXX");
        CHECK(mkdtemp(files) != NULL);
        char *save = strdup(dir);
        memcpy(dir, files, strlen(files) + 1);
        make_files();
        memcpy(dir, save, strlen(save) + 1);
        free(save);
        test_live();
        test_table_full();
        test_live_rsa();
        test_stopped_keyd();
        test_bad_config();
        unlink(certfile);
        unlink(keyfile);
        unlink(otherkey);
        unlink(rsacert);
        unlink(rsakey);
        rmdir(files);
    }
    rmdir(dir);
    EVP_PKEY_free(pub);
    EVP_PKEY_free(rsapub);
    return check_done("test_keyd");
}
