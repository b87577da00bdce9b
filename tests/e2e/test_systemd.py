"""systemd socket activation (LISTEN_FDS) for tlsserver, with
systemd-socket-activate standing in for systemd; and tlsd the Accept=yes
way (one connection per process on fds 0/1)."""
import os
import shutil
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

ACTIVATE = shutil.which("systemd-socket-activate")


def s_client(port):
    p = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    return p.stdout.decode(errors="replace")


@unittest.skipIf(ACTIVATE is None, "systemd-socket-activate is not installed")
class SystemdTest(harness.E2ETest):

    def start(self, argv):
        port = harness.free_port()
        err = open(os.path.join(self.tmp, "activate.err"), "wb")
        # systemd-socket-activate passes no environment but what -E names
        keep = [a for name in ("CERTFILE", "KEYFILE", "PATH") for a in ("-E", name)]
        p = subprocess.Popen([ACTIVATE, "-l", "127.0.0.1:%d" % port, *keep, *argv],
                             stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err,
                             env=self.env(), cwd=self.tmp)
        err.close()

        def stop():
            p.terminate()
            p.wait(5)
        self.addCleanup(stop)
        self.assertTrue(harness.wait_until(lambda: harness.port_listening(port), 5))
        return port

    def log(self):
        with open(os.path.join(self.tmp, "activate.err"), "rb") as f:
            return f.read().decode(errors="replace")

    def test_tlsserver_uses_the_passed_socket(self):
        app = ["sh", "-c", 'echo "fds=${LISTEN_FDS-none} proto=$PROTO"']
        port = self.start([harness.binary("tlsserver"), "-v", "0", "0", *app])
        for _ in range(2):  # the master keeps accepting on it
            out = s_client(port)
            self.assertIn("fds=none proto=TCP", out, self.log())
        self.assertIn("listening on the socket systemd passed", self.log())

    def test_tlsd_accept_yes(self):
        port = self.start(["--accept", harness.binary("tlsd"), "sh", "-c",
                           'echo "remote=$TCPREMOTEIP"'])
        out = s_client(port)
        self.assertIn("remote=127.0.0.1", out, self.log())

    def test_password_fd_conflict(self):
        r = subprocess.run([harness.binary("tlsserver"), "-3", "0", "0", "true"],
                           env=self.env(LISTEN_FDS="1", LISTEN_PID="1"), capture_output=True,
                           timeout=20)
        self.assertEqual(r.returncode, 100)
        self.assertIn(b"-3", r.stderr)


if __name__ == "__main__":
    unittest.main(verbosity=2)
