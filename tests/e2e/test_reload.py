"""Reload on SIGHUP: new connections get the new certificate and key (keyd
reloads too), a live connection is untouched and loses no byte, and a bad
new file keeps the old configuration with a log line saying why."""
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402


def subject(port):
    p = subprocess.run(["openssl", "s_client", "-ign_eof", "-connect", "127.0.0.1:%d" % port],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=20)
    for line in p.stdout.decode(errors="replace").splitlines():
        if line.startswith("subject="):
            return line.split("CN = ", 1)[-1].strip()
    return None


class ReloadTest(harness.E2ETest):

    def make(self, cn):
        d = os.path.join(self.tmp, cn)
        os.mkdir(d)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-nodes", "-keyout", d + "/key.pem", "-out",
                        d + "/cert.pem", "-days", "2", "-subj", "/CN=" + cn], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)
        return d

    def install(self, d):
        for f in ("cert.pem", "key.pem"):
            shutil.copyfile(os.path.join(d, f), os.path.join(self.tmp, "live-" + f))

    def test_reload(self):
        old, new = self.make("old.example"), self.make("new.example")
        self.install(old)
        env = self.env(CERTFILE=os.path.join(self.tmp, "live-cert.pem"),
                       KEYFILE=os.path.join(self.tmp, "live-key.pem"))
        n = 32 << 20
        srv = self.server(self.app_cmd("source", n, 7), env=env)
        self.assertEqual(subject(srv.port), "old.example")
        keyd_before = [p.pid for p in srv.helpers()]

        # a transfer that runs across the reload: the worker is mid-way,
        # blocked on a client that has not read yet
        ctx = harness.client_context(os.path.join(self.tmp, "live-cert.pem"))
        ctx.check_hostname = False  # CN=old.example, not localhost
        conn = self.tls_connect(srv.port, ctx=ctx)
        first = conn.recv_exactly(1 << 20)
        self.install(new)
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"reloaded: 1 certificate")
        self.assertEqual(subject(srv.port), "new.example")
        rest, how = conn.recv_all(timeout=60)
        self.assertEqual(how, "close_notify")
        self.assertEqual(len(first) + len(rest), n)
        self.assertEqual(hashlib.sha256(first + rest).digest(),
                         hashlib.sha256(harness.xorshift_stream(n, 7)).digest())

        # a broken new file: the old configuration stays
        with open(os.path.join(self.tmp, "live-cert.pem"), "w") as f:
            f.write("garbage\n")
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"reload failed, keeping the running configuration: .*live-cert\.pem")
        self.assertEqual(subject(srv.port), "new.example")
        self.assertTrue(srv.alive())
        # keyd was replaced: the retired one ends once its workers are done
        self.assertEqual(len(keyd_before), 1)
        self.assertTrue(harness.wait_until(
            lambda: keyd_before[0] not in [p.pid for p in srv.helpers()], 5))
        self.assertEqual(len(srv.helpers()), 1)  # the new keyd

    def test_delayed_connection_keeps_the_old_keyd(self):
        # -n: a connection accepted before the reload that starts TLS after
        # it keeps the old configuration, so the old keyd must live until
        # that handshake (the man page says so), sign it with the old key,
        # and only then end
        old, new = self.make("old.example"), self.make("new.example")
        self.install(old)
        env = self.env(CERTFILE=os.path.join(self.tmp, "live-cert.pem"),
                       KEYFILE=os.path.join(self.tmp, "live-key.pem"))
        srv = self.server(self.app_cmd("y-echo"), ["-n"], env=env)
        keyd_before = [p.pid for p in srv.helpers()]
        self.assertEqual(len(keyd_before), 1)
        sock = self.connect(srv.port)
        srv.wait_worker()
        self.install(new)
        os.kill(srv.pid, signal.SIGHUP)
        srv.wait_log(r"reloaded: 1 certificate")
        time.sleep(0.5)
        self.assertIn(keyd_before[0], [p.pid for p in srv.helpers()],
                      "the old keyd ended before the connection it serves started TLS")

        sock.sendall(b"STARTTLS\n")
        self.assertEqual(harness.read_until(sock, b"\n"), b"OK\n")
        # verified against the old certificate alone: the old key signed
        ctx = harness.client_context(os.path.join(old, "cert.pem"))
        ctx.check_hostname = False  # CN=old.example, not localhost
        conn = harness.TLSConn(sock, ctx)
        conn.handshake()
        conn.send(b"after the reload\n")
        self.assertEqual(conn.recv_exactly(17), b"after the reload\n")
        self.assertTrue(harness.wait_until(
            lambda: keyd_before[0] not in [p.pid for p in srv.helpers()], 5),
            "the old keyd outlived the last handshake it had to sign")
        conn.close_notify()
        conn.recv_all()
        conn.close()

    def test_65_reloads_with_connections_waiting(self):
        # each reload retires a keyd that keeps serving the connections
        # accepted before it; 64 can wait so at once: the 65th reload in a
        # row stops the previous keyd at once and says so, and the
        # connections of the earlier ones still get their handshake
        d = self.make("one.example")
        self.install(d)
        env = self.env(CERTFILE=os.path.join(self.tmp, "live-cert.pem"),
                       KEYFILE=os.path.join(self.tmp, "live-key.pem"))
        srv = self.server(self.app_cmd("immediate-echo"), ["-c", "100"], env=env)
        socks = []
        for i in range(65):
            socks.append(self.connect(srv.port))
            harness.wait_until(lambda: len(srv.worker_pids()) >= i + 1, 5)
            os.kill(srv.pid, signal.SIGHUP)
            srv.wait_log(r"reloaded: 1 certificate", timeout=10, count=i + 1)
        srv.wait_log(r"keyd \d+ stopped at once: 64 earlier keyds still serve", timeout=5)
        ctx = harness.client_context(os.path.join(self.tmp, "live-cert.pem"))
        ctx.check_hostname = False  # CN=one.example
        conn = harness.TLSConn(socks[0], ctx)
        conn.handshake()
        conn.send(b"first\n")
        self.assertEqual(conn.recv_exactly(6), b"first\n")
        conn.close_notify()
        for sock in socks:
            sock.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
