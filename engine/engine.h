/* libucspitls: the engine behind tlsserver and tlsd.
 *
 * Front ends turn argv and the environment into a configuration with
 * engine_config_parse() and hand it to engine_serve() (listen and accept)
 * or engine_handle() (one connection already on fds 0/1). */
#ifndef UCSPITLS_ENGINE_H
#define UCSPITLS_ENGINE_H

/* Exit codes, as UCSPI tools use them. */
#define ENGINE_EXIT_PERMANENT 100 /* usage or configuration error */
#define ENGINE_EXIT_TEMPORARY 111 /* anything that may work on a retry */

enum engine_frontend {
    ENGINE_SERVER, /* tlsserver: host port prog... */
    ENGINE_HANDLE, /* tlsd: prog... on fds 0/1 */
};

struct engine_config;

/* Parses options and the environment for the given front end.  On success
 * returns a configuration (owned by the caller, free with
 * engine_config_free); on error prints one line naming the option and sets
 * *exit_code (100 for usage errors, 0 after --help/-V style requests). */
struct engine_config *engine_config_parse(enum engine_frontend fe, int argc,
                                          char **argv, int *exit_code);

/* Frees a configuration; NULL is fine. */
void engine_config_free(struct engine_config *cfg);

/* tlsserver: starts keyd, loads certificates, binds, then accepts until
 * SIGTERM, forking one locked-in worker per connection.  Returns 0 after
 * SIGTERM, or 111 when start-up fails (a file, the port, keyd). */
int engine_serve(struct engine_config *cfg);

/* tlsd: serves the one connection on fds 0/1.  Returns the app's exit
 * status, or 111 when the engine itself failed. */
int engine_handle(struct engine_config *cfg);

#endif
