/* tlsbench [options] MODE HOST PORT: measures a TLS server from the client
 * side.  This file: options, usage, exit codes, the output lines. */
#include "stream.h"
#include "tlsbench.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <openssl/crypto.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef TLSBENCH_VERSION
#define TLSBENCH_VERSION "0"
#endif

static const char usage_text[] =
    "usage: tlsbench [options] MODE HOST PORT\n"
    "\n"
    "Measures a TLS server from the client side.  Each measurement prints lines for\n"
    "people and one line of key=value pairs (starting with mode=) for scripts.\n"
    "\n"
    "MODE\n"
    "  download   read the benchmark stream until the server closes; check its length\n"
    "             and every byte (the server runs bench-gen BYTES)\n"
    "  upload     send -n bytes of the stream, then wait for the application's report\n"
    "             line (the server runs bench-sink BYTES)\n"
    "  echo       -n round trips of 1 byte (the server echoes, e.g. cat): median and p99\n"
    "  handshake  connections per second for -t seconds from -P processes; each\n"
    "             connection handshakes, then reads until the server closes\n"
    "  hold       open -n connections and keep them open for -t seconds, or until\n"
    "             SIGTERM, SIGINT or SIGHUP; the key=value line (ready=yes) says when\n"
    "             they are all open\n"
    "With -P N, download, upload and echo run on N connections at once, opened one\n"
    "after the other, then started together; each is checked on its own and -n\n"
    "applies to each; a table shows each connection, and the totals are over the\n"
    "wall time from the start to the end of the last one.\n"
    "\n"
    "Options\n"
    "  -n N               download/upload: bytes per connection (k, m, g suffixes;\n"
    "                     default 1g); echo: round trips per connection (default 2000);\n"
    "                     hold: connections (default 1000)\n"
    "  -t SECS            handshake: duration (default 5); hold: longest hold (default 60)\n"
    "  -P, --parallel N   download/upload/echo: connections at once, one thread each\n"
    "                     (default 1); handshake: client processes (default 2)\n"
    "  --resume           handshake: resume TLS sessions (a ticket from the previous\n"
    "                     connection); reports how many were really resumed\n"
    "  --no-wait          handshake: close right after the handshake instead of waiting\n"
    "                     for the server to close (for servers that wait for a request)\n"
    "  --ping             hold: one 1-byte echo on each connection once it is open\n"
    "  --starttls PROTO   a plaintext dialog first, then TLS on the same connection:\n"
    "                     smtp (banner, EHLO, STARTTLS), pop3 (+OK, STLS) or imap\n"
    "                     (* OK, a001 STARTTLS); a refusal ends the run (exit 111)\n"
    "                     naming the reply.  handshake then sends QUIT (imap: LOGOUT);\n"
    "                     download, upload and echo need an application that, after\n"
    "                     TLS, acts as bench-gen, bench-sink or an echo\n"
    "  --tls 1.3|1.2      protocol version (default 1.3 only)\n"
    "  --ciphersuites L   TLS 1.3 suites (default TLS_AES_128_GCM_SHA256)\n"
    "  --ciphers L        TLS 1.2 ciphers (default ECDHE-ECDSA-AES128-GCM-SHA256:\n"
    "                     ECDHE-RSA-AES128-GCM-SHA256)\n"
    "  --sni NAME         server name to send (default: HOST unless it is an address)\n"
    "  --no-sni           send no server name\n"
    "  --cafile FILE      verify the server's certificate and name against FILE\n"
    "                     (default: no verification; this is a benchmark)\n"
    "  --timeout SECS     bound on each connect, read and write, and on the whole\n"
    "                     STARTTLS dialog (default 30)\n"
    "  -q                 print only the key=value line; no progress\n"
    "  --progress         progress on stderr (runs over 2 s) even when it is not a\n"
    "                     terminal (default: only on a terminal)\n"
    "  --no-progress      no progress on stderr\n"
    "  -h, --help         this text\n"
    "  --version          the version\n"
    "\n"
    "Exit codes: 0 done; 1 the data or the application's report did not verify;\n"
    "100 usage; 111 unable to connect, TLS failure or timeout.\n";

static _Noreturn void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static _Noreturn void usage_error(const char *fmt, ...)
{
    va_list ap;

    fputs("tlsbench: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputs("\nusage: tlsbench [options] download|upload|echo|handshake|hold HOST PORT"
          "  (tlsbench --help)\n",
          stderr);
    exit(TB_EXIT_USAGE);
}

