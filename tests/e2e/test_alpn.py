"""ALPN: --alpn lists the protocols in the server's order of preference;
the chosen one reaches the app (SSL_ALPN_PROTOCOL, with -s) and the log; a
client offering none of them gets no_application_protocol; a client
offering no ALPN at all is served without."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def s_client(port, *args):
    p = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port,
                        *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    return p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")


class ALPNTest(harness.E2ETest):

    def test_alpn(self):
        srv = self.server(["sh", "-c", 'echo "alpn=${SSL_ALPN_PROTOCOL-none}"'],
                          ["-s", "--alpn", "h2,http/1.1"])
        out = s_client(srv.port, "-alpn", "http/1.1,h2")
        self.assertIn("ALPN protocol: h2", out)  # the server's preference wins
        self.assertIn("alpn=h2\n", out)
        out = s_client(srv.port, "-alpn", "http/1.1")
        self.assertIn("ALPN protocol: http/1.1", out)
        self.assertIn("alpn=http/1.1\n", out)
        self.assertRegex(srv.log(), r"(?m) accept TLSv1\.3:\S+ sni=\S+ alpn=http/1\.1 client=- full ")
        out = s_client(srv.port)
        self.assertIn("No ALPN negotiated", out)
        self.assertIn("alpn=none\n", out)
        out = s_client(srv.port, "-alpn", "smtp")
        self.assertRegex(out, r"alert number 120|no application protocol")
        self.assertNotIn("alpn=", out)

    def test_bad_alpn_option(self):
        for bad in ("", "h2,", ",h2", "h2,,x", "a b", "x" * 256):
            p = subprocess.run([harness.binary("tlsserver"), "--alpn", bad, "127.0.0.1", "0",
                                "true"], env=self.env(), capture_output=True, timeout=20)
            self.assertEqual(p.returncode, 100, (bad, p.stderr))
            self.assertIn(b"--alpn", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
