"""Data integrity: large pseudo-random streams both ways at once, and each
side ending its direction first (half-close), in immediate and delayed mode.

The app's stream is the xorshift64* generator of tests/apps/xorshift.h;
its SHA-256 is recomputed here, in Python, independently of the C code."""

import hashlib
import os
import socket
import ssl
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TLSConn, field, read_until, xorshift_stream  # noqa: E402

BIG = 64 << 20
SEED = 20240611
_big_hash = None


def setUpModule():
    # the Python generator takes seconds: start it before the transfers
    global _big_hash
    _big_hash = harness.StreamHash(BIG, SEED)


def tearDownModule():
    if _big_hash is not None and _big_hash.proc.poll() is None:
        _big_hash.proc.kill()
        _big_hash.proc.wait(5)


def sha_line(run, name):
    """('count', 'hex') of a `read-sha256`/`wrote-sha256` record."""
    v = field(run, name)
    if v is None:
        raise AssertionError("no %s record in %r" % (name, run))
    n, h = v.split(" ")
    return int(n), h


class Receiver:
    """Hashes and counts what arrives; keeps the first bytes for a readable
    comparison."""

    def __init__(self, keep=65536):
        self.h = hashlib.sha256()
        self.count = 0
        self.head = bytearray()
        self.keep = keep

    def __call__(self, data):
        self.h.update(data)
        self.count += len(data)
        if len(self.head) < self.keep:
            self.head += data[:self.keep - len(self.head)]


