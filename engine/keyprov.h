/* keyprov: a built-in OpenSSL 3 provider whose private keys are handles.
 *
 * A handle carries the public key (taken from the certificate) and a key id;
 * signing with it sends {key id, scheme, to-be-signed bytes} to keyd over
 * the process's keyd channel and waits for the signature.  The private key
 * itself never exists in a process that uses these handles. */
#ifndef UCSPITLS_ENGINE_KEYPROV_H
#define UCSPITLS_ENGINE_KEYPROV_H

#include <openssl/evp.h>
#include <stdint.h>

#define KEYPROV_NAME "ucspitls-keyd"

/* Registers the provider in libctx and loads it beside "default", with a
 * default property query that keeps ordinary fetches off it.  The two
 * loaded providers go to loaded[] (owned: keyprov_uninstall() them before
 * libctx is freed, also after a failure).  Returns 0 or -1. */
int keyprov_install(OSSL_LIB_CTX *libctx, OSSL_PROVIDER *loaded[2]);

/* Unloads what keyprov_install() loaded (NULL entries are skipped). */
void keyprov_uninstall(OSSL_PROVIDER *loaded[2]);

/* A private-key handle for the public key pub (typically the
 * certificate's; the handle keeps a reference to it) whose signatures keyd
 * makes with key key_id.  Returns a new EVP_PKEY (owned by the caller) or
 * NULL. */
EVP_PKEY *keyprov_handle_new(OSSL_LIB_CTX *libctx, EVP_PKEY *pub,
                             uint16_t key_id);

/* Sets this thread's channel to keyd (owned from now on; -1 for none).
 * The engine sets and uses it in one thread (a worker's, or the master's
 * warm-up). */
void keyprov_set_channel(int fd);

/* The time (util_now_ms()) by which a signature must have come back: the
 * handshake's own deadline, so that a hung keyd cannot stretch it. */
void keyprov_set_deadline(long long deadline_ms);

/* Closes the channel: after the handshake nothing more is signed. */
void keyprov_close_channel(void);

#endif
