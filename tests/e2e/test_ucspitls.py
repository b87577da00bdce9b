"""Delayed TLS (tlsserver -n, the UCSPI-TLS protocol): every row of DESIGN.md
section 4, with the test app in its delayed modes and a Python client that
speaks "STARTTLS\\n", reads "OK\\n", then starts TLS on the same socket; and
real SMTP clients (openssl s_client -starttls smtp, swaks) against
smtpd-demo."""

import glob
import os
import re
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import (SClient, TLSConn, env_of, field, read_until,  # noqa: E402
                     recv_plain_all)

GARBAGE = b"this is not a TLS ClientHello, just plaintext\r\n" * 4


class DelayedTest(harness.E2ETest):

    def delayed_server(self, mode, opts=()):
        return self.server(self.app_cmd(mode), ["-n", *opts])

    def starttls(self, port):
        """Plaintext STARTTLS / OK, then the TLS handshake."""
        sock = self.connect(port)
        sock.sendall(b"STARTTLS\n")
        self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        conn = TLSConn(sock, self.ctx())
        conn.handshake()
        return conn

    def echo_session(self, conn, payload):
        conn.send(payload)
        self.assertEqual(conn.recv_exactly(len(payload)), payload)
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()

    def assert_ucspitls_env(self, run):
        env = env_of(run)
        self.assertEqual((env.get("SSLCTLFD"), env.get("SSLREADFD"), env.get("SSLWRITEFD")),
                         ("3", "4", "5"), env)
        self.assertNotIn("UCSPITLS", env, "the server must never set UCSPITLS")
        self.assertNotIn("SSL_PROTOCOL", env)
        self.assertEqual(env.get("PROTO"), "TCP")
        return env

    def assert_ended(self, srv, status=0):
        pid = srv.worker_pids()[-1]
        self.assertEqual(srv.end_of(pid), ("status", status), srv.log())
        self.assertNotIn("killed", srv.log())
        return pid

    # -- rows of the table

    def test_y_echo(self):
        srv = self.delayed_server("y-echo")
        conn = self.starttls(srv.port)
        version = conn.version()
        payload = b"secret after STARTTLS\n" * 100
        self.echo_session(conn, payload)
        run = self.app_run()
        self.assert_ucspitls_env(run)
        # fds 0/1 are the socket, ctl a socket, the two pipes; no other copy
        # of the connection
        self.assertEqual(field(run, "fds"), "0:sock 1:sock 2:reg 3:sock 4:fifo 5:fifo")
        self.assertEqual(field(run, "line"), "STARTTLS")
        self.assertEqual(field(run, "sent"), "y")
        self.assertEqual(field(run, "echoed"), str(len(payload)))
        # y: nothing written on ctl, and it is closed after the handshake
        self.assertEqual(field(run, "ctl-after"), "eof")
        self.assertIsNone(field(run, "vars-raw"))
        self.assertEqual(run[-1], "exit 0")
        pid = self.assert_ended(srv)
        self.assertRegex(srv.log(), r"tls %d accept %s:" % (pid, re.escape(version)))

    def check_y_reply(self, run, conn_version, conn_cipher):
        raw = bytes.fromhex(field(run, "vars-raw"))
        self.assertTrue(raw.endswith(b"\0\0"), raw)
        entries = raw[:-2].split(b"\0")
        for e in entries:
            self.assertIn(b"=", e, "bare name in the Y reply: %r" % e)
        names = [e.split(b"=", 1)[0].decode() for e in entries]
        self.assertEqual(names[:2], ["SSL_PROTOCOL", "SSL_CIPHER"], names)
        self.assertEqual(len(names), len(set(names)), "duplicate names: %r" % names)
        vals = dict(e.decode().split("=", 1) for e in entries)
        self.assertEqual(vals["SSL_PROTOCOL"], conn_version)
        self.assertEqual(vals["SSL_CIPHER"], conn_cipher)
        self.assertIsNone(field(run, "vars-error"))
        self.assertEqual(field(run, "vars").split("|")[0], "SSL_PROTOCOL=" + conn_version)

    def test_Y_echo(self):
        srv = self.delayed_server("Y-echo")
        conn = self.starttls(srv.port)
        v, c = conn.version(), conn.cipher()[0]
        self.echo_session(conn, b"with variables\n")
        run = self.app_run()
        self.assert_ucspitls_env(run)
        self.assertEqual(field(run, "sent"), "Y")
        self.check_y_reply(run, v, c)
        self.assertEqual(field(run, "ctl-after"), "eof")
        self.assertEqual(run[-1], "exit 0")
        self.assert_ended(srv)

    def test_Y_shut(self):
        srv = self.delayed_server("Y-shut")
        conn = self.starttls(srv.port)
        v, c = conn.version(), conn.cipher()[0]
        self.echo_session(conn, b"smtpd-starttls-proxy style\n")
        run = self.app_run()
        self.check_y_reply(run, v, c)
        self.assertEqual(field(run, "echoed"), str(len(b"smtpd-starttls-proxy style\n")))
        self.assertEqual(run[-1], "exit 0")
        self.assert_ended(srv)

    def test_decline_continues_in_plaintext(self):
        srv = self.delayed_server("decline")
        sock = self.connect(srv.port)
        sock.sendall(b"STARTTLS\n")
        self.assertEqual(read_until(sock, b"\n"), b"NO\n")
        sock.sendall(b"plain text goes on\n")
        self.assertEqual(read_until(sock, b"on\n"), b"plain text goes on\n")
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_plain_all(sock), b"")
        sock.close()
        run = self.app_run()
        self.assertIn("declined", run)
        self.assertEqual(field(run, "echoed"), str(len(b"plain text goes on\n")))
        self.assertEqual(run[-1], "exit 0")
        pid = self.assert_ended(srv)
        self.assertNotRegex(srv.log(), r"tls %d accept" % pid)

    def test_unknown_command_byte(self):
        srv = self.delayed_server("badcmd")
        sock = self.connect(srv.port)
        sock.sendall(b"still plaintext\n")
        self.assertEqual(read_until(sock, b"\n"), b"still plaintext\n")
        sock.shutdown(socket.SHUT_WR)
        self.assertEqual(recv_plain_all(sock), b"")
        sock.close()
        run = self.app_run()
        self.assertEqual(field(run, "sent"), "x")
        # ctl closed without data, no handshake
        self.assertIn("ctl-eof", run)
        self.assertIsNone(field(run, "ctl-data"))
        self.assertEqual(field(run, "echoed"), str(len(b"still plaintext\n")))
        self.assertEqual(run[-1], "exit 0")
        pid = self.assert_ended(srv)
        self.assertNotRegex(srv.log(), r"tls %d accept" % pid)
        self.assertRegex(srv.log(), r"0x78")  # the command byte is logged

    def failed_handshake(self, mode):
        srv = self.delayed_server(mode)
        sock = self.connect(srv.port)
        sock.sendall(b"STARTTLS\n")
        self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        sock.sendall(GARBAGE)
        got = recv_plain_all(sock)  # maybe an alert, then EOF
        sock.close()
        self.assertNotIn(b"plaintext", got)
        run = self.app_run()
        # the app was not killed: it exits by itself with its own code
        self.assertEqual(run[-1], "exit 0")
        self.assert_ended(srv, 0)
        return run

    def test_failed_handshake_Y_shut(self):
        run = self.failed_handshake("Y-shut")
        self.assertIn("ctl-eof-nodata", run)
        self.assertIsNone(field(run, "vars-raw"))

    def test_failed_handshake_y_echo(self):
        run = self.failed_handshake("y-echo")
        # both pipes closed: EOF at once, nothing from the client as data
        self.assertIn("read-eof", run)
        self.assertEqual(field(run, "echoed"), "0")
        self.assertEqual(field(run, "ctl-after"), "eof")

    def test_pipelined_plaintext_never_reaches_the_app(self):
        srv = self.delayed_server("y-echo")
        sock = self.connect(srv.port)
        sock.sendall(b"STARTTLS\n" + GARBAGE)  # one send
        self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        got = recv_plain_all(sock)
        sock.close()
        self.assertNotIn(b"plaintext", got)
        run = self.app_run()
        self.assertEqual(field(run, "line"), "STARTTLS")
        self.assertEqual(field(run, "echoed"), "0")
        self.assertNotIn("plaintext", "\n".join(run))
        self.assertEqual(run[-1], "exit 0")
        pid = self.assert_ended(srv)
        self.assertNotRegex(srv.log(), r"tls %d accept" % pid)

    def test_pipelined_client_hello_is_the_handshake(self):
        # A client that sends its ClientHello right behind STARTTLS: the
        # bytes are TLS and must be fed to the handshake, which succeeds.
        srv = self.delayed_server("y-echo")
        sock = self.connect(srv.port)
        conn = TLSConn(sock, self.ctx())
        hello = conn.first_flight()
        sock.setblocking(True)
        sock.sendall(b"STARTTLS\n" + hello)
        self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        conn.handshake()
        self.echo_session(conn, b"pipelined hello\n")
        run = self.app_run()
        self.assertEqual(field(run, "echoed"), str(len(b"pipelined hello\n")))
        self.assert_ended(srv)

    def test_handshake_timeout_delayed(self):
        srv = self.delayed_server("Y-shut", ["-T", "1"])
        sock = self.connect(srv.port)
        sock.sendall(b"STARTTLS\n")
        self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        # silence: the handshake times out, the app is told (ctl EOF) and
        # ends by itself
        run = self.app_run(timeout=6)
        self.assertIn("ctl-eof-nodata", run)
        self.assertEqual(run[-1], "exit 0")
        self.assertEqual(recv_plain_all(sock, 5), b"")
        sock.close()
        self.assert_ended(srv, 0)


