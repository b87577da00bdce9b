"""Faults: clients that abort, stall or never finish; apps that exit early or
never read; timeouts; and no zombie, leftover process or leaked fd after
any of it."""

import concurrent.futures
import os
import re
import socket
import ssl
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TLSConn, abort_socket, recv_plain_all  # noqa: E402


class FaultTest(harness.E2ETest):

    def assert_clean(self, srv, timeout=5):
        """After the clients are done: every worker reaped (no zombie), no
        worker or app process left."""
        srv.wait_idle(timeout)
        self.assertEqual(srv.zombies(), [])
        helpers = {p.pid for p in srv.helpers()}  # keyd: lives as long as the master
        left = [p for p in self.own_processes() if p.pid != srv.pid and p.pid not in helpers]
        self.assertEqual(left, [], "worker/app processes left")

    def test_client_aborts_mid_handshake(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        sock = self.connect(srv.port)
        hello = TLSConn(sock, self.ctx()).first_flight()
        sock.setblocking(True)
        sock.sendall(hello[:len(hello) // 2])
        pid = srv.wait_worker().pid
        abort_socket(sock)
        kind, _ = srv.end_of(pid, timeout=3)
        self.assertEqual(kind, "status")
        self.assertNotRegex(srv.log(), r"tls %d accept" % pid)
        self.assert_no_app_run()
        self.assert_clean(srv)

    def test_client_aborts_mid_transfer(self):
        srv = self.server(self.app_cmd("immediate-echo"))
        conn = self.tls_connect(srv.port)
        conn.send(b"x" * 100000)
        conn.recv_exactly(1000)  # the app is echoing
        pid = srv.worker_pids()[-1]
        conn.abort()
        kind, code = srv.end_of(pid, timeout=3)
        self.assertEqual(kind, "status")  # the app was not killed
        run = self.app_run(timeout=3)
        self.assertTrue(run[-1].startswith("exit "), run)
        self.assert_clean(srv)

    def test_silent_client_handshake_timeout(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["-T", "2"])
        sock = self.connect(srv.port)
        t0 = time.monotonic()
        pid = srv.wait_worker().pid
        srv.end_of(pid, timeout=4)
        elapsed = time.monotonic() - t0
        self.assertLess(elapsed, 3.5, "-T 2 took %.1f s" % elapsed)
        self.assertGreater(elapsed, 1.5, "-T 2 gave up after only %.1f s" % elapsed)
        self.assertEqual(recv_plain_all(sock, 2), b"")  # the server closed
        sock.close()
        self.assert_no_app_run()  # the app never started
        self.assert_clean(srv)

    def test_app_exits_early(self):
        srv = self.server(self.app_cmd("exit-early"))
        conn = self.tls_connect(srv.port)
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        pid = srv.worker_pids()[-1]
        self.assertEqual(srv.end_of(pid), ("status", 3))
        self.assertEqual(self.app_run()[-1], "exit 3")
        self.assert_clean(srv)

    def test_app_never_reads(self):
        srv = self.server(self.app_cmd("never-read", 3))
        conn = self.tls_connect(srv.port)
        t0 = time.monotonic()
        # 10 MiB at an app that sleeps 3 s and exits without reading: the
        # client must be released (close_notify, EOF or reset) soon after
        # the app's exit, not hang.
        try:
            how = conn.duplex(harness.random_chunks(10 << 20, 1), sink=lambda d: None,
                              timeout=8)
        except (ConnectionResetError, BrokenPipeError, ssl.SSLError):
            how = "reset"
        elapsed = time.monotonic() - t0
        conn.close()
        self.assertLess(elapsed, 7, "the client hung %.1f s (ended: %s)" % (elapsed, how))
        pid = srv.worker_pids()[-1]
        try:
            end = srv.end_of(pid)
        except AssertionError as e:
            raise AssertionError("the client ended (%s) after %.1f s, the worker did not: %s"
                                 % (how, elapsed, e)) from None
        self.assertEqual(end, ("status", 0))
        self.assertEqual(self.app_run()[-1], "exit 0")
        self.assert_clean(srv)

    def test_idle_timeout(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["-w", "2"])
        conn = self.tls_connect(srv.port)
        conn.send(b"hello\n")
        self.assertEqual(conn.recv_exactly(6), b"hello\n")
        t0 = time.monotonic()
        got, how = conn.recv_all(timeout=6)
        elapsed = time.monotonic() - t0
        conn.close()
        self.assertEqual(got, b"")
        self.assertLess(elapsed, 3.5, "-w 2 closed after %.1f s" % elapsed)
        self.assertGreater(elapsed, 1.5, "-w 2 closed after only %.1f s" % elapsed)
        pid = srv.worker_pids()[-1]
        srv.end_of(pid)
        self.assertIn("read-eof", self.app_run())  # the app was told, not killed
        self.assert_clean(srv)

    @staticmethod
    def fd_kinds(pid):
        """What each open fd of pid is (socket, pipe, a path), sorted: the
        numbers themselves move, as the pool of keyd channels is used up
        and made anew."""
        d = "/proc/%d/fd" % pid
        return sorted(re.sub(r"\[\d+\]$", "", os.readlink(os.path.join(d, fd)))
                      for fd in os.listdir(d))

    def test_no_fd_leak_over_512_connections(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["-c", "40"])
        # one connection first, so that lazily opened files are counted
        self.one_connection(srv.port, self.ctx())
        srv.wait_idle()
        before = self.fd_kinds(srv.pid)
        ctx = self.ctx()
        # a multiple of KEYD_POOL (engine/keyd.h): keyd channels are made 16
        # at a time, so the master's stock of them is back where it was
        n = 512
        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            results = list(pool.map(lambda _: self.one_connection(srv.port, ctx), range(n)))
        self.assertEqual(results.count(True), n)
        srv.wait_log(r"^tlsserver: end \d+ status 0$", timeout=20, count=n + 1)
        srv.wait_idle(timeout=20)
        after = self.fd_kinds(srv.pid)
        self.assertEqual(after, before, "master fds before %r after %r" % (before, after))
        log = srv.log()
        self.assertEqual(log.count(" status 0\n"), n + 1, "some connection did not end with 0")
        self.assertNotIn("signal", log)
        self.assertEqual(srv.zombies(), [])

    @staticmethod
    def one_connection(port, ctx):
        with socket.create_connection(("127.0.0.1", port), timeout=20) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                s.sendall(b"x")
                if s.recv(1) != b"x":
                    return False
                s.unwrap()
        return True


if __name__ == "__main__":
    harness.main()
