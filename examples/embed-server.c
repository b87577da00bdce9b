/* embed-server PORT [tlsd options] prog...: a minimal UCSPI server with
 * its own accept loop that hands each connection to libucspitls.  Every
 * connection gets what tlsserver gives it: a locked-in worker, keyd, the
 * UCSPI environment.  The options are tlsd's (e.g. -n for UCSPI-TLS).
 *
 *   cc embed-server.c $(pkg-config --cflags --libs ucspitls) */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* accept4 */
#endif
#include <ucspitls/engine.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

/* Connections served at once: keyd's table holds the signing channels of
 * 2 x 40 + 32 connections in their handshake (ucspitls(3)). */
#define MAX_CONNECTIONS 40

static volatile sig_atomic_t stop;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static void on_child(int sig)
{
    (void)sig; /* only to interrupt accept(): the loop reaps */
}

int main(int argc, char **argv)
{
    struct sockaddr_in sin;
    struct ucspitls_engine *e;
    char err[512];
    int fd, code, one = 1, active = 0;

    if (argc < 3) {
        fprintf(stderr, "usage: embed-server PORT [tlsd options] prog...\n");
        return UCSPITLS_EXIT_PERMANENT;
    }
    memset(&sin, 0, sizeof sin);
    sin.sin_family = AF_INET;
    sin.sin_port = htons((unsigned short)atoi(argv[1]));
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    argv[1] = argv[0]; /* the engine sees: embed-server [options] prog... */
    e = ucspitls_engine_new(UCSPITLS_MODE_HANDLE, argc - 1, argv + 1, &code);
    if (e == NULL)
        return code;
    if (ucspitls_engine_start(e, err, sizeof err) < 0) {
        fprintf(stderr, "embed-server: %s\n", err);
        ucspitls_engine_free(e);
        return UCSPITLS_EXIT_TEMPORARY;
    }
    fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sin, sizeof sin) < 0 || listen(fd, 64) < 0) {
        perror("embed-server: bind");
        ucspitls_engine_free(e);
        return UCSPITLS_EXIT_TEMPORARY;
    }
    {
        /* no SA_RESTART: SIGTERM must interrupt accept() and end the loop,
         * SIGCHLD get the loop to reap (keyd's end among them) */
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_handler = on_term;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sa.sa_handler = on_child;
        sigaction(SIGCHLD, &sa, NULL);
    }
    signal(SIGPIPE, SIG_IGN);
    {
        socklen_t len = sizeof sin;
        getsockname(fd, (struct sockaddr *)&sin, &len); /* port 0: the one we got */
        printf("%d\n", ntohs(sin.sin_port));
    }
    fflush(stdout);
    code = 0;
    while (!stop) {
        int conn, status;
        pid_t pid;

        /* reap: workers, and keyd if it died (the engine restarts it);
         * at the limit, wait for a connection to end before accepting */
        while ((pid = waitpid(-1, &status, active < MAX_CONNECTIONS ? WNOHANG : 0)) > 0) {
            int keyd = ucspitls_engine_child_exited(e, pid, status);
            if (keyd < 0) { /* no keyd any more (logged): as tlsserver, give up */
                code = UCSPITLS_EXIT_TEMPORARY;
                stop = 1;
            }
            if (keyd != 0)
                continue;
            active--;
            fprintf(stderr, "embed-server: connection %d ended, status %d\n",
                    (int)pid, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
        }
        if (stop)
            break;
        conn = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
        if (conn < 0)
            continue; /* EINTR on SIGTERM or SIGCHLD */
        if (ucspitls_engine_spawn(e, conn, conn) < 0)
            fprintf(stderr, "embed-server: could not serve a connection\n");
        else
            active++;
        close(conn);
    }
    close(fd);
    ucspitls_engine_free(e);
    return code;
}
