"""tlsbench, the benchmark client users run, against a real tlsserver:
download, upload and echo over -P parallel connections with every byte
checked and the totals adding up; STARTTLS smtp (smtpd-demo), pop3 and
imap (tests/apps/starttls-app in front of bench-gen, bench-sink or cat,
under tlsserver -n); and the ways a server can refuse or misbehave in the
plaintext dialog, each a clear message and exit 111 within the timeout."""

import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

MIB = 1024 * 1024


class Result:
    def __init__(self, rc, out, err, secs):
        self.rc, self.out, self.err, self.secs = rc, out, err, secs
        lines = [l for l in out.splitlines() if l.startswith("mode=")]
        self.kv = dict(kv.split("=", 1) for kv in lines[-1].split()) if lines else {}

    def __repr__(self):
        return "exit %r after %.2f s\nstdout:\n%s\nstderr:\n%s" % (self.rc, self.secs, self.out,
                                                                   self.err)


class TlsbenchTest(harness.E2ETest):

    def tlsbench(self, port, *args, timeout=60):
        argv = [harness.binary("tlsbench"), "--no-progress", *[str(a) for a in args],
                "127.0.0.1", str(port)]
        # "--no-progress" first so that a test may still pass --progress
        t0 = time.monotonic()
        p = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=timeout)
        return Result(p.returncode, p.stdout.decode(errors="replace"),
                      p.stderr.decode(errors="replace"), time.monotonic() - t0)

    def bench_server(self, prog, opts=(), **env):
        return self.server(list(prog), list(opts), env=self.env(**env))

    def gen(self, size):
        return [harness.binary("bench-gen"), str(size)]

    def sink(self, size):
        return [harness.binary("bench-sink"), str(size)]

    def starttls_app(self, proto, prog, behaviour="ok"):
        return [harness.binary("starttls-app"), "-b", behaviour, proto, *prog]

    def table_rows(self, out):
        """The per-connection rows of the human table: {conn: row text}."""
        return {int(m.group(1)): m.group(0)
                for m in re.finditer(r"^\s+(\d+)\s+\d+\s.*$", out, re.M)}

    def assert_bulk_ok(self, r, mode, parallel, per_conn):
        self.assertEqual(r.rc, 0, r)
        kv = r.kv
        self.assertEqual(kv["mode"], mode, r)
        self.assertEqual(int(kv["parallel"]), parallel, r)
        self.assertEqual(int(kv["bytes_per_conn"]), per_conn, r)
        self.assertEqual(int(kv["bytes"]), parallel * per_conn, r)
        self.assertEqual(kv["verified"], "yes", r)
        self.assertEqual(int(kv["verified_conns"]), parallel, r)
        # the aggregate is the total over the wall time, not a per-connection figure
        secs = float(kv["seconds"])
        self.assertGreater(secs, 0, r)
        self.assertAlmostEqual(float(kv["bytes_per_sec"]) / (parallel * per_conn / secs), 1.0,
                               delta=0.01, msg=r)
        self.assertLessEqual(float(kv["conn_min_bytes_per_sec"]),
                             float(kv["conn_max_bytes_per_sec"]), r)
        # the slowest connection ends last: its time is the wall time
        self.assertAlmostEqual(float(kv["conn_min_bytes_per_sec"]) * parallel,
                               float(kv["bytes_per_sec"]), delta=float(kv["bytes_per_sec"]) * 0.01,
                               msg=r)
        if parallel > 1:
            rows = self.table_rows(r.out)
            self.assertEqual(sorted(rows), list(range(1, parallel + 1)), r)
            for row in rows.values():
                self.assertRegex(row, r"^\s+\d+\s+%d\s.*\sverified$" % per_conn, r)
            self.assertIn("%s: %d connections, %d bytes" % (mode, parallel, parallel * per_conn),
                          r.out)
        self.assertEqual(r.err, "", r)

    def assert_parallel_connections(self, srv, n):
        """The server saw n connections, all open at the same time."""
        srv.wait_idle()
        self.assertEqual(len(srv.worker_pids()), n, srv.log())
        active = [int(x) for x in re.findall(r"^tlsserver: status: (\d+)/\d+$", srv.log(), re.M)]
        self.assertEqual(max(active), n, srv.log())

    def assert_refused(self, r, message, timeout):
        self.assertEqual(r.rc, 111, r)
        self.assertIn(message, r.err, r)
        self.assertNotIn("mode=", r.out, r)
        self.assertLess(r.secs, timeout, r)

    # ---------------------------------------------------- bulk and latency

    def test_download_one_connection(self):
        srv = self.bench_server(self.gen(3 * MIB))
        r = self.tlsbench(srv.port, "--cafile", self.cert, "-n", "3m", "download")
        self.assert_bulk_ok(r, "download", 1, 3 * MIB)
        self.assertEqual(r.kv["close_notify"], "yes", r)
        self.assertIn("verified (length and every byte)", r.out)

    def test_parallel_download_checks_every_connection(self):
        srv = self.bench_server(self.gen(2 * MIB))
        r = self.tlsbench(srv.port, "-P", 4, "-n", "2m", "download")
        self.assert_bulk_ok(r, "download", 4, 2 * MIB)
        self.assertEqual(r.kv["close_notify"], "yes", r)
        self.assert_parallel_connections(srv, 4)

    def test_parallel_download_wrong_content_fails(self):
        # right length, wrong bytes: only a byte-by-byte check sees it
        srv = self.bench_server(["/bin/sh", "-c", "head -c 1048576 /dev/zero"])
        r = self.tlsbench(srv.port, "--parallel", 3, "-n", "1m", "download")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.kv["verified"], "no", r)
        self.assertEqual(r.kv["verified_conns"], "0", r)
        self.assertEqual(int(r.kv["bytes"]), 3 * MIB, r)
        rows = self.table_rows(r.out)
        self.assertEqual(sorted(rows), [1, 2, 3], r)
        for row in rows.values():
            self.assertIn("content differs at offset 0", row)
        self.assertIn("NOT VERIFIED: 3 of 3 connections", r.out)

    def test_parallel_download_short_stream_fails(self):
        srv = self.bench_server(self.gen(MIB))
        r = self.tlsbench(srv.port, "-P", 2, "-n", "2m", "download")
        self.assertEqual(r.rc, 1, r)
        self.assertEqual(r.kv["verified"], "no", r)
        for row in self.table_rows(r.out).values():
            self.assertIn("1048576 bytes arrived, 2097152 expected", row)

    def test_parallel_upload_checked_by_each_sink(self):
        srv = self.bench_server(self.sink(2 * MIB))
        r = self.tlsbench(srv.port, "-P", 4, "-n", "2m", "upload")
        self.assert_bulk_ok(r, "upload", 4, 2 * MIB)
        self.assertEqual(r.kv["close_notify"], "n/a", r)
        self.assert_parallel_connections(srv, 4)

    def test_parallel_upload_sink_that_waits_for_more_times_out(self):
        # each sink wants 2 MiB and gets 1: no report, so each connection
        # fails after the timeout instead of hanging
        srv = self.bench_server(self.sink(2 * MIB))
        r = self.tlsbench(srv.port, "--timeout", 1, "-P", 2, "-n", "1m", "upload")
        self.assertEqual(r.rc, 111, r)
        for i in (1, 2):
            self.assertIn("connection %d of 2: waiting for the sink's report: timed out" % i,
                          r.err)
        self.assertIn("no result: 2 of 2 connections failed", r.err)
        self.assertLess(r.secs, 10, r)

    def test_parallel_echo(self):
        srv = self.bench_server(["/bin/cat"])
        r = self.tlsbench(srv.port, "-P", 3, "-n", 300, "echo")
        self.assertEqual(r.rc, 0, r)
        kv = r.kv
        self.assertEqual((kv["mode"], kv["parallel"], kv["round_trips"],
                          kv["round_trips_per_conn"]), ("echo", "3", "900", "300"), r)
        self.assertLessEqual(float(kv["min_us"]), float(kv["median_us"]))
        self.assertLessEqual(float(kv["median_us"]), float(kv["p99_us"]))
        self.assertLessEqual(float(kv["p99_us"]), float(kv["max_us"]))
        self.assertGreater(float(kv["round_trips_per_sec"]), 0)
        self.assertEqual(sorted(self.table_rows(r.out)), [1, 2, 3], r)
        self.assert_parallel_connections(srv, 3)

    def test_progress_when_asked(self):
        # the echo server answers after 5.5 s: a progress line is due (runs
        # over 2 s; every 5 s when stderr is not a terminal)
        srv = self.bench_server(["/bin/sh", "-c", "sleep 5.5; exec cat"])
        r = self.tlsbench(srv.port, "--progress", "-P", 2, "-n", 10, "echo")
        self.assertEqual(r.rc, 0, r)
        self.assertRegex(r.err, r"^tlsbench: echo \d+ / 20 round trips on 2 connections$")
        self.assertEqual(r.kv["round_trips"], "20", r)

    # ---------------------------------------------------- STARTTLS

    def test_starttls_smtp_handshake_smtpd_demo(self):
        maildir = os.path.join(self.tmp, "Maildir")
        srv = self.bench_server([harness.binary("smtpd-demo")], ["-n"], UCSPITLS="",
                                MAILDIR=maildir)
        r = self.tlsbench(srv.port, "--starttls", "smtp", "--cafile", self.cert, "-P", 1,
                          "-t", "1", "handshake")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.kv["errors"], "0", r)
        n = int(r.kv["connections"])
        self.assertGreater(n, 0, r)
        srv.wait_idle()
        # each connection: STARTTLS, TLS, then QUIT under TLS (exit 0)
        self.assertGreaterEqual(srv.log().count("smtpd-demo: TLS started: TLSv1.3"), n)
        for pid in srv.worker_pids():
            self.assertEqual(srv.end_of(pid), ("status", 0))

    def test_starttls_smtp_not_offered(self):
        srv = self.bench_server([harness.binary("smtpd-demo")], ["-n"], UCSPITLS=None)
        r = self.tlsbench(srv.port, "--starttls", "smtp", "-P", 1, "-t", "0.5", "handshake")
        self.assertEqual(r.rc, 111, r)
        self.assertEqual(r.kv["connections"], "0", r)
        self.assertIn("STARTTLS smtp: the server does not offer STARTTLS", r.err)

    def test_starttls_pop3_parallel_download(self):
        srv = self.bench_server(self.starttls_app("pop3", self.gen(MIB)), ["-n"], UCSPITLS="")
        r = self.tlsbench(srv.port, "--starttls", "pop3", "--cafile", self.cert, "-P", 3,
                          "-n", "1m", "download")
        self.assert_bulk_ok(r, "download", 3, MIB)
        self.assert_parallel_connections(srv, 3)
        for pid in srv.worker_pids():
            self.assertRegex(srv.log(), r"tls %d accept TLSv1\.3" % pid)

    def test_starttls_pop3_echo(self):
        srv = self.bench_server(self.starttls_app("pop3", ["/bin/cat"]), ["-n"], UCSPITLS="")
        r = self.tlsbench(srv.port, "--starttls", "pop3", "-n", 100, "echo")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.kv["round_trips"], "100", r)

    def test_starttls_imap_parallel_upload(self):
        srv = self.bench_server(self.starttls_app("imap", self.sink(MIB)), ["-n"], UCSPITLS="")
        r = self.tlsbench(srv.port, "--starttls", "imap", "-P", 2, "-n", "1m", "upload")
        self.assert_bulk_ok(r, "upload", 2, MIB)
        self.assert_parallel_connections(srv, 2)

    def test_starttls_imap_echo_and_download(self):
        srv = self.bench_server(self.starttls_app("imap", ["/bin/cat"]), ["-n"], UCSPITLS="")
        r = self.tlsbench(srv.port, "--starttls", "imap", "-P", 2, "-n", 100, "echo")
        self.assertEqual(r.rc, 0, r)
        self.assertEqual(r.kv["round_trips"], "200", r)
        srv2 = self.bench_server(self.starttls_app("imap", self.gen(MIB)), ["-n"], UCSPITLS="")
        r = self.tlsbench(srv2.port, "--starttls", "imap", "-n", "1m", "download")
        self.assert_bulk_ok(r, "download", 1, MIB)

    def test_starttls_refused(self):
        for proto, message in (("pop3", 'STARTTLS pop3: STLS refused: "-ERR STLS is not '
                                        'available here"'),
                               ("imap", 'STARTTLS imap: STARTTLS refused: "a001 NO STARTTLS is '
                                        'not available here"')):
            with self.subTest(proto=proto):
                srv = self.bench_server(self.starttls_app(proto, ["/bin/cat"], "refuse"),
                                        ["-n"], UCSPITLS="")
                r = self.tlsbench(srv.port, "--starttls", proto, "-P", 2, "-n", 10, "echo")
                self.assert_refused(r, message, 10)

    def test_starttls_refused_without_ucspitls(self):
        # the app offers no TLS when the server gives it no UCSPI-TLS
        srv = self.bench_server(self.starttls_app("pop3", self.gen(MIB)), ["-n"], UCSPITLS=None)
        r = self.tlsbench(srv.port, "--starttls", "pop3", "-n", "1m", "download")
        self.assert_refused(r, 'STLS refused: "-ERR', 10)

    def test_starttls_garbage(self):
        cases = (("pop3", "bad-greeting", 'STARTTLS pop3: not a POP3 greeting: "220 '),
                 ("pop3", "bad-reply", 'STARTTLS pop3: not a POP3 reply to STLS: "* OK'),
                 ("imap", "bad-greeting", 'STARTTLS imap: not an IMAP greeting: "+OK'),
                 ("imap", "bad-reply", 'STARTTLS imap: not an IMAP reply to STARTTLS: "+OK'),
                 ("pop3", "inject", "STARTTLS pop3: the server sent 24 more bytes after its "
                                    "STLS reply"),
                 ("imap", "inject", "STARTTLS imap: the server sent 28 more bytes after its "
                                    "STARTTLS reply"))
        for proto, behaviour, message in cases:
            with self.subTest(proto=proto, behaviour=behaviour):
                srv = self.bench_server(self.starttls_app(proto, ["/bin/cat"], behaviour),
                                        ["-n"], UCSPITLS="")
                r = self.tlsbench(srv.port, "--starttls", proto, "-n", 10, "echo")
                self.assert_refused(r, message, 10)

    def test_starttls_wrong_protocol(self):
        srv = self.bench_server(self.starttls_app("imap", ["/bin/cat"]), ["-n"], UCSPITLS="")
        r = self.tlsbench(srv.port, "--starttls", "smtp", "-n", 10, "echo")
        self.assert_refused(r, 'STARTTLS smtp: not an SMTP reply: "* OK', 10)

    def test_starttls_silent_server_times_out(self):
        for proto in ("pop3", "imap"):
            with self.subTest(proto=proto):
                srv = self.bench_server(self.starttls_app(proto, ["/bin/cat"], "silent"),
                                        ["-n"], UCSPITLS="")
                r = self.tlsbench(srv.port, "--starttls", proto, "--timeout", "1", "-P", 2,
                                  "-n", 10, "echo")
                self.assert_refused(r, "STARTTLS %s: timed out waiting for the server" % proto,
                                    6)
                self.assertGreaterEqual(r.secs, 0.9, r)

    # ---------------------------------------------------- usage

    def test_usage_errors(self):
        exe = harness.binary("tlsbench")
        for args, message in ((["--starttls", "ftp", "echo"], "--starttls wants smtp, pop3 or imap"),
                              (["-P", "0", "download"], "-P wants a number from 1 to 256"),
                              (["-P", "257", "echo"], "-P wants a number from 1 to 256"),
                              (["-P", "2", "hold"], "-P does not apply to hold"),
                              (["-P", "1000", "-n", "1000000", "echo"], "-P wants"),
                              (["-P", "200", "-n", "1000000", "echo"],
                               "echo: -n times -P is at most 10^8")):
            with self.subTest(args=args):
                p = subprocess.run([exe, *args, "127.0.0.1", "1"], stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, timeout=10)
                self.assertEqual(p.returncode, 100, p)
                self.assertIn(message, p.stderr.decode(), p)
        p = subprocess.run([exe, "--help"], stdout=subprocess.PIPE, timeout=10)
        self.assertEqual(p.returncode, 0)
        for text in (b"-P, --parallel N", b"--starttls PROTO", b"pop3", b"imap"):
            self.assertIn(text, p.stdout)


if __name__ == "__main__":
    harness.main()