class SmtpDemoTest(harness.E2ETest):

    def setUp(self):
        super().setUp()
        self.smtpd = os.path.join(self.tmp, "smtpd-demo")
        os.symlink(harness.binary("smtpd-demo"), self.smtpd)
        self.maildir = os.path.join(self.tmp, "Maildir")

    def smtp_server(self, ucspitls=""):
        env = self.env(UCSPITLS=ucspitls, MAILDIR=self.maildir)
        return self.server([self.smtpd], ["-n"], env=env)

    def test_s_client_starttls_smtp(self):
        srv = self.smtp_server("")
        c = SClient(srv.port, ["-starttls", "smtp", "-quiet", "-no_ign_eof", "-nocommands",
                               "-verify_return_error", "-CAfile", self.cert])
        c.write(b"EHLO client.example\r\n")
        out = c.read_until(b"250 ")
        c.read_until(b"\r\n", timeout=5)
        self.assertIn(b"250", out)
        self.assertNotIn(b"STARTTLS", out, "STARTTLS offered again under TLS")
        c.write(b"QUIT\r\n")
        out = c.read_until(b"221 ")
        rc, out, err = c.finish()
        self.assertIn(b"221 ", out, err)
        self.assertEqual(rc, 0, err)
        pid = srv.worker_pids()[-1]
        self.assertEqual(srv.end_of(pid), ("status", 0))
        self.assertRegex(srv.log(), r"tls %d accept TLSv1\.3:" % pid)
        self.assertIn("smtpd-demo: TLS started: TLSv1.3", srv.log())

    def test_swaks_delivers_into_maildir(self):
        swaks = harness.tool("swaks")
        srv = self.smtp_server("")
        p = subprocess.run([swaks, "--server", "127.0.0.1:%d" % srv.port, "--tls",
                            "--to", "a@example.org", "--from", "b@example.org",
                            "--timeout", "10", "--body", "ucspi-tls e2e body"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=30)
        out = p.stdout.decode(errors="replace")
        self.assertEqual(p.returncode, 0, out)
        self.assertIn("STARTTLS", out)
        files = harness.wait_until(lambda: glob.glob(os.path.join(self.maildir, "new", "*")), 5)
        self.assertEqual(len(files or []), 1, "Maildir/new: %r" % files)
        with open(files[0], "rb") as f:
            msg = f.read().decode(errors="replace")
        m = re.search(r"^Received: .*?(?=^\S)", msg, re.M | re.S)
        self.assertIsNotNone(m, msg)
        self.assertRegex(m.group(0), r"ESMTPS \(TLSv1\.3 TLS_")
        self.assertIn("ucspi-tls e2e body", msg)
        self.assertIn("b@example.org", msg)
        pid = srv.worker_pids()[-1]
        self.assertEqual(srv.end_of(pid), ("status", 0))

    def test_no_starttls_without_ucspitls(self):
        srv = self.smtp_server(None)
        sock = self.connect(srv.port)
        self.assertTrue(read_until(sock, b"\r\n").startswith(b"220 "))
        sock.sendall(b"EHLO client.example\r\n")
        buf = b""
        while not re.search(rb"^250 [^\r]*\r\n", buf, re.M):
            buf += read_until(sock, b"\r\n")
        self.assertNotIn(b"STARTTLS", buf)
        sock.sendall(b"STARTTLS\r\n")
        self.assertTrue(read_until(sock, b"\r\n").startswith(b"502"))
        sock.sendall(b"QUIT\r\n")
        self.assertTrue(read_until(sock, b"\r\n").startswith(b"221"))
        sock.close()
        pid = srv.worker_pids()[-1]
        self.assertEqual(srv.end_of(pid), ("status", 0))
        self.assertNotRegex(srv.log(), r"tls %d accept" % pid)


if __name__ == "__main__":
    harness.main()
