"""Immediate TLS (tlsserver without -n): real clients against the test app's
immediate-echo mode."""

import os
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import SClient, env_of, field, s_client_once  # noqa: E402
from loadkit import SANITIZED, data_pages_copied, figure, smaps_rollup  # noqa: E402


class ImmediateTest(harness.E2ETest):

    def s_client_echo(self, srv, version_flag):
        msg = b"hello over %s\n" % version_flag.encode()
        c = SClient(srv.port, ["-quiet", "-no_ign_eof", "-nocommands", version_flag])
        c.write(msg)
        got = c.read_until(msg)
        rc, out, err = c.finish()
        self.assertIn(msg, got, "echo not received; s_client stderr:\n" + err)
        self.assertEqual(out, msg, "s_client received more or other than the echo")
        self.assertEqual(rc, 0, err)
        return msg

    def test_s_client_tls13_and_tls12_echo(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        for n, (flag, proto) in enumerate([("-tls1_3", "TLSv1.3"), ("-tls1_2", "TLSv1.2")], 1):
            with self.subTest(flag):
                msg = self.s_client_echo(srv, flag)
                pid = srv.worker_pids()[-1]
                m = srv.wait_log(r"^tlsserver: tls %d accept (\S+):(\S+) sni=\S+ alpn=\S+ client=\S+ full \d+ ms$" % pid)
                self.assertEqual(m.group(1), proto)
                if proto == "TLSv1.2":
                    # forward secret and AEAD by default
                    self.assertTrue(m.group(2).startswith("ECDHE-"), m.group(2))
                    self.assertTrue("GCM" in m.group(2) or "CHACHA20" in m.group(2), m.group(2))
                self.assertEqual(srv.end_of(pid), ("status", 0))
                run = self.wait_app_exit(n)[-1]
                self.assertEqual(field(run, "echoed"), str(len(msg)), run)
                self.assertIn("read-eof", run)
                self.assertEqual(run[-1], "exit 0")
                env = env_of(run)
                self.assertNotIn("SSL_PROTOCOL", env, "SSL_* vars without -s")
                self.assertNotIn("SSL_CIPHER", env)

    def test_idle_worker_gives_memory_back_and_goes_on(self):
        # After RELAY_IDLE_MS (1 s) without traffic the worker returns what
        # the handshake used (engine/conn.c settle(): malloc_trim and the
        # stack below the pump with MADV_DONTNEED); the connection must go
        # on as before, in both directions, and its memory must shrink.
        srv = self.server(self.app_cmd("immediate-echo"))
        conn = self.tls_connect(srv.port)
        conn.send(b"before\n")
        self.assertEqual(conn.recv_exactly(7), b"before\n")
        t0 = time.monotonic()
        pid = srv.worker_pids()[-1]
        before = smaps_rollup(pid).get("Private_Dirty", 0)
        self.assertGreater(before, 0)
        # Only where glibc's allocator runs (the sanitizer build's is not:
        # malloc_trim gives nothing back there), and only when the first
        # look came well inside the idle second (a loaded machine may be
        # late, and then there is no "before" to compare with).
        glibc = not os.environ.get("UCSPITLS_SANITIZER_REPORTS") and \
            time.monotonic() - t0 < 0.5
        deadline = time.monotonic() + 10
        after = before
        while time.monotonic() < deadline:
            time.sleep(0.3)
            after = smaps_rollup(pid).get("Private_Dirty", 0)
            if not glibc or after < before:
                break
        if glibc:
            self.assertLess(after, before, "an idle worker gave nothing back in 10 s")
        for i in range(3):
            msg = b"after idle %d %s\n" % (i, b"x" * 20000 * i)
            conn.send(msg)
            self.assertEqual(conn.recv_exactly(len(msg)), msg)
            time.sleep(1.2)  # idle again: given back again, and still fine
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        self.assertEqual(srv.end_of(pid), ("status", 0))
        figure("idle worker Private_Dirty %d KiB after an echo, %d KiB once idle"
               % (before, after))

    def test_worker_copies_no_data_page(self):
        # What every worker would otherwise write is made once by the master
        # before it forks (engine/startup.c: the record buffer's BIO method,
        # so OpenSSL's BIO type counter and outbuf.c's variables), and the
        # keyd channel is thread-local.  So a worker that has done a
        # handshake and relayed, idle or not, has copied none of the
        # program's or OpenSSL's data pages: each would be 4 KiB per
        # connection.  (libc's data is not checked: malloc writes it.  The
        # sanitizer runtime writes the program's globals.  A page the master
        # wrote since the fork would show here too: it writes none of these.)
        if SANITIZED:
            self.skipTest("sanitizer build")
        if not harness.IS_ROOT:
            self.skipTest("a worker's /proc files need root (the worker is not dumpable)")
        srv = self.server(self.app_cmd("immediate-echo"))
        conns = [self.tls_connect(srv.port) for _ in range(2)]
        for i, conn in enumerate(conns):
            msg = b"data pages %d\n" % i
            conn.send(msg)
            self.assertEqual(conn.recv_exactly(len(msg)), msg)
        pids = srv.worker_pids()[-2:]
        self.assertEqual(len(pids), 2, srv.log())
        libs = ("libcrypto.so", "libssl.so")  # when linked statically: in the program's
        for pid in pids:
            copied = data_pages_copied(pid, libs)
            self.assertIn(os.readlink("/proc/%d/exe" % pid), copied, "program not found: %r" % copied)
            self.assertEqual({p: kib for p, kib in copied.items() if kib}, {},
                             "pages private to worker %d (KiB by file): written by it, "
                             "or by the master since the fork" % pid)
        time.sleep(1.5)  # idle: the worker settles (conn.c), still no copy
        for pid in pids:
            self.assertEqual({p: kib for p, kib in data_pages_copied(pid, libs).items() if kib}, {})
        for conn in conns:
            conn.close_notify()
            self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        for pid in pids:
            self.assertEqual(srv.end_of(pid), ("status", 0))

    def test_tls11_and_tls10_refused(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        for flag in ("-tls1_1", "-tls1"):
            with self.subTest(flag):
                # the client must be allowed to offer the old versions at all
                rc, out, err = s_client_once(srv.port, [flag, "-cipher", "DEFAULT@SECLEVEL=0"],
                                             b"must not arrive\n")
                self.assertNotEqual(rc, 0, "old protocol accepted:\n" + err)
                self.assertIn("alert protocol version", err)
                self.assertNotIn(b"must not arrive", out)
                pid = srv.worker_pids()[-1]
                kind, _ = srv.end_of(pid)
                self.assertEqual(kind, "status")
                self.assertNotRegex(srv.log(), r"tls %d accept" % pid)
        self.assert_no_app_run()

    def test_non_aead_or_non_fs_ciphers_refused(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        # ECDSA certificate: CBC suites, with and without ECDHE
        for cipher in ("AES128-SHA", "ECDHE-ECDSA-AES128-SHA", "ECDHE-ECDSA-AES128-SHA256"):
            with self.subTest(cipher):
                rc, out, err = s_client_once(srv.port, ["-tls1_2", "-cipher", cipher], b"x\n")
                self.assertNotEqual(rc, 0, "%s accepted" % cipher)
                self.assertIn("handshake failure", err)
        # RSA certificate: static-RSA key exchange, AEAD but not forward secret
        cert, key = self.rsa_cert()
        srv2 = self.server(self.app_cmd("immediate-echo"), env=self.env(CERTFILE=cert, KEYFILE=key))
        for cipher in ("AES128-GCM-SHA256", "AES256-GCM-SHA384", "AES128-SHA"):
            with self.subTest("rsa " + cipher):
                rc, out, err = s_client_once(srv2.port, ["-tls1_2", "-cipher", cipher], b"x\n")
                self.assertNotEqual(rc, 0, "%s accepted" % cipher)
                self.assertIn("handshake failure", err)
        self.assert_no_app_run()
        # while the default still works with RSA
        conn = self.tls_connect(srv2.port, ctx=harness.client_context(cert))
        conn.send(b"rsa ok\n")
        self.assertEqual(conn.recv_exactly(7), b"rsa ok\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()

    def test_session_env_with_s(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["-s"])
        conn = self.tls_connect(srv.port)
        version, cipher = conn.version(), conn.cipher()[0]
        conn.send(b"ping\n")
        self.assertEqual(conn.recv_exactly(5), b"ping\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        env = env_of(self.app_run())
        self.assertEqual(env.get("SSL_PROTOCOL"), version)
        self.assertEqual(env.get("SSL_CIPHER"), cipher)

    def test_python_client_and_address_env(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        ctx = self.ctx()
        raw = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        cip, cport = raw.getsockname()
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            self.assertEqual(s.version(), "TLSv1.3")
            payload = bytes(range(256)) * 64 + b"\n"
            s.sendall(payload)
            got = b""
            while len(got) < len(payload):
                d = s.recv(65536)
                self.assertTrue(d, "EOF after %d bytes" % len(got))
                got += d
            self.assertEqual(got, payload)
            s2 = s.unwrap()  # close_notify both ways
            s2.close()
        run = self.app_run()
        env = env_of(run)
        self.assertEqual(env.get("PROTO"), "TCP")
        self.assertEqual(env.get("TCPREMOTEIP"), cip)
        self.assertEqual(env.get("TCPREMOTEPORT"), str(cport))
        self.assertEqual(env.get("TCPLOCALIP"), "127.0.0.1")
        self.assertEqual(env.get("TCPLOCALPORT"), str(srv.port))
        self.assertEqual(env.get("SSLREMOTEIP"), cip)
        self.assertEqual(env.get("SSLLOCALIP"), "127.0.0.1")
        for name in ("SSLCTLFD", "SSLREADFD", "SSLWRITEFD", "TCP6REMOTEIP"):
            self.assertNotIn(name, env)
        # the app holds pipes on 0/1 and no copy of the socket
        self.assertEqual(field(run, "fds"), "0:fifo 1:fifo 2:reg")
        self.assertEqual(field(run, "echoed"), str(len(payload)))

    def test_ipv6(self):
        try:
            s = socket.socket(socket.AF_INET6)
            s.bind(("::1", 0))
            s.close()
        except OSError:
            self.skipTest("no IPv6 loopback")
        srv = self.server(self.app_cmd("immediate-echo"), host="::1")
        raw = socket.create_connection(("::1", srv.port), timeout=10)
        cport = raw.getsockname()[1]
        conn = harness.TLSConn(raw, self.ctx())
        conn.handshake()
        conn.send(b"v6\n")
        self.assertEqual(conn.recv_exactly(3), b"v6\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        env = env_of(self.app_run())
        self.assertEqual(env.get("PROTO"), "TCP6")
        self.assertEqual(env.get("TCP6REMOTEIP"), "::1")
        self.assertEqual(env.get("TCPREMOTEIP"), "::1")
        self.assertEqual(env.get("TCPREMOTEPORT"), str(cport))

    def test_certchainfile_sends_the_chain(self):
        root, chain, key = harness.make_chain(self.tmp)
        srv = self.server(self.app_cmd("immediate-echo"),
                          env=self.env(CERTFILE=None, CERTCHAINFILE=chain, KEYFILE=key))
        # the client trusts only the root: the intermediate must come from
        # the server
        conn = self.tls_connect(srv.port, ctx=harness.client_context(root))
        conn.send(b"chain\n")
        self.assertEqual(conn.recv_exactly(6), b"chain\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        self.assertEqual(self.app_run()[-1], "exit 0")

    def test_ciphers_env(self):
        srv = self.server(self.app_cmd("immediate-echo"),
                          env=self.env(CIPHERS="ECDHE-ECDSA-CHACHA20-POLY1305"))
        msg = self.s_client_echo(srv, "-tls1_2")
        pid = srv.worker_pids()[-1]
        srv.wait_log(r"^tlsserver: tls %d accept TLSv1\.2:ECDHE-ECDSA-CHACHA20-POLY1305 " % pid)
        rc, out, err = s_client_once(srv.port, ["-tls1_2", "-cipher", "ECDHE-ECDSA-AES128-GCM-SHA256"])
        self.assertNotEqual(rc, 0, "a cipher outside $CIPHERS was accepted")
        self.assertIn("handshake failure", err)
        runs = self.wait_app_exit(1)
        self.assertEqual(len(runs), 1, "the app ran for the refused client")
        self.assertEqual(field(runs[0], "echoed"), str(len(msg)))

    def test_concurrency_limit_queues_in_backlog(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["-c", "1"])
        first = self.tls_connect(srv.port)
        first.send(b"1\n")
        self.assertEqual(first.recv_exactly(2), b"1\n")
        # the second client gets a TCP connection (kernel backlog) but no
        # handshake while the first one is served
        raw = self.connect(srv.port)
        second = harness.TLSConn(raw, self.ctx())
        with self.assertRaises(TimeoutError):
            second.handshake(timeout=0.7)
        self.assertEqual(len(srv.worker_pids()), 1)
        srv.wait_log(r"^tlsserver: status: 1/1$")
        first.close_notify()
        self.assertEqual(first.recv_all(), (b"", "close_notify"))
        first.close()
        # now it is accepted and served
        second.handshake(timeout=10)
        second.send(b"2\n")
        self.assertEqual(second.recv_exactly(2), b"2\n")
        second.close_notify()
        self.assertEqual(second.recv_all(), (b"", "close_notify"))
        second.close()
        self.wait_app_exit(2)
        srv.wait_idle()


if __name__ == "__main__":
    harness.main()
