"""Client certificates: -m (require a valid one), -z (require one that
names the client's address), --client-cert-optional (ask, don't require),
-Z (none); CAFILE, CADIR, CCAFILE; the SSL_CLIENT_* variables for the app
(-s and the Y reply, short names early, the PEM only with
--client-cert-pem); and the handshake log line."""
import hashlib
import os
import re
import ssl
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TLSConn, field  # noqa: E402


def run(*args):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60)


class ClientCertTest(harness.E2ETest):

    def setUp(self):
        super().setUp()
        d = self.tmp
        self.ca, self.cakey = os.path.join(d, "ca.pem"), os.path.join(d, "ca.key")
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.cakey, "-out", self.ca, "-days", "2", "-subj", "/CN=Test CA",
            "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=keyCertSign")
        self.alice = self.client_cert("alice", "/CN=alice/emailAddress=alice@example.org",
                                      "IP:127.0.0.1")
        self.bob = self.client_cert("bob", "/CN=bob", "DNS:bob.example.org")
        self.rogue = (os.path.join(d, "rogue.pem"), os.path.join(d, "rogue.key"))
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", self.rogue[1], "-out", self.rogue[0], "-days", "2",
            "-subj", "/CN=alice")

    def client_cert(self, name, subj, san):
        key, csr, crt = (os.path.join(self.tmp, name + s) for s in (".key", ".csr", ".pem"))
        ext = os.path.join(self.tmp, name + ".ext")
        with open(ext, "w") as f:
            f.write("subjectAltName=%s\nextendedKeyUsage=clientAuth\n" % san)
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", key, "-out", csr, "-subj", subj)
        run("openssl", "x509", "-req", "-in", csr, "-CA", self.ca, "-CAkey", self.cakey,
            "-CAcreateserial", "-out", crt, "-days", "2", "-extfile", ext)
        return crt, key

    def env_app(self):
        return ["sh", "-c", 'for v in SSL_CLIENT_S_DN_CN SSL_CLIENT_S_DN_Email SSL_CLIENT_VERIFY '
                'SSL_CLIENT_I_DN SSL_PEER_CERT_HASH SSL_CLIENT_CERT; do '
                'eval "x=\\${$v-unset}"; echo "$v=$(printf %s "$x" | head -1)"; done']

    def s_client(self, port, cert=None):
        args = ["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port]
        if cert:
            args += ["-cert", cert[0], "-key", cert[1]]
        p = subprocess.run(args, stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        out = p.stdout.decode(errors="replace") + p.stderr.decode(errors="replace")
        return dict(re.findall(r"(?m)^\s*(SSL_\w+)=(.*)$", out)), out

    def test_require(self):
        srv = self.server(self.env_app(), ["-s", "-m"], env=self.env(CAFILE=self.ca))
        got, out = self.s_client(srv.port, self.alice)
        self.assertEqual(got.get("SSL_CLIENT_S_DN_CN"), "alice", out)
        self.assertEqual(got.get("SSL_CLIENT_S_DN_Email"), "alice@example.org")
        self.assertEqual(got.get("SSL_CLIENT_VERIFY"), "SUCCESS")
        self.assertEqual(got.get("SSL_CLIENT_I_DN"), "CN=Test CA")
        der = ssl.PEM_cert_to_DER_cert(open(self.alice[0]).read())
        self.assertEqual(got.get("SSL_PEER_CERT_HASH"), "SHA256:" + hashlib.sha256(der).hexdigest())
        self.assertEqual(got.get("SSL_CLIENT_CERT"), "unset")  # PEM only on request
        self.assertIn("Acceptable client certificate CA names\nCN = Test CA", out)
        self.assertRegex(srv.log(), r"(?m) accept TLSv1\.3:\S+ sni=\S+ alpn=- client=alice full ")
        for cert in (None, self.rogue):  # none, or one we do not trust: no app at all
            got, out = self.s_client(srv.port, cert)
            self.assertNotIn("SSL_CLIENT_VERIFY", got, out)
        self.assertRegex(srv.log(), r"certificate")

    def test_match_address(self):
        srv = self.server(self.env_app(), ["-s", "-z"], env=self.env(CAFILE=self.ca))
        got, out = self.s_client(srv.port, self.alice)  # SAN IP:127.0.0.1
        self.assertEqual(got.get("SSL_CLIENT_VERIFY"), "SUCCESS", out)
        got, out = self.s_client(srv.port, self.bob)  # valid, but names no address
        self.assertNotIn("SSL_CLIENT_VERIFY", got, out)
        srv.wait_log(r"client certificate does not name 127\.0\.0\.1")

    def test_optional_cadir_and_pem(self):
        cadir = os.path.join(self.tmp, "cadir")
        os.mkdir(cadir)
        with open(self.ca) as f, open(os.path.join(cadir, "ca.crt"), "w") as g:
            g.write(f.read())
        srv = self.server(self.env_app(), ["-s", "--client-cert-optional", "--client-cert-pem"],
                          env=self.env(CADIR=cadir, CCAFILE="-"))
        got, out = self.s_client(srv.port)
        self.assertEqual(got.get("SSL_CLIENT_VERIFY"), "NONE", out)
        self.assertEqual(got.get("SSL_CLIENT_S_DN_CN"), "unset")
        self.assertNotIn("Acceptable client certificate CA names\nCN", out)  # CCAFILE=-
        got, out = self.s_client(srv.port, self.bob)
        self.assertEqual(got.get("SSL_CLIENT_VERIFY"), "SUCCESS", out)
        self.assertEqual(got.get("SSL_CLIENT_CERT"), "-----BEGIN CERTIFICATE-----")
        got, out = self.s_client(srv.port, self.rogue)  # presented and invalid: refused
        self.assertNotIn("SSL_CLIENT_VERIFY", got, out)

    def test_y_reply_order_in_delayed_mode(self):
        srv = self.server(self.app_cmd("Y-echo"), ["-n", "-m"], env=self.env(CAFILE=self.ca))
        sock = self.connect(srv.port)
        sock.sendall(b"STARTTLS\n")
        self.assertEqual(harness.read_until(sock, b"\n") if hasattr(harness, "read_until")
                         else sock.recv(3), b"OK\n")
        ctx = self.ctx()
        ctx.load_cert_chain(*self.alice)
        conn = TLSConn(sock, ctx)
        conn.handshake()
        conn.send(b"x\n")
        self.assertEqual(conn.recv_exactly(2), b"x\n")
        conn.close_notify()
        conn.recv_all()
        conn.close()
        run_ = self.app_run()
        raw = bytes.fromhex(field(run_, "vars-raw"))
        names = [e.split(b"=", 1)[0].decode() for e in raw[:-2].split(b"\0")]
        self.assertEqual(names[:2], ["SSL_PROTOCOL", "SSL_CIPHER"], names)
        # the short client-certificate names come right after them
        self.assertEqual(names[2:6], ["SSL_CLIENT_S_DN_CN", "SSL_CLIENT_S_DN_Email",
                                      "SSL_CLIENT_S_DN", "SSL_CLIENT_VERIFY"], names)
        self.assertNotIn("SSL_CLIENT_CERT", names)

    def test_needs_a_ca(self):
        for opt in ("-m", "-z", "--client-cert-optional"):
            p = subprocess.run([harness.binary("tlsserver"), opt, "127.0.0.1", "0", "true"],
                               env=self.env(CAFILE=None, CADIR=None), capture_output=True,
                               timeout=20)
            self.assertEqual(p.returncode, 100, p.stderr)
            self.assertIn(b"CAFILE", p.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
