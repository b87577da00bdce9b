/* Options and environment: hostile and edge-case input must give exit 100
 * with a message, never a half-filled configuration; good input must land
 * in the right fields.  (Internals: this test reads struct engine_config.) */
#include "check.h"
#include "internal.h"

#include <stdarg.h>
#include <stdlib.h>
#include <unistd.h>

static struct engine_config *parse(enum engine_frontend fe, int *code, ...)
{
    char *argv[32];
    int argc = 0;
    va_list ap;
    char *a;

    argv[argc++] = (char *)(fe == ENGINE_SERVER ? "tlsserver" : "tlsd");
    va_start(ap, code);
    while ((a = va_arg(ap, char *)) != NULL && argc < 31)
        argv[argc++] = a;
    va_end(ap);
    argv[argc] = NULL;
    return engine_config_parse(fe, argc, argv, code);
}

#define REJECT(fe, ...)                                                     \
    do {                                                                    \
        int code_ = -1;                                                     \
        struct engine_config *c_ = parse(fe, &code_, ##__VA_ARGS__, (char *)NULL); \
        CHECK(c_ == NULL);                                                  \
        CHECK(code_ == ENGINE_EXIT_PERMANENT);                              \
        engine_config_free(c_);                                             \
    } while (0)

int main(void)
{
    struct engine_config *c;
    int code;

    /* stderr noise from the rejections is expected */
    setenv("CERTFILE", "/nonexistent/cert.pem", 1);
    unsetenv("SSL_UID");
    unsetenv("SSL_GID");
    unsetenv("TLS_UID");
    unsetenv("TLS_GID");

    REJECT(ENGINE_SERVER, "127.0.0.1");
    REJECT(ENGINE_SERVER, "127.0.0.1", "0");
    REJECT(ENGINE_SERVER, "-c", "abc", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-c", "0", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-c", "99999999999999999999999", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-T", "-1", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-T", "1x", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-w", "", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-u", "+5", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-Y", "0", "0", "true");
    REJECT(ENGINE_SERVER, "--no-such-option", "0", "0", "true");
    REJECT(ENGINE_SERVER, "-c");
    REJECT(ENGINE_SERVER, "-x");
    REJECT(ENGINE_HANDLE);
    REJECT(ENGINE_HANDLE, "-c", "5", "true"); /* tlsd has no -c */
    REJECT(ENGINE_HANDLE, "-1", "true");

    setenv("SSL_UID", "0", 1);
    REJECT(ENGINE_SERVER, "0", "0", "true");
    setenv("SSL_UID", "12a", 1);
    REJECT(ENGINE_SERVER, "0", "0", "true");
    unsetenv("SSL_UID");
    setenv("TLS_GID", "0", 1);
    REJECT(ENGINE_HANDLE, "true");
    unsetenv("TLS_GID");
    unsetenv("CERTFILE");
    REJECT(ENGINE_SERVER, "0", "0", "true");
    setenv("CERTFILE", "", 1);
    REJECT(ENGINE_HANDLE, "true");
    setenv("CERTFILE", "/nonexistent/cert.pem", 1);

    /* defaults: sslserver's */
    c = parse(ENGINE_SERVER, &code, "0", "465", "prog", "arg", (char *)NULL);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK(c->delayed == 0 && c->session_env == 0);
        CHECK(c->concurrency == 40);
        CHECK(c->handshake_timeout_ms == 26000);
        CHECK(c->idle_timeout_ms == 3600000);
        CHECK_STREQ(c->host, "0");
        CHECK_STREQ(c->port, "465");
        CHECK_STREQ(c->prog[0], "prog");
        CHECK_STREQ(c->prog[1], "arg");
        CHECK(c->prog[2] == NULL);
        CHECK_STREQ(c->chroot_dir, ENGINE_DEFAULT_CHROOT);
        CHECK(c->worker_uid != 0 && c->worker_gid != 0); /* never root */
        CHECK(c->set_app_uid == 0 && c->set_app_gid == 0);
        CHECK(c->tcp_half_close == 0 && c->strict_close == 0);
    }
    engine_config_free(c);

    /* every option, and prog's own options left alone */
    setenv("TLS_UID", "4242", 1);
    setenv("TLS_GID", "4343", 1);
    setenv("SSL_CHROOT", "/var/empty", 1);
    c = parse(ENGINE_SERVER, &code, "-n", "-s", "-c", "5", "-b", "7", "-T", "3",
              "-w", "9", "-u", "1000", "-g", "1001", "-1", "-J", "-v", "-H", "-R",
              "-l", "mail.example", "--tcp-half-close", "::", "25", "prog", "-x",
              (char *)NULL);
    CHECK(c != NULL);
    if (c != NULL) {
        CHECK(c->delayed == 1 && c->session_env == 1);
        CHECK(c->concurrency == 5 && c->backlog == 7);
        CHECK(c->handshake_timeout_ms == 3000 && c->idle_timeout_ms == 9000);
        CHECK(c->set_app_uid && c->app_uid == 1000);
        CHECK(c->set_app_gid && c->app_gid == 1001);
        CHECK(c->print_port == 1 && c->strict_close == 1 && c->tcp_half_close == 1);
        CHECK_STREQ(c->local_hostname, "mail.example");
        CHECK_STREQ(c->host, "::");
        CHECK_STREQ(c->prog[1], "-x");
        CHECK(c->worker_uid == 4242 && c->worker_gid == 4343);
        CHECK_STREQ(c->chroot_dir, "/var/empty");
    }
    engine_config_free(c);

    /* SSL_* wins over TLS_* */
    setenv("SSL_UID", "5000", 1);
    c = parse(ENGINE_HANDLE, &code, "-n", "prog", (char *)NULL);
    CHECK(c != NULL && c->worker_uid == 5000 && c->delayed == 1);
    engine_config_free(c);

    /* -U reads $UID/$GID */
    setenv("UID", "77", 1);
    setenv("GID", "78", 1);
    c = parse(ENGINE_HANDLE, &code, "-U", "prog", (char *)NULL);
    CHECK(c != NULL && c->app_uid == 77 && c->app_gid == 78);
    engine_config_free(c);
    unsetenv("GID");
    REJECT(ENGINE_HANDLE, "-U", "prog");

    return check_done("test_config");
}
