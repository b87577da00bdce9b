/* Connection addresses -> the app's environment: tcpserver's PROTO and
 * TCP..., TCP6... names plus sslserver's SSLLOCAL... and SSLREMOTE....
 * No DNS or ident lookups are ever made (as tcpserver -H -R). */
#include "internal.h"
#include "ucspitls_app.h"

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

static const char *const ADDR_NAMES[] = {
    "PROTO", "TCPLOCALIP", "TCPLOCALPORT", "TCPREMOTEIP", "TCPREMOTEPORT",
    "SSLLOCALIP", "SSLLOCALPORT", "SSLREMOTEIP", "SSLREMOTEPORT",
    "TCP6LOCALIP", "TCP6LOCALPORT", "TCP6REMOTEIP", "TCP6REMOTEPORT",
    "TCPLOCALHOST", "SSLLOCALHOST",
};

int conn_addr_is_var(const char *name)
{
    for (size_t i = 0; i < sizeof ADDR_NAMES / sizeof ADDR_NAMES[0]; i++)
        if (strcmp(name, ADDR_NAMES[i]) == 0)
            return 1;
    return 0;
}

static void add(struct ucspitls_var *out, size_t *n, const char *name, const char *value)
{
    out[*n].name = name;
    out[*n].value = value;
    out[*n].value_len = strlen(value);
    (*n)++;
}

size_t conn_addr_list(const struct conn_addr *a, const char *local_hostname,
                      struct ucspitls_var *out)
{
    size_t n = 0;

    if (!a->have)
        return 0;
    add(out, &n, "PROTO", a->ipv6 ? "TCP6" : "TCP");
    add(out, &n, "TCPLOCALIP", a->local_ip);
    add(out, &n, "TCPLOCALPORT", a->local_port);
    add(out, &n, "TCPREMOTEIP", a->remote_ip);
    add(out, &n, "TCPREMOTEPORT", a->remote_port);
    add(out, &n, "SSLLOCALIP", a->local_ip);
    add(out, &n, "SSLLOCALPORT", a->local_port);
    add(out, &n, "SSLREMOTEIP", a->remote_ip);
    add(out, &n, "SSLREMOTEPORT", a->remote_port);
    if (a->ipv6) {
        add(out, &n, "TCP6LOCALIP", a->local_ip);
        add(out, &n, "TCP6LOCALPORT", a->local_port);
        add(out, &n, "TCP6REMOTEIP", a->remote_ip);
        add(out, &n, "TCP6REMOTEPORT", a->remote_port);
    }
    if (local_hostname != NULL) {
        add(out, &n, "TCPLOCALHOST", local_hostname);
        add(out, &n, "SSLLOCALHOST", local_hostname);
    }
    return n;
}

int conn_addr_export(const struct conn_addr *a, const char *local_hostname)
{
    struct ucspitls_var v[ADDR_VARS_MAX];
    size_t n = conn_addr_list(a, local_hostname, v);

    for (size_t i = 0; i < n; i++)
        if (setenv(v[i].name, v[i].value, 1) < 0)
            return -1;
    return 0;
}
