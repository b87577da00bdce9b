/* keyd: the root-started process that alone holds the private keys.
 *
 * Forked before the master loads anything; reads the key files, checks each
 * against its certificate, locks itself in (chroot, unprivileged ids, no
 * capabilities, seccomp) and then only answers signature requests, one
 * channel per worker, each request checked (keyd_proto.h). */
#ifndef UCSPITLS_ENGINE_KEYD_H
#define UCSPITLS_ENGINE_KEYD_H

#include "internal.h"

/* Channels are made and handed to keyd this many at a time. */
#define KEYD_POOL 16

struct keyd {
    pid_t pid;   /* -1 when not running */
    int ctl;     /* master <-> keyd control socket; -1 when not running */
    int pool[KEYD_POOL]; /* workers' ends of channels keyd already has */
    int npool;
};

/* Starts keyd for cfg's key and waits for its start-up report.  With
 * one_shot (tlsd) keyd serves a single channel, returned in *channel, and
 * exits when it closes; otherwise channels come from keyd_channel_new().
 * keyd checks each key against its certificate: the one in in_use, the
 * context that will serve with it (a restart, a reload: the files may have
 * changed since they were loaded), or when in_use is NULL (start-up) the
 * certificate file.  Returns 0, or -1 with keyd's (or our) reason in err. */
int keyd_start(const struct engine_config *cfg, const struct tls_context *in_use,
               int one_shot, struct keyd *k, int *channel, char *err, size_t errlen);

/* keyd_start in two halves, so that the caller can work while keyd loads
 * its keys: keyd_spawn forks it (0, or -1 with the reason in err);
 * keyd_await waits for its report (0, or -1 with keyd's reason in err,
 * keyd stopped; the caller closes *channel). */
int keyd_spawn(const struct engine_config *cfg, const struct tls_context *in_use,
               int one_shot, struct keyd *k, int *channel, char *err, size_t errlen);
int keyd_await(struct keyd *k, char *err, size_t errlen);

/* Master: a channel for one worker: a socketpair whose other end keyd
 * has.  They are made KEYD_POOL at a time (one message to keyd for all).
 * Returns the worker's end (O_CLOEXEC; the caller closes it) or -1. */
int keyd_channel_new(struct keyd *k);

/* Master: forget a keyd that has exited (after waitpid). */
void keyd_forget(struct keyd *k);

/* Master: stops keyd (closing its control socket ends it). */
void keyd_stop(struct keyd *k);

/* Largest number of signatures one channel (one connection) may ask for. */
#define KEYD_SIGNATURES_PER_CHANNEL 1

#endif
