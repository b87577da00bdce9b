/* Connection addresses -> the app's environment: tcpserver's PROTO and
 * TCP..., TCP6... names plus sslserver's SSLLOCAL... and SSLREMOTE....
 * No DNS or ident lookups are ever made (as tcpserver -H -R). */
#include "internal.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

static void put_sockaddr(const struct sockaddr_storage *ss, char *ip,
                         size_t iplen, char *port, size_t portlen, int *v6)
{
    if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *s6 = (const struct sockaddr_in6 *)ss;
        if (IN6_IS_ADDR_V4MAPPED(&s6->sin6_addr)) {
            /* A v4 client on a dual-stack socket is a v4 client. */
            inet_ntop(AF_INET, &s6->sin6_addr.s6_addr[12], ip, (socklen_t)iplen);
            *v6 = 0;
        } else {
            inet_ntop(AF_INET6, &s6->sin6_addr, ip, (socklen_t)iplen);
            *v6 = 1;
        }
        snprintf(port, portlen, "%u", (unsigned)ntohs(s6->sin6_port));
    } else {
        const struct sockaddr_in *s4 = (const struct sockaddr_in *)ss;
        inet_ntop(AF_INET, &s4->sin_addr, ip, (socklen_t)iplen);
        snprintf(port, portlen, "%u", (unsigned)ntohs(s4->sin_port));
        *v6 = 0;
    }
}

int conn_addr_from_socket(int fd, struct conn_addr *a)
{
    struct sockaddr_storage l, r;
    socklen_t ll = sizeof l, rl = sizeof r;
    int v6l, v6r;

    memset(a, 0, sizeof *a);
    if (getsockname(fd, (struct sockaddr *)&l, &ll) < 0 ||
        getpeername(fd, (struct sockaddr *)&r, &rl) < 0)
        return -1;
    if ((l.ss_family != AF_INET && l.ss_family != AF_INET6) ||
        (r.ss_family != AF_INET && r.ss_family != AF_INET6))
        return -1;
    put_sockaddr(&l, a->local_ip, sizeof a->local_ip, a->local_port,
                 sizeof a->local_port, &v6l);
    put_sockaddr(&r, a->remote_ip, sizeof a->remote_ip, a->remote_port,
                 sizeof a->remote_port, &v6r);
    a->ipv6 = v6r;
    a->have = 1;
    return 0;
}

static int copy_env(const char *name, char *dst, size_t cap)
{
    const char *v = getenv(name);
    if (v == NULL || strlen(v) >= cap)
        return -1;
    memcpy(dst, v, strlen(v) + 1);
    return 0;
}

/* tlsd under tcpserver: what tcpserver set is the truth (it may differ
 * from the socket, e.g. behind a PROXY-aware tcpserver). */
int conn_addr_from_env(struct conn_addr *a)
{
    const char *proto = getenv("PROTO");

    memset(a, 0, sizeof *a);
    if (copy_env("TCPREMOTEIP", a->remote_ip, sizeof a->remote_ip) < 0 ||
        copy_env("TCPREMOTEPORT", a->remote_port, sizeof a->remote_port) < 0 ||
        copy_env("TCPLOCALIP", a->local_ip, sizeof a->local_ip) < 0 ||
        copy_env("TCPLOCALPORT", a->local_port, sizeof a->local_port) < 0)
        return -1;
    a->ipv6 = proto != NULL && strcmp(proto, "TCP6") == 0;
    a->have = 1;
    return 0;
}

static int set(const char *name, const char *value)
{
    return setenv(name, value, 1);
}

int conn_addr_export(const struct conn_addr *a, const char *local_hostname)
{
    int rc = 0;

    if (!a->have)
        return 0;
    rc |= set("PROTO", a->ipv6 ? "TCP6" : "TCP");
    rc |= set("TCPLOCALIP", a->local_ip);
    rc |= set("TCPLOCALPORT", a->local_port);
    rc |= set("TCPREMOTEIP", a->remote_ip);
    rc |= set("TCPREMOTEPORT", a->remote_port);
    rc |= set("SSLLOCALIP", a->local_ip);
    rc |= set("SSLLOCALPORT", a->local_port);
    rc |= set("SSLREMOTEIP", a->remote_ip);
    rc |= set("SSLREMOTEPORT", a->remote_port);
    if (a->ipv6) {
        rc |= set("TCP6LOCALIP", a->local_ip);
        rc |= set("TCP6LOCALPORT", a->local_port);
        rc |= set("TCP6REMOTEIP", a->remote_ip);
        rc |= set("TCP6REMOTEPORT", a->remote_port);
    }
    if (local_hostname != NULL) {
        rc |= set("TCPLOCALHOST", local_hostname);
        rc |= set("SSLLOCALHOST", local_hostname);
    }
    return rc ? -1 : 0;
}
