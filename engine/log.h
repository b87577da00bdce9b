/* Logging to stderr in the sslserver/tcpserver style: "prog: text\n", one
 * write(2) per line so that lines from many workers never interleave. */
#ifndef UCSPITLS_ENGINE_LOG_H
#define UCSPITLS_ENGINE_LOG_H

enum log_level { LOG_QUIET = 0, LOG_ERROR = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Sets the program name prefix (borrowed; must outlive logging) and the
 * level below which lines are dropped. */
void log_setup(const char *progname, int level);

/* Writes one line at level; errors are always written unless quiet. */
void log_line(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#endif
