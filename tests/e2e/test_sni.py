"""SNI: several certificates (s6-tlsd's CERTFILE:name, a certificate
directory), first-label wildcards, a default, --sni-strict, and dual RSA +
ECDSA certificates for one name (the client gets the best it supports)."""
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def make_pem(path, kind, cn, sans):
    """One PEM file holding a self-signed certificate and its key."""
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
              else ["-newkey", "rsa:2048"])
    key, cert = path + ".key", path + ".crt"
    subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                    "-days", "2", "-subj", "/CN=" + cn, "-addext", "subjectAltName=" + sans],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
    with open(path, "wb") as out:
        for part in (cert, key):
            with open(part, "rb") as f:
                out.write(f.read())
        os.chmod(path, 0o600)
    return cert, key


def s_client(port, *args):
    """Runs openssl s_client; returns (subject CN, peer signature type, output)."""
    # -ign_eof: read until the server closes, so that the app's output arrives
    p = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port,
                        *args],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
    cn = sig = None
    for line in out.splitlines():
        if line.startswith("subject=") and cn is None:
            cn = line.split("CN = ", 1)[-1].strip()
        if line.startswith("Peer signature type:"):
            sig = line.split(":", 1)[1].strip()
    return cn, sig, out


class SNITest(harness.E2ETest):

    def certdir(self):
        d = os.path.join(self.tmp, "certs")
        os.mkdir(d)
        make_pem(os.path.join(d, "mail-ec.pem"), "ec", "mail.example.org",
                 "DNS:mail.example.org,DNS:smtp.example.org")
        make_pem(os.path.join(d, "mail-rsa.pem"), "rsa", "mail.example.org",
                 "DNS:mail.example.org")
        make_pem(os.path.join(d, "wild.pem"), "ec", "wild.example.net", "DNS:*.example.net")
        return d

    def test_certdir_names_wildcards_default_and_dual(self):
        srv = self.server(["sh", "-c", 'echo "sni=$SSL_TLS_SNI_SERVERNAME"'],
                          ["-s", "--certdir", self.certdir()])
        cases = [
            (["-servername", "mail.example.org"], "mail.example.org", "ECDSA"),
            (["-servername", "MAIL.Example.ORG"], "mail.example.org", "ECDSA"),
            (["-servername", "smtp.example.org"], "mail.example.org", "ECDSA"),
            # a client that can only verify RSA gets the RSA certificate
            (["-servername", "mail.example.org", "-sigalgs", "RSA-PSS+SHA256"],
             "mail.example.org", "RSA-PSS"),
            (["-servername", "mail.example.org", "-tls1_2", "-cipher",
              "ECDHE-RSA-AES128-GCM-SHA256"], "mail.example.org", "RSA-PSS"),
            (["-servername", "a.example.net"], "wild.example.net", "ECDSA"),
            (["-servername", "b.a.example.net"], "localhost", "ECDSA"),  # one label only
            (["-servername", "unknown.example.com"], "localhost", "ECDSA"),
            ([], "localhost", "ECDSA"),
        ]
        for args, cn, sig in cases:
            got_cn, got_sig, out = s_client(srv.port, *args)
            self.assertEqual(got_cn, cn, "%r:\n%s" % (args, out))
            self.assertEqual(got_sig, sig, "%r:\n%s" % (args, out))
            if args[:1] == ["-servername"]:
                self.assertIn("sni=" + args[1] + "\n", out)  # as the client sent it

    def test_sni_strict_refuses_unknown_names(self):
        srv = self.server(["echo", "hello"], ["--sni-strict", "--certdir", self.certdir()])
        cn, _, out = s_client(srv.port, "-servername", "unknown.example.com")
        self.assertIsNone(cn, out)
        self.assertRegex(out, r"alert number 112|unrecognized name", out)
        cn, _, out = s_client(srv.port, "-servername", "a.example.net")
        self.assertEqual(cn, "wild.example.net", out)
        cn, _, out = s_client(srv.port)  # no SNI at all: the default
        self.assertEqual(cn, "localhost", out)
        cn, _, out = s_client(srv.port, "-servername", "localhost")  # the default's own name
        self.assertEqual(cn, "localhost", out)

    def test_s6_certfile_name_pairs(self):
        d = os.path.join(self.tmp, "pairs")
        os.mkdir(d)
        cert, key = make_pem(os.path.join(d, "a.pem"), "rsa", "a.example.org", "DNS:a.example.org")
        env = self.env(**{"CERTFILE:a.example.org": cert, "KEYFILE:a.example.org": key})
        srv = self.server(["echo", "hello"], env=env)
        cn, sig, out = s_client(srv.port, "-servername", "a.example.org")
        self.assertEqual((cn, sig), ("a.example.org", "RSA-PSS"), out)
        cn, sig, out = s_client(srv.port, "-servername", "b.example.org")
        self.assertEqual(cn, "localhost", out)

    def test_certdir_errors(self):
        p = subprocess.run([harness.binary("tlsserver"), "--certdir", "/nonexistent/certs",
                            "127.0.0.1", "0", "true"], env=self.env(), capture_output=True,
                           timeout=20)
        self.assertEqual(p.returncode, 100)
        self.assertIn(b"/nonexistent/certs", p.stderr)
        d = os.path.join(self.tmp, "nokey")
        os.mkdir(d)
        cert, _ = make_pem(os.path.join(d, "x.pem"), "ec", "x.example.org", "DNS:x.example.org")
        with open(os.path.join(d, "x.pem"), "wb") as out, open(cert, "rb") as f:
            out.write(f.read())  # a certificate without its key
        p = subprocess.run([harness.binary("tlsserver"), "--certdir", d, "127.0.0.1", "0",
                            "true"], env=self.env(), capture_output=True, timeout=20)
        self.assertEqual(p.returncode, 111)
        self.assertIn(b"x.pem", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
