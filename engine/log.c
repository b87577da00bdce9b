#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

static const char *log_prog = "ucspi-tls";
static int log_level = LOG_INFO;

void log_setup(const char *progname, int level)
{
    log_prog = progname;
    log_level = level;
}

void log_line(int level, const char *fmt, ...)
{
    char buf[1024];
    int n, m;
    va_list ap;
    int saved = errno;

    if (level > log_level)
        return;
    n = snprintf(buf, sizeof buf, "%s: ", log_prog);
    if (n < 0 || (size_t)n >= sizeof buf)
        n = 0;
    va_start(ap, fmt);
    m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof buf - 2)
        n = sizeof buf - 2; /* truncated line, still one line */
    buf[n++] = '\n';
    for (const char *p = buf; n > 0;) {
        ssize_t w = write(2, p, (size_t)n);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0)
            break;
        p += w;
        n -= (int)w;
    }
    errno = saved;
}