void tb_report(const struct tb_options *opt, const char *human, const char *machine)
{
    if (human && !opt->quiet)
        printf("%s\n", human);
    printf("%s\n", machine);
    fflush(stdout);
}

static double parse_seconds(const char *s, const char *opt)
{
    char *end;
    double v;

    errno = 0;
    v = strtod(s, &end);
    if (errno != 0 || end == s || *end != '\0' || !isfinite(v) || v <= 0 || v > 86400)
        usage_error("%s wants seconds (0 < s <= 86400), not %s", opt, s);
    return v;
}

static uint64_t parse_count(const char *s, uint64_t max, const char *opt, const char *wants)
{
    uint64_t v;

    if (stream_parse_size(s, &v) < 0 || v == 0 || v > max)
        usage_error("%s wants %s, not %s", opt, wants, s);
    return v;
}

enum {
    OPT_RESUME = 256, OPT_NO_WAIT, OPT_PING, OPT_STARTTLS, OPT_TLS, OPT_SUITES,
    OPT_CIPHERS, OPT_SNI, OPT_NO_SNI, OPT_CAFILE, OPT_TIMEOUT, OPT_PROGRESS,
    OPT_NO_PROGRESS, OPT_VERSION,
};

/* -P's limit: handshake processes, or connections (threads) at once. */
#define PARALLEL_MAX 256

static const struct option long_options[] = {
    {"resume", no_argument, NULL, OPT_RESUME},
    {"no-wait", no_argument, NULL, OPT_NO_WAIT},
    {"ping", no_argument, NULL, OPT_PING},
    {"starttls", required_argument, NULL, OPT_STARTTLS},
    {"tls", required_argument, NULL, OPT_TLS},
    {"ciphersuites", required_argument, NULL, OPT_SUITES},
    {"ciphers", required_argument, NULL, OPT_CIPHERS},
    {"sni", required_argument, NULL, OPT_SNI},
    {"no-sni", no_argument, NULL, OPT_NO_SNI},
    {"cafile", required_argument, NULL, OPT_CAFILE},
    {"timeout", required_argument, NULL, OPT_TIMEOUT},
    {"parallel", required_argument, NULL, 'P'},
    {"progress", no_argument, NULL, OPT_PROGRESS},
    {"no-progress", no_argument, NULL, OPT_NO_PROGRESS},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, OPT_VERSION},
    {NULL, 0, NULL, 0},
};

