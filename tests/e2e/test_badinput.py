"""Bad input: configuration errors end the server before it accepts, with
the UCSPI exit code (100 permanent, 111 temporary) and one line that names
the culprit; hostile clients do not hurt the master."""

import os
import random
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import recv_plain_all  # noqa: E402


class BadInputTest(harness.E2ETest):

    def run_bad(self, opts=(), env=None, port=None, name="tlsserver", prog=None):
        """Runs a front end that must refuse to start; returns (exit code,
        stderr lines, port)."""
        port = harness.free_port() if port is None else port
        prog = prog if prog is not None else self.app_cmd("immediate-echo")
        if name == "tlsd":
            argv = [harness.binary(name), *opts, *prog]
        else:
            argv = [harness.binary(name), "-1", *opts, "127.0.0.1", str(port), *prog]
        p = subprocess.run(argv, env=env if env is not None else self.env(),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15, cwd=self.tmp)
        lines = p.stderr.decode(errors="replace").strip().splitlines()
        self.assertEqual(p.stdout, b"", "printed a port: it got as far as listening")
        return p.returncode, lines, port

    def assert_refused(self, code, want_code, lines, *words, port=None):
        self.assertEqual(code, want_code, lines)
        # (not started as root, the server first warns that it cannot drop
        # ids: that line is not part of the error)
        lines = [l for l in lines if ": warning: " not in l]
        self.assertEqual(len(lines), 1, "want one line, got %r" % lines)
        for w in words:
            self.assertIn(w, lines[0])
        if port is not None:
            self.assertFalse(harness.port_listening(port), "port %d is listening" % port)

    def test_missing_certfile(self):
        code, lines, port = self.run_bad(env=self.env(CERTFILE=None))
        self.assert_refused(code, 100, lines, "$CERTFILE", port=port)

    def test_missing_cert_file(self):
        missing = os.path.join(self.tmp, "no-such-cert.pem")
        code, lines, port = self.run_bad(env=self.env(CERTFILE=missing))
        self.assert_refused(code, 111, lines, missing, port=port)

    def test_garbage_cert_file(self):
        bad = os.path.join(self.tmp, "garbage-cert.pem")
        with open(bad, "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n")
        code, lines, port = self.run_bad(env=self.env(CERTFILE=bad))
        self.assert_refused(code, 111, lines, bad, port=port)

    def test_missing_key_file(self):
        missing = os.path.join(self.tmp, "no-such-key.pem")
        code, lines, port = self.run_bad(env=self.env(KEYFILE=missing))
        self.assert_refused(code, 111, lines, missing, port=port)

    def test_unreadable_key_file(self):
        if harness.IS_ROOT:
            self.skipTest("root reads any file: permission cannot be denied")
        os.chmod(self.key, 0)
        code, lines, port = self.run_bad()
        self.assert_refused(code, 111, lines, self.key, port=port)

    def test_key_does_not_match(self):
        _, other_key = harness.make_cert(self.tmp, "other")
        code, lines, port = self.run_bad(env=self.env(KEYFILE=other_key))
        self.assert_refused(code, 111, lines, "does not match", port=port)

    def test_port_in_use(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        try:
            code, lines, _ = self.run_bad(port=port)
            self.assert_refused(code, 111, lines, str(port))
        finally:
            s.close()

    def test_unknown_options(self):
        for opt in ("-K", "--bogus"):
            with self.subTest(opt):
                code, lines, port = self.run_bad([opt])
                self.assert_refused(code, 100, lines, opt, port=port)

    def test_bad_option_values(self):
        for opts, word in ((["-c", "0"], "-c"), (["-c", "abc"], "-c"), (["-T", "-1"], "-T"),
                           (["-w", "x"], "-w"), (["-u", "nobody-name"], "-u")):
            with self.subTest(" ".join(opts)):
                code, lines, port = self.run_bad(opts)
                self.assert_refused(code, 100, lines, word, port=port)

    def test_worker_uid_zero_refused(self):
        for name in ("SSL_UID", "TLS_UID", "SSL_GID"):
            with self.subTest(name):
                code, lines, port = self.run_bad(env=self.env(**{name: "0"}))
                self.assert_refused(code, 100, lines, "$" + name, port=port)

    def test_tlsd_missing_certfile(self):
        code, lines, _ = self.run_bad(env=self.env(CERTFILE=None), name="tlsd")
        self.assert_refused(code, 100, lines, "$CERTFILE")

    def test_garbage_clients_do_not_hurt_the_master(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        rnd = random.Random(1234)
        hostile = [
            rnd.randbytes(3000),
            b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
            b"\x16\x03\x01\xff\xff" + rnd.randbytes(200),  # a record header that lies
            b"\x16\x03\x03\x00\x05\x01\x00\x00\x01\x00",  # a truncated ClientHello
            b"",  # connect and close
        ]
        for i, junk in enumerate(hostile, 1):
            with self.subTest(i):
                sock = self.connect(srv.port)
                if junk:
                    sock.sendall(junk)
                sock.shutdown(socket.SHUT_WR)
                got = recv_plain_all(sock, 10)  # maybe an alert; then EOF
                sock.close()
                self.assertNotIn(b"HTTP", got)
                pid = srv.worker_pids()[-1]
                kind, _ = srv.end_of(pid)
                self.assertEqual(kind, "status", srv.log())
        self.assertTrue(srv.alive(), "the master died")
        self.assert_no_app_run()
        conn = self.tls_connect(srv.port)
        conn.send(b"still serving\n")
        self.assertEqual(conn.recv_exactly(14), b"still serving\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        srv.wait_idle()


if __name__ == "__main__":
    harness.main()
