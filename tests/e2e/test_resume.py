"""Resumption across per-connection workers: tickets whose keys the master
owns (rotated every quarter of --ticket-lifetime, older keys kept for
decryption), and a shared HAProxy-format --ticket-keys file so that two
servers (or tlsd processes) resume each other's sessions."""
import base64
import os
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


class ResumeTest(harness.E2ETest):

    def s_client(self, port, *args):
        p = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port,
                            *args], stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
        out = p.stdout.decode(errors="replace")
        for line in out.splitlines():
            if line.startswith(("New,", "Reused,")):
                return line.split(",")[0], out
        return None, out

    def resumes(self, port_out, port_in, *args):
        sess = os.path.join(self.tmp, "sess.pem")
        if os.path.exists(sess):
            os.unlink(sess)
        first, out = self.s_client(port_out, "-sess_out", sess, *args)
        self.assertEqual(first, "New", out)
        second, out = self.s_client(port_in, "-sess_in", sess, *args)
        return second == "Reused"

    def key_file(self, n=3, size=80):
        path = os.path.join(self.tmp, "ticket-keys")
        with open(path, "w") as f:
            for _ in range(n):
                f.write(base64.b64encode(os.urandom(size)).decode() + "\n")
        os.chmod(path, 0o600)
        return path

    def test_across_workers(self):
        srv = self.server(["echo", "hi"])
        for version in ("-tls1_3", "-tls1_2"):
            self.assertTrue(self.resumes(srv.port, srv.port, version), version)
        self.assertRegex(srv.log(), r"(?m) accept TLSv1\.3:\S+ .* resumed \d+ ms$")
        self.assertRegex(srv.log(), r"(?m) accept TLSv1\.2:\S+ .* resumed \d+ ms$")

    def test_shared_key_file_across_servers(self):
        keys = self.key_file()
        a = self.server(["echo", "hi"], ["--ticket-keys", keys])
        b = self.server(["echo", "hi"], ["--ticket-keys", keys])
        self.assertTrue(self.resumes(a.port, b.port))
        self.assertTrue(self.resumes(b.port, a.port, "-tls1_2"))
        short = self.key_file(2, 48)  # AES-128 keys, HAProxy's other size
        c = self.server(["echo", "hi"], ["--ticket-keys", short])
        self.assertTrue(self.resumes(c.port, c.port))
        self.assertFalse(self.resumes(a.port, c.port))  # other keys: full handshake
        d = self.server(["echo", "hi"])  # own random keys
        self.assertFalse(self.resumes(a.port, d.port))

    def test_rotation_keeps_older_keys_for_a_lifetime(self):
        srv = self.server(["echo", "hi"], ["--ticket-lifetime", "4"])  # a new key every 1 s
        sess = os.path.join(self.tmp, "old.pem")
        first, out = self.s_client(srv.port, "-sess_out", sess)
        self.assertEqual(first, "New", out)
        time.sleep(2.2)  # two rotations later, the key is still kept
        second, out = self.s_client(srv.port, "-sess_in", sess)
        self.assertEqual(second, "Reused", out)
        time.sleep(3.0)  # past the lifetime: expired
        third, out = self.s_client(srv.port, "-sess_in", sess)
        self.assertEqual(third, "New", out)

    def test_tlsd_with_a_key_file(self):
        keys = self.key_file()
        env = self.env()
        p = subprocess.Popen([harness.tool("tcpserver"), "-1", "127.0.0.1", "0",
                              harness.binary("tlsd"), "--ticket-keys", keys, "echo", "hi"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, env=env, cwd=self.tmp)
        try:
            port = int(harness.read_line(p.stdout.fileno(), 10))
            self.assertTrue(self.resumes(port, port))  # two tlsd processes
        finally:
            p.terminate()
            p.wait(5)
            p.stdout.close()

    def test_bad_key_files(self):
        bad = os.path.join(self.tmp, "bad")
        for content in ("", "not base64!\n", base64.b64encode(os.urandom(80)).decode() + "\n",
                        base64.b64encode(os.urandom(80)).decode() + "\n" +
                        base64.b64encode(os.urandom(48)).decode() + "\n",
                        base64.b64encode(os.urandom(50)).decode() + "\n" * 2):
            with open(bad, "w") as f:
                f.write(content)
            r = subprocess.run([harness.binary("tlsserver"), "--ticket-keys", bad, "127.0.0.1",
                                "0", "true"], env=self.env(), capture_output=True, timeout=20)
            self.assertEqual(r.returncode, 111, (content, r.stderr))
            self.assertIn(b"ticket key file", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
