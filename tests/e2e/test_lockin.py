"""The worker's lock-in, seen from outside on a live connection.

/proc/<worker>: ids, capabilities, no_new_privs, seccomp, root directory,
rlimits, not dumpable.  (That no copy of the private key is in its memory is
test_keyd.py's business.)  Then tlsserver-testhooks makes a real, locked-in
worker attempt forbidden calls: each must kill it with SIGSYS, and the master
must go on serving.

The ids, the chroot and the bounding set need root (the server only drops ids
and chroots when started as root); the rest holds for any user."""

import os
import re
import signal
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TLSConn, proc_status, recv_plain_all  # noqa: E402

CHROOT = "/run/ucspi-tls/empty"
NOBODY = 65534
ZERO_CAPS = "0000000000000000"


def limits(pid):
    """/proc/PID/limits as {name: (soft, hard)}."""
    out = {}
    with open("/proc/%d/limits" % pid) as f:
        next(f)
        for line in f:
            m = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
            if m:
                out[m.group(1)] = (m.group(2), m.group(3))
    return out


class LockInTest(harness.E2ETest):

    def require_root(self, why="only a server started as root changes ids, chroots "
                                "and empties the capability bounding set"):
        if not harness.IS_ROOT:
            self.skipTest("needs root: " + why)

    def live_connection(self, opts=(), env=None, name="tlsserver"):
        """A server with an idle, established connection running
        immediate-echo; returns (server, conn, worker pid, app pid)."""
        srv = self.server(self.app_cmd("immediate-echo"), opts, env=env, name=name)
        conn = self.tls_connect(srv.port)
        conn.send(b"ping\n")
        self.assertEqual(conn.recv_exactly(5), b"ping\n")  # the app runs
        worker = srv.wait_worker().pid
        apps = harness.children(worker)
        self.assertEqual(len(apps), 1, "the worker's children: %r" % apps)
        app = apps[0].pid
        self.assertEqual(self.records()[0][0], "pid %d" % app)
        return srv, conn, worker, app

    def end(self, srv, conn):
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        srv.wait_idle()

    def assert_ids(self, status, uid, gid):
        self.assertEqual(status["Uid"].split(), [str(uid)] * 4, status["Uid"])
        self.assertEqual(status["Gid"].split(), [str(gid)] * 4, status["Gid"])
        self.assertIn(status["Groups"].split(), ([], [str(gid)]), status["Groups"])

    def test_worker_sandbox(self):
        # what holds for any user: no_new_privs, seccomp, no capability in
        # effect, rlimits, not dumpable; the app is under none of it
        srv, conn, worker, app = self.live_connection()
        st = proc_status(worker)
        for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
            self.assertEqual(st[cap], ZERO_CAPS, cap)
        self.assertEqual(st["NoNewPrivs"], "1")
        self.assertEqual(st["Seccomp"], "2")
        # not dumpable: its /proc files belong to root, not to its uid
        self.assertEqual(os.stat("/proc/%d/status" % worker).st_uid, 0)
        lim = limits(worker)
        self.assertEqual(lim["Max processes"], ("0", "0"))
        self.assertEqual(lim["Max core file size"], ("0", "0"))
        self.assertLessEqual(int(lim["Max open files"][1]), 64)
        # (Max file size is left alone while stderr is a regular file, as
        # here: the worker's log lines go there; sandbox/lockin.c)
        ast = proc_status(app)
        self.assertEqual(ast["Seccomp"], "0")
        self.assertEqual(os.readlink("/proc/%d/root" % app), "/")
        self.end(srv, conn)

    def test_worker_ids_and_root(self):
        self.require_root()
        srv, conn, worker, app = self.live_connection(["-u", str(NOBODY), "-g", str(NOBODY)])
        st = proc_status(worker)
        self.assert_ids(st, NOBODY, NOBODY)
        self.assertEqual(st["CapBnd"], ZERO_CAPS)
        self.assertEqual(os.readlink("/proc/%d/root" % worker), CHROOT)
        self.assertEqual(os.listdir(CHROOT), [])
        st_root = os.stat(CHROOT)
        self.assertEqual(st_root.st_uid, 0)
        self.assertEqual(st_root.st_mode & 0o022, 0, "the empty root is writable")
        # the app: the ids of -u/-g, the real root
        self.assert_ids(proc_status(app), NOBODY, NOBODY)
        self.assertEqual(os.readlink("/proc/%d/root" % app), "/")
        self.end(srv, conn)

    def test_worker_ids_from_environment(self):
        self.require_root()
        for uid_name, gid_name, n in (("SSL_UID", "SSL_GID", 12345), ("TLS_UID", "TLS_GID", 23456)):
            with self.subTest(uid_name):
                env = self.env(**{uid_name: str(n), gid_name: str(n)})
                srv, conn, worker, app = self.live_connection(env=env)
                self.assert_ids(proc_status(worker), n, n)
                # without -u/-g the app keeps the server's ids
                self.assert_ids(proc_status(app), 0, 0)
                self.end(srv, conn)
                srv.stop()
                os.unlink(self.rec)

    def test_forbidden_calls_kill_the_worker(self):
        tries = ("open", "socket", "execve", "ptrace", "fork", "kill", "mprotect-exec")
        sigsys = int(signal.SIGSYS)
        for t in tries:
            with self.subTest(t):
                srv = self.server(self.app_cmd("immediate-echo"),
                                  env=self.env(UCSPITLS_TEST_TRY=t), name="tlsserver-testhooks")
                # the hook runs right after lock-in, before the handshake
                for attempt in (1, 2):
                    sock = self.connect(srv.port)
                    hello = TLSConn(sock, self.ctx()).first_flight()
                    sock.setblocking(True)
                    try:
                        sock.sendall(hello)
                        got = recv_plain_all(sock, 10)
                    except (ConnectionResetError, BrokenPipeError):
                        got = b""
                    sock.close()
                    self.assertEqual(got, b"", "the worker answered")
                    pid = srv.worker_pids()[-1]
                    self.assertEqual(srv.end_of(pid), ("signal", sigsys), srv.log())
                    self.assertEqual(len(srv.worker_pids()), attempt,
                                     "the master did not accept the next client")
                log = srv.log()
                self.assertIn("test hook: trying %s" % t, log)
                self.assertNotIn("was NOT killed", log)
                self.assertTrue(srv.alive(), "the master died")
                srv.wait_idle()
                srv.stop()
        # without -v too: a worker killed by a signal is always logged
        srv = self.server(self.app_cmd("immediate-echo"), verbose=False,
                          env=self.env(UCSPITLS_TEST_TRY="open"), name="tlsserver-testhooks")
        sock = self.connect(srv.port)
        try:
            sock.sendall(TLSConn(sock, self.ctx()).first_flight())
            recv_plain_all(sock, 10)
        except (ConnectionResetError, BrokenPipeError):
            pass
        sock.close()
        srv.wait_log(r"^tlsserver-testhooks: end \d+ signal %d$" % sigsys)
        srv.stop()
        self.assert_no_app_run()
        # the same binary without a hook serves normally: the kills above
        # came from the hook
        srv = self.server(self.app_cmd("immediate-echo"), name="tlsserver-testhooks")
        conn = self.tls_connect(srv.port)
        conn.send(b"normal\n")
        self.assertEqual(conn.recv_exactly(7), b"normal\n")
        self.end(srv, conn)


if __name__ == "__main__":
    harness.main()
