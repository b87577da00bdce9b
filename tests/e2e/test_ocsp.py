"""OCSP stapling from a DER response in <certfile>.ocsp, stapled when the
client asks (s_client -status), re-read on reload; a broken file is refused
at start-up and keeps the old configuration on reload."""
import os
import signal
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def run(*args, **kw):
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                   timeout=60, **kw)


class OCSPTest(harness.E2ETest):

    def setUp(self):
        super().setUp()
        d = self.tmp
        j = lambda n: os.path.join(d, n)  # noqa: E731
        run("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", j("ca.key"), "-out", j("ca.pem"), "-days", "2", "-subj",
            "/CN=OCSP test CA", "-addext", "basicConstraints=critical,CA:TRUE")
        run("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
            "-nodes", "-keyout", j("srv.key"), "-out", j("srv.csr"), "-subj", "/CN=localhost")
        with open(j("ext"), "w") as f:
            f.write("subjectAltName=DNS:localhost\n")
        run("openssl", "x509", "-req", "-in", j("srv.csr"), "-CA", j("ca.pem"), "-CAkey",
            j("ca.key"), "-CAcreateserial", "-out", j("srv.pem"), "-days", "2", "-extfile",
            j("ext"))
        self.srv_cert, self.srv_key = j("srv.pem"), j("srv.key")

    def make_response(self, status="V"):
        d = self.tmp
        j = lambda n: os.path.join(d, n)  # noqa: E731
        serial = subprocess.run(["openssl", "x509", "-in", self.srv_cert, "-noout", "-serial"],
                                capture_output=True, text=True, check=True).stdout
        serial = serial.strip().split("=", 1)[1]
        with open(j("index.txt"), "w") as f:
            f.write("%s\t301231235959Z\t%s\t%s\tunknown\t/CN=localhost\n"
                    % (status, "261126000000Z" if status == "R" else "", serial))
        run("openssl", "ocsp", "-issuer", j("ca.pem"), "-cert", self.srv_cert, "-no_nonce",
            "-reqout", j("req.der"))
        run("openssl", "ocsp", "-index", j("index.txt"), "-rsigner", j("ca.pem"), "-rkey",
            j("ca.key"), "-CA", j("ca.pem"), "-reqin", j("req.der"), "-respout",
            self.srv_cert + ".ocsp", "-ndays", "1")

    def status(self, port):
        p = subprocess.run(["openssl", "s_client", "-status", "-connect", "127.0.0.1:%d" % port],
                           stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        return p.stdout.decode(errors="replace")

    def test_stapling_and_reload(self):
        env = self.env(CERTFILE=self.srv_cert, KEYFILE=self.srv_key)
        srv = self.server(["true"], env=env)
        self.assertIn("OCSP response: no response sent", self.status(srv.port))
        self.make_response("V")
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"reloaded")
        out = self.status(srv.port)
        self.assertIn("OCSP Response Status: successful", out)
        self.assertIn("Cert Status: good", out)
        self.make_response("R")  # revoked: the new response is stapled after a reload
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"reloaded", count=2)
        self.assertIn("Cert Status: revoked", self.status(srv.port))
        with open(self.srv_cert + ".ocsp", "wb") as f:
            f.write(b"not DER")
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"reload failed, keeping the running configuration: .*\.ocsp: not a DER")
        self.assertIn("Cert Status: revoked", self.status(srv.port))

    def test_broken_response_at_start(self):
        with open(self.srv_cert + ".ocsp", "wb") as f:
            f.write(b"\x30\x03garbage")
        r = subprocess.run([harness.binary("tlsserver"), "127.0.0.1", "0", "true"],
                           env=self.env(CERTFILE=self.srv_cert, KEYFILE=self.srv_key),
                           capture_output=True, timeout=20)
        self.assertEqual(r.returncode, 111)
        self.assertIn(b"srv.pem.ocsp", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