static void parse(struct tb_options *o, int argc, char **argv)
{
    const char *count = NULL, *secs = NULL;
    int c, is_bulk, is_hs, is_hold, par = 0;

    memset(o, 0, sizeof *o);
    o->ciphersuites = "TLS_AES_128_GCM_SHA256";
    o->ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256";
    o->tls_version = TLS1_3_VERSION;
    o->timeout_ms = 30000;
    o->progress = -1;
    o->procs = 2;
    o->parallel = 1;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":n:t:P:qh", long_options, NULL)) != -1) {
        switch (c) {
        case 'n': count = optarg; break;
        case 't': secs = optarg; break;
        case 'P':
            par = (int)parse_count(optarg, PARALLEL_MAX, "-P", "a number from 1 to 256");
            break;
        case 'q': o->quiet = 1; break;
        case 'h': fputs(usage_text, stdout); exit(TB_EXIT_OK);
        case OPT_VERSION:
            printf("tlsbench %s (%s)\n", TLSBENCH_VERSION, OpenSSL_version(OPENSSL_VERSION));
            exit(TB_EXIT_OK);
        case OPT_RESUME: o->resume = 1; break;
        case OPT_NO_WAIT: o->no_wait = 1; break;
        case OPT_PING: o->ping = 1; break;
        case OPT_STARTTLS:
            if (strcmp(optarg, "smtp") == 0)
                o->starttls = TB_STARTTLS_SMTP;
            else if (strcmp(optarg, "pop3") == 0)
                o->starttls = TB_STARTTLS_POP3;
            else if (strcmp(optarg, "imap") == 0)
                o->starttls = TB_STARTTLS_IMAP;
            else
                usage_error("--starttls wants smtp, pop3 or imap, not %s", optarg);
            break;
        case OPT_TLS:
            if (strcmp(optarg, "1.3") == 0)
                o->tls_version = TLS1_3_VERSION;
            else if (strcmp(optarg, "1.2") == 0)
                o->tls_version = TLS1_2_VERSION;
            else
                usage_error("--tls wants 1.3 or 1.2, not %s", optarg);
            break;
        case OPT_SUITES: o->ciphersuites = optarg; break;
        case OPT_CIPHERS: o->ciphers = optarg; break;
        case OPT_SNI: o->sni = optarg; break;
        case OPT_NO_SNI: o->no_sni = 1; break;
        case OPT_CAFILE: o->cafile = optarg; break;
        case OPT_TIMEOUT:
            o->timeout_ms = (int)(parse_seconds(optarg, "--timeout") * 1000);
            if (o->timeout_ms < 1)
                o->timeout_ms = 1;
            break;
        case OPT_PROGRESS: o->progress = 1; break;
        case OPT_NO_PROGRESS: o->progress = 0; break;
        case ':':
            if (optopt != 0)
                usage_error("option -%c needs an argument", optopt);
            usage_error("option %s needs an argument", argv[optind - 1]);
        default:
            if (optopt != 0)
                usage_error("unknown option -%c", optopt);
            usage_error("unknown option %s", argv[optind - 1]);
        }
    }
    if (argc - optind != 3)
        usage_error("%s", argc - optind < 3 ? "MODE, HOST and PORT are needed"
                                            : "too many arguments");
    o->mode = argv[optind];
    o->host = argv[optind + 1];
    o->port = argv[optind + 2];
    is_bulk = strcmp(o->mode, "download") == 0 || strcmp(o->mode, "upload") == 0;
    is_hs = strcmp(o->mode, "handshake") == 0;
    is_hold = strcmp(o->mode, "hold") == 0;
    if (!is_bulk && !is_hs && !is_hold && strcmp(o->mode, "echo") != 0)
        usage_error("unknown mode %s", o->mode);
    if (is_bulk)
        o->count = count ? parse_count(count, 1ULL << 50, "-n", "a byte count (e.g. 1g)")
                         : 1ULL << 30;
    else if (is_hold)
        o->count = count ? parse_count(count, 1000000, "-n", "1 to 1000000 connections")
                         : 1000;
    else if (!is_hs)
        o->count = count ? parse_count(count, 100000000, "-n", "1 to 10^8 round trips")
                         : 2000;
    else if (count)
        usage_error("-n does not apply to handshake (it runs for -t seconds): %s", count);
    o->count_set = count != NULL;
    if (secs && !is_hs && !is_hold)
        usage_error("-t applies to handshake and hold only: %s", secs);
    o->seconds = secs ? parse_seconds(secs, "-t")
                      : is_hold ? 60 : 5;
    if ((o->resume || o->no_wait) && !is_hs)
        usage_error("%s applies to handshake only", o->resume ? "--resume" : "--no-wait");
    if (o->ping && !is_hold)
        usage_error("%s applies to hold only", "--ping");
    if (par && is_hold)
        usage_error("-P does not apply to hold (it opens -n connections): %d", par);
    if (par && is_hs)
        o->procs = par;
    else if (par)
        o->parallel = par;
    /* Every round trip's time is kept (8 bytes each) for the percentiles. */
    if (!is_bulk && !is_hs && !is_hold && o->count * (uint64_t)o->parallel > 100000000)
        usage_error("echo: -n times -P is at most 10^8 round trips, not %" PRIu64,
                    o->count * (uint64_t)o->parallel);
    if (o->resume && o->tls_version != TLS1_3_VERSION)
        usage_error("%s: tickets are measured with TLS 1.3 only", "--resume");
}

int main(int argc, char **argv)
{
    struct tb_options opt;
    struct tb_client client;
    char err[TB_ERRLEN];
    int code;

    parse(&opt, argc, argv);
    /* A server that resets is an error to report, not a signal to die of. */
    signal(SIGPIPE, SIG_IGN);
    if (tb_client_init(&client, &opt, &code, err, sizeof err) < 0) {
        fprintf(stderr, "tlsbench: %s\n", err);
        return code;
    }
    if (strcmp(opt.mode, "download") == 0)
        code = tb_download(&client);
    else if (strcmp(opt.mode, "upload") == 0)
        code = tb_upload(&client);
    else if (strcmp(opt.mode, "echo") == 0)
        code = tb_echo(&client);
    else if (strcmp(opt.mode, "handshake") == 0)
        code = tb_handshake(&client);
    else
        code = tb_hold(&client);
    tb_client_free(&client);
    return code;
}
