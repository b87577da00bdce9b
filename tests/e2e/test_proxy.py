"""PROXY protocol v1/v2 on input (--proxy): behind a load balancer the
app's TCPREMOTEIP/TCPREMOTEPORT (and TCPLOCALIP/PORT) are the real
client's; a connection without a valid header is refused and its app never
runs.  The header is read by the locked-in worker, exactly, so TLS bytes
sent right behind it still make the handshake."""
import os
import socket
import ssl
import struct
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import field  # noqa: E402

SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def v2(src, dst, sport, dport, family=socket.AF_INET, command=0x21):
    fam = 0x11 if family == socket.AF_INET else 0x21
    block = (socket.inet_pton(family, src) + socket.inet_pton(family, dst) +
             struct.pack(">HH", sport, dport))
    return SIG + bytes([command, fam]) + struct.pack(">H", len(block)) + block


class ProxyTest(harness.E2ETest):

    def run_client(self, port, header):
        sock = self.connect(port)
        sock.sendall(header)
        ctx = self.ctx()
        tls = ctx.wrap_socket(sock, server_hostname="localhost")
        tls.sendall(b"ping\n")
        got = b""
        while not got.endswith(b"ping\n"):
            data = tls.recv(100)
            if not data:
                break
            got += data
        tls.close()
        return got

    def env_seen(self):
        run = self.app_run()
        return dict(kv.split("=", 1) for kv in (field(run, "env") or "").split() if "=" in kv)

    def test_v1_tcp4(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["--proxy"])
        got = self.run_client(srv.port, b"PROXY TCP4 192.0.2.1 198.51.100.7 56324 465\r\n")
        self.assertEqual(got, b"ping\n")
        env = self.env_seen()
        self.assertEqual(env.get("TCPREMOTEIP"), "192.0.2.1", env)
        self.assertEqual(env.get("TCPREMOTEPORT"), "56324")
        self.assertEqual(env.get("TCPLOCALIP"), "198.51.100.7")
        self.assertEqual(env.get("SSLREMOTEIP"), "192.0.2.1")
        self.assertEqual(env.get("PROTO"), "TCP")
        srv.wait_log(r"proxy: client 192\.0\.2\.1:56324")

    def test_v2_tcp6(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["--proxy"])
        got = self.run_client(srv.port, v2("2001:db8::1", "2001:db8::2", 40000, 993,
                                           socket.AF_INET6))
        self.assertEqual(got, b"ping\n")
        env = self.env_seen()
        self.assertEqual(env.get("TCPREMOTEIP"), "2001:db8::1", env)
        self.assertEqual(env.get("TCP6REMOTEIP"), "2001:db8::1")
        self.assertEqual(env.get("PROTO"), "TCP6")

    def test_v2_local_keeps_the_socket_address(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["--proxy"])
        header = SIG + bytes([0x20, 0x00]) + b"\x00\x00"
        self.assertEqual(self.run_client(srv.port, header), b"ping\n")
        self.assertEqual(self.env_seen().get("TCPREMOTEIP"), "127.0.0.1")

    def test_delayed_mode(self):
        srv = self.server(self.app_cmd("y-echo"), ["-n", "--proxy"])
        sock = self.connect(srv.port)
        sock.sendall(b"PROXY TCP4 203.0.113.9 198.51.100.7 1234 25\r\nSTARTTLS\n")
        self.assertEqual(harness.read_until(sock, b"\n"), b"OK\n")
        conn = harness.TLSConn(sock, self.ctx())
        conn.handshake()
        conn.send(b"hello\n")
        self.assertEqual(conn.recv_exactly(6), b"hello\n")
        conn.close_notify()
        conn.recv_all()
        conn.close()
        self.assertEqual(self.env_seen().get("TCPREMOTEIP"), "203.0.113.9")

    def test_without_a_valid_header_refused(self):
        srv = self.server(self.app_cmd("immediate-echo"), ["--proxy"])
        for header in (b"", b"PROXY TCP4 1.2.3 4.5.6.7 1 2\r\n", b"GET / HTTP/1.1\r\n\r\n"):
            sock = self.connect(srv.port)
            sock.sendall(header)
            with self.assertRaises((ssl.SSLError, OSError, ConnectionError)):
                ctx = self.ctx()
                tls = ctx.wrap_socket(sock, server_hostname="localhost")
                tls.sendall(b"x")
                if not tls.recv(1):
                    raise ConnectionError("closed")
            sock.close()
        srv.wait_log(r"proxy: refused", count=3)
        self.assert_no_app_run()


if __name__ == "__main__":
    unittest.main(verbosity=2)