class IntegrityTest(harness.E2ETest):

    def open(self, srv, delayed):
        sock = self.connect(srv.port)
        if delayed:
            sock.sendall(b"STARTTLS\n")
            self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        conn = TLSConn(sock, self.ctx(), timeout=60)
        conn.handshake()
        return conn

    def big_duplex(self, delayed):
        mode = "delayed-duplex" if delayed else "duplex"
        srv = self.server(self.app_cmd(mode, BIG, SEED), ["-n"] if delayed else [])
        conn = self.open(srv, delayed)
        sent = hashlib.sha256()
        rx = Receiver()
        how = conn.duplex(harness.random_chunks(BIG, 7, hasher=sent), sink=rx, timeout=90)
        conn.close()
        self.assertEqual(how, "close_notify")
        run = self.app_run(timeout=30)
        self.assertEqual(run[-1], "exit 0", run)
        # client -> app
        self.assertEqual(sha_line(run, "read-sha256"), (BIG, sent.hexdigest()))
        # app -> client: the documented stream, byte for byte
        self.assertEqual(rx.count, BIG)
        self.assertEqual(bytes(rx.head), xorshift_stream(len(rx.head), SEED))
        self.assertEqual(sha_line(run, "wrote-sha256"), (BIG, rx.h.hexdigest()))
        self.assertEqual(rx.h.hexdigest(), _big_hash.result())
        pid = srv.worker_pids()[-1]
        self.assertEqual(srv.end_of(pid), ("status", 0))
        srv.wait_log(r"tls %d done done to-peer %d to-app %d" % (pid, BIG, BIG))

    def test_64MiB_each_way_immediate(self):
        self.big_duplex(False)

    def test_64MiB_each_way_delayed(self):
        self.big_duplex(True)

    def client_closes_first(self, delayed):
        # The client sends 1 MiB and its close_notify before reading a
        # byte; the app's 16 MiB cannot all sit in pipe and socket buffers,
        # so it sees EOF while it still has output to write.  All of that
        # output must arrive, then a close_notify.
        n = 16 << 20
        mode = "delayed-duplex" if delayed else "duplex"
        srv = self.server(self.app_cmd(mode, n, 5), ["-n"] if delayed else [])
        conn = self.open(srv, delayed)
        data = harness.xorshift_stream(1 << 20, 99)
        conn.send(data)
        conn.close_notify()
        rx = Receiver()
        how = conn.duplex(iter(()), close_after_send=False, sink=rx, timeout=60)
        conn.close()
        self.assertEqual(how, "close_notify")
        run = self.app_run()
        self.assertEqual(sha_line(run, "read-sha256"), (len(data), hashlib.sha256(data).hexdigest()))
        self.assertEqual(rx.count, n)
        self.assertEqual(bytes(rx.head), xorshift_stream(len(rx.head), 5))
        self.assertEqual(sha_line(run, "wrote-sha256"), (n, rx.h.hexdigest()))
        self.assertEqual(run[-1], "exit 0")

    def test_client_closes_first_immediate(self):
        self.client_closes_first(False)

    def test_client_closes_first_delayed(self):
        self.client_closes_first(True)

    def app_closes_first(self, delayed):
        # source: the app writes N bytes, closes its output and exits
        # without reading a byte.  The client has sent 1 MiB that nobody
        # will read and reads nothing until the app is gone (a pipelining
        # client): all N bytes must still arrive, then a close_notify.
        n = 1 << 20
        mode = "delayed-source" if delayed else "source"
        srv = self.server(self.app_cmd(mode, n, 11), ["-n"] if delayed else [])
        conn = self.open(srv, delayed)
        try:
            conn.send(harness.xorshift_stream(1 << 20, 3), timeout=5)
        except OSError:
            pass  # the server may refuse more: not what is checked here
        run = self.app_run()
        self.assertEqual(sha_line(run, "wrote-sha256")[0], n)
        self.assertEqual(run[-1], "exit 0")
        pid = srv.worker_pids()[-1]
        srv.end_of(pid)
        rx = Receiver()
        how = conn.duplex(iter(()), close_after_send=False, sink=rx, timeout=30)
        conn.close()
        log = [l for l in srv.log().splitlines() if "tls %d " % pid in l]
        self.assertEqual(rx.count, n, "the client got %d of the %d bytes the app wrote, "
                         "then %s; server: %r" % (rx.count, n, how, log))
        self.assertEqual(bytes(rx.head), xorshift_stream(len(rx.head), 11))
        self.assertEqual(sha_line(run, "wrote-sha256"), (n, rx.h.hexdigest()))
        self.assertEqual(how, "close_notify")

    def app_closes_first_while_sending(self, delayed):
        # The same, with the client sending and reading at once.
        n = 4 << 20
        mode = "delayed-source" if delayed else "source"
        srv = self.server(self.app_cmd(mode, n, 11), ["-n"] if delayed else [])
        conn = self.open(srv, delayed)
        rx = Receiver()
        how = conn.duplex(harness.random_chunks(8 << 20, 3), close_after_send=False,
                          sink=rx, timeout=60)
        conn.close()
        run = self.app_run()
        self.assertEqual(rx.count, n, "the client got %d of %d bytes, then %s"
                         % (rx.count, n, how))
        self.assertEqual(bytes(rx.head), xorshift_stream(len(rx.head), 11))
        self.assertEqual(sha_line(run, "wrote-sha256"), (n, rx.h.hexdigest()))
        self.assertEqual(how, "close_notify")
        self.assertEqual(run[-1], "exit 0")
        srv.wait_idle()

    def test_app_closes_first_while_client_sends_immediate(self):
        self.app_closes_first_while_sending(False)

    def test_app_closes_first_immediate(self):
        self.app_closes_first(False)

    def test_app_closes_first_delayed(self):
        self.app_closes_first(True)

    def test_other_direction_goes_on_after_app_close(self):
        # The app ends its output (close_notify to the client); the client
        # only then sends its data: the app still gets all of it.
        n = 1 << 20
        srv = self.server(self.app_cmd("duplex", n, 13))
        conn = self.open(srv, False)
        rx = Receiver()
        self.assertEqual(conn.duplex(iter(()), close_after_send=False, sink=rx), "close_notify")
        self.assertEqual(rx.count, n)
        data = harness.xorshift_stream(3 << 20, 77)
        conn.send(data)
        conn.close_notify()
        conn.close()
        run = self.app_run()
        self.assertEqual(sha_line(run, "read-sha256"), (len(data), hashlib.sha256(data).hexdigest()))
        self.assertEqual(sha_line(run, "wrote-sha256"), (n, rx.h.hexdigest()))

    def test_tcp_half_close_option(self):
        # --tcp-half-close: the app's EOF becomes a TCP FIN without
        # close_notify; the other direction still works.
        n = 1 << 20
        srv = self.server(self.app_cmd("duplex", n, 17), ["--tcp-half-close"])
        conn = self.open(srv, False)
        rx = Receiver()
        self.assertEqual(conn.duplex(iter(()), close_after_send=False, sink=rx), "eof")
        self.assertEqual(rx.count, n)
        data = b"after the FIN\n" * 1000
        conn.send(data)
        conn.close_notify()
        conn.close()
        run = self.app_run()
        self.assertEqual(sha_line(run, "read-sha256"), (len(data), hashlib.sha256(data).hexdigest()))
        self.assertEqual(sha_line(run, "wrote-sha256"), (n, rx.h.hexdigest()))

    def bare_eof(self, opts):
        """The client sends 40000 bytes right behind its Finished, then a
        TCP FIN without
        close_notify, then reads to the end.  Returns (app run, worker pid,
        how the client's read side ended)."""
        srv = self.server(self.app_cmd("sink"), opts)
        sock = self.connect(srv.port)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
        conn = TLSConn(sock, self.ctx())
        # Our Finished, the data and the FIN leave in one TCP segment (cork;
        # loopback's MSS is 64 KiB), so that the worker finds all of it
        # waiting at once: the outcome does not depend on scheduling.
        conn.handshake(hold_finished=True)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CORK, 1)
        data = harness.xorshift_stream(40000, 5)
        conn.send(data)
        sock.shutdown(socket.SHUT_WR)  # FIN, no close_notify
        try:
            got, how = conn.recv_all()
        except ssl.SSLError as e:  # -J: the server may say so with an alert
            got, how = b"", "alert %s" % e
        conn.close()
        self.assertEqual(got, b"")
        run = self.app_run()
        pid = srv.worker_pids()[-1]
        srv.end_of(pid)
        self.assertEqual(sha_line(run, "read-sha256"),
                         (len(data), hashlib.sha256(data).hexdigest()),
                         "the app did not get the bytes that arrived before the EOF; "
                         "server: %r" % [l for l in srv.log().splitlines() if "tls %d " % pid in l])
        return run, srv, pid, how

    def test_peer_eof_without_close_notify(self):
        # Without -J a bare TCP EOF from the client is an ordinary end: the
        # app gets every byte, then EOF.
        run, srv, pid, how = self.bare_eof([])
        self.assertEqual(how, "close_notify")
        self.assertNotRegex(srv.log(), r"tls %d ended" % pid)

    def test_strict_close_J(self):
        # -J: the bare EOF is logged as an error.  The records that came
        # before it were complete and authenticated: the app still gets
        # them, then EOF.
        run, srv, pid, how = self.bare_eof(["-J"])
        srv.wait_log(r"tls %d .*close_notify" % pid)


if __name__ == "__main__":
    harness.main()
