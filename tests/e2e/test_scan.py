"""An external scanner's view of the default configuration.

sslscan (a few seconds per run) against tlsserver with no option and no
$CIPHERS/$CIPHERSUITES, once with the P-256 certificate and once with an
RSA-2048 one: only TLS 1.2 and 1.3 accepted (no SSLv2/3, TLS 1.0/1.1), every
accepted suite a TLS 1.3 suite or ECDHE with AES-GCM or ChaCha20-Poly1305 (no
RSA key exchange, no finite-field DH, no CBC), no client-initiated
renegotiation, not vulnerable to heartbleed, and no worker killed while being
probed.  Compression is checked by hand, since Debian's sslscan is built
without zlib and cannot: a raw TLS 1.2 ClientHello offering DEFLATE must get
a ServerHello choosing the null method.

The full testssl.sh run is `make scan` (scripts/scan.sh), minutes long.
Skipped when sslscan is not installed (scripts/deps.sh scan)."""

import os
import re
import struct
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

OLD_PROTOCOLS = ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1")
AEAD_TLS12 = re.compile(r"^ECDHE-(ECDSA|RSA)-(AES(128|256)-GCM-SHA(256|384)|CHACHA20-POLY1305)$")


def client_hello_offering_deflate():
    """A TLS 1.2 ClientHello with compression methods DEFLATE (1) and null
    (0), ECDHE-AEAD suites for either key type, and the extensions an
    OpenSSL server needs to pick one."""
    suites = [0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA9, 0xCCA8]

    def ext(kind, body):
        return struct.pack("!HH", kind, len(body)) + body

    groups = struct.pack("!H3H", 6, 0x001D, 0x0017, 0x0018)  # x25519, P-256, P-384
    sigalgs = struct.pack("!H4H", 8, 0x0403, 0x0804, 0x0401, 0x0503)
    exts = (ext(10, groups) + ext(11, b"\x01\x00") + ext(13, sigalgs) +
            ext(0xFF01, b"\x00"))
    body = (b"\x03\x03" + os.urandom(32) + b"\x00" +
            struct.pack("!H", 2 * len(suites)) + struct.pack("!%dH" % len(suites), *suites) +
            b"\x02\x01\x00" +  # two compression methods: DEFLATE, null
            struct.pack("!H", len(exts)) + exts)
    hs = b"\x01" + struct.pack("!I", len(body))[1:] + body
    return b"\x16\x03\x01" + struct.pack("!H", len(hs)) + hs


def recv_exactly(sock, n):
    buf = b""
    while len(buf) < n:
        d = sock.recv(n - len(buf))
        if not d:
            raise AssertionError("EOF after %d of %d bytes: %r" % (len(buf), n, buf[:64]))
        buf += d
    return buf


class ScanTest(harness.E2ETest):

    def setUp(self):
        self.sslscan = harness.tool("sslscan")
        super().setUp()

    def default_server(self, cert, key):
        # self.env() scrubs $CIPHERS, $CIPHERSUITES and every other setting
        return self.server(self.app_cmd("immediate-echo"),
                           env=self.env(CERTFILE=cert, KEYFILE=key))

    def sslscan_report(self, port):
        r = subprocess.run([self.sslscan, "--no-colour", "--sni-name=localhost",
                            "127.0.0.1:%d" % port],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        text = r.stdout.decode(errors="replace")
        self.assertEqual(r.returncode, 0, text)
        return text

    def assert_default_profile(self, text, kind):
        for proto in OLD_PROTOCOLS:
            self.assertRegex(text, r"(?m)^%s\s+disabled$" % re.escape(proto), proto)
        for proto in ("TLSv1.2", "TLSv1.3"):
            self.assertRegex(text, r"(?m)^%s\s+enabled$" % re.escape(proto), proto)
        accepted = re.findall(r"(?m)^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)", text)
        protos = {p for p, _ in accepted}
        self.assertEqual(protos, {"TLSv1.2", "TLSv1.3"}, text)
        for proto, name in accepted:
            if proto == "TLSv1.3":
                self.assertTrue(name.startswith("TLS_"), name)
            else:
                self.assertRegex(name, AEAD_TLS12, "not ECDHE + AEAD")
                self.assertIn("-%s-" % kind, name, "a suite for the other key type")
        # our TLS 1.2 list: all three AEADs, for this key type
        self.assertEqual(sum(1 for p, _ in accepted if p == "TLSv1.2"), 3, text)
        self.assertIn("Session renegotiation not supported", text)
        self.assertNotRegex(text, r"(?m)^TLSv1\.\d vulnerable to heartbleed")
        self.assertRegex(text, r"(?m)^TLSv1\.2 not vulnerable to heartbleed$")
        self.assertNotIn("Compression enabled", text)

    def assert_no_compression(self, port):
        sock = self.connect(port)
        sock.sendall(client_hello_offering_deflate())
        head = recv_exactly(sock, 5)
        self.assertEqual(head[0], 22, "not a handshake record: %r" % head)
        (length,) = struct.unpack("!H", head[3:5])
        rec = recv_exactly(sock, length)
        self.assertEqual(rec[0], 2, "not a ServerHello")
        body = rec[4:]
        self.assertEqual(body[:2], b"\x03\x03", "not TLS 1.2")
        sid_len = body[34]
        suite, method = struct.unpack("!HB", body[35 + sid_len:38 + sid_len])
        self.assertIn(suite, (0xC02B, 0xC02C, 0xC02F, 0xC030, 0xCCA9, 0xCCA8))
        self.assertEqual(method, 0, "the server chose compression method %d" % method)
        sock.close()

    def assert_no_worker_killed(self, srv):
        srv.wait_idle()
        ends = re.findall(r"(?m)^tlsserver: end \d+ (status|signal) (\d+)$", srv.log())
        self.assertGreater(len(ends), 10, "sslscan made few connections: %r" % ends)
        self.assertNotIn("signal", [how for how, _ in ends], srv.log())

    def test_ecdsa_p256(self):
        srv = self.default_server(self.cert, self.key)
        self.assert_default_profile(self.sslscan_report(srv.port), "ECDSA")
        self.assert_no_compression(srv.port)
        self.assert_no_worker_killed(srv)

    def test_rsa_2048(self):
        cert, key = self.rsa_cert()
        srv = self.default_server(cert, key)
        self.assert_default_profile(self.sslscan_report(srv.port), "RSA")
        self.assert_no_compression(srv.port)
        self.assert_no_worker_killed(srv)


if __name__ == "__main__":
    harness.main()
