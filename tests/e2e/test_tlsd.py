"""tlsd: one connection on fds 0/1, under ucspi-tcp's tcpserver, in
immediate and delayed (-n) mode; the app's exit status reaches tcpserver;
tcpserver's address variables reach the app."""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import TLSConn, env_of, field, read_until  # noqa: E402


def env_vars(run):
    """The `envvar NAME=value` records of show-env as a dict."""
    out = {}
    for line in run:
        if line.startswith("envvar "):
            k, _, v = line[len("envvar "):].partition("=")
            out[harness.unescape(k)] = harness.unescape(v)
    return out


class TlsdTest(harness.E2ETest):

    def setUp(self):
        super().setUp()
        self.tcpserver = harness.tool("tcpserver")

    def under_tcpserver(self, tlsd_opts, prog, env=None, pre=()):
        """tcpserver -v -1 -H -R -l localhost 127.0.0.1 0 [pre...] tlsd -v
        tlsd_opts prog...; tcpserver's and tlsd's lines share one log."""
        argv = [*pre, harness.binary("tlsd"), "-v", *tlsd_opts, *prog]
        return self.server(argv, ["-H", "-R", "-l", "localhost"], env=env,
                           name="tcpserver", exe=self.tcpserver)

    def tcpserver_end(self, srv):
        """tcpserver's `end PID status S` for the last connection: S is the
        raw wait status (exit code << 8)."""
        pid = srv.worker_pids()[-1]
        kind, status = srv.end_of(pid)
        self.assertEqual(kind, "status")
        return status

    def test_immediate(self):
        srv = self.under_tcpserver([], self.app_cmd("show-env"))
        raw = self.connect(srv.port)
        cport = raw.getsockname()[1]
        conn = TLSConn(raw, self.ctx())
        conn.handshake()
        conn.send(b"through tlsd\n")
        self.assertEqual(conn.recv_exactly(13), b"through tlsd\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        run = self.app_run()
        env = env_vars(run)
        self.assertEqual(env.get("PROTO"), "TCP")
        self.assertEqual(env.get("TCPREMOTEIP"), "127.0.0.1")
        self.assertEqual(env.get("TCPREMOTEPORT"), str(cport))
        self.assertEqual(env.get("TCPLOCALPORT"), str(srv.port))
        self.assertEqual(env.get("TCPLOCALHOST"), "localhost")  # tcpserver's -l
        self.assertEqual(env.get("SSLREMOTEIP"), "127.0.0.1")
        self.assertNotIn("SSL_PROTOCOL", env)
        self.assertEqual(field(run, "echoed"), "13")
        self.assertEqual(self.tcpserver_end(srv), 0)
        self.assertRegex(srv.log(), r"(?m)^tlsd: tls \d+ accept TLSv1\.3:")

    def test_tcpserver_variables_are_kept(self):
        # What tcpserver says is the truth (e.g. a PROXY-aware tcpserver):
        # tlsd must not replace it with what the socket says.
        srv = self.under_tcpserver([], self.app_cmd("immediate-echo"),
                                   pre=["env", "TCPREMOTEIP=192.0.2.7", "TCPREMOTEPORT=4242"])
        conn = self.tls_connect(srv.port)
        conn.send(b"x\n")
        self.assertEqual(conn.recv_exactly(2), b"x\n")
        conn.close_notify()
        conn.recv_all()
        conn.close()
        env = env_of(self.app_run())
        self.assertEqual(env.get("TCPREMOTEIP"), "192.0.2.7")
        self.assertEqual(env.get("TCPREMOTEPORT"), "4242")
        self.assertEqual(env.get("SSLREMOTEIP"), "192.0.2.7")

    def test_delayed(self):
        srv = self.under_tcpserver(["-n"], self.app_cmd("Y-echo"))
        sock = self.connect(srv.port)
        cport = sock.getsockname()[1]
        sock.sendall(b"STARTTLS\n")
        self.assertEqual(read_until(sock, b"\n"), b"OK\n")
        conn = TLSConn(sock, self.ctx())
        conn.handshake()
        version = conn.version()
        conn.send(b"delayed via tlsd\n")
        self.assertEqual(conn.recv_exactly(17), b"delayed via tlsd\n")
        conn.close_notify()
        self.assertEqual(conn.recv_all(), (b"", "close_notify"))
        conn.close()
        run = self.app_run()
        env = env_of(run)
        self.assertEqual((env.get("SSLCTLFD"), env.get("SSLREADFD"), env.get("SSLWRITEFD")),
                         ("3", "4", "5"))
        self.assertEqual(env.get("TCPREMOTEIP"), "127.0.0.1")
        self.assertEqual(env.get("TCPREMOTEPORT"), str(cport))
        self.assertEqual(field(run, "fds"), "0:sock 1:sock 2:reg 3:sock 4:fifo 5:fifo")
        self.assertEqual(field(run, "vars").split("|")[0], "SSL_PROTOCOL=" + version)
        self.assertEqual(field(run, "echoed"), "17")
        self.assertEqual(run[-1], "exit 0")
        self.assertEqual(self.tcpserver_end(srv), 0)

    def test_exit_status_reaches_tcpserver(self):
        for opts in ([], ["-n"]):
            with self.subTest(opts=opts):
                srv = self.under_tcpserver(opts, self.app_cmd("exit-early"))
                if opts:
                    sock = self.connect(srv.port)
                    self.assertEqual(harness.recv_plain_all(sock), b"")
                    sock.close()
                else:
                    conn = self.tls_connect(srv.port)
                    self.assertEqual(conn.recv_all(), (b"", "close_notify"))
                    conn.close()
                self.assertEqual(self.tcpserver_end(srv), 3 << 8)  # exit 3
                srv.stop()
                os.unlink(self.rec)

    def test_failed_handshake_app_never_runs(self):
        srv = self.under_tcpserver([], self.app_cmd("immediate-echo"))
        sock = self.connect(srv.port)
        sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        harness.recv_plain_all(sock)
        sock.close()
        status = self.tcpserver_end(srv)
        self.assertNotEqual(status, 0)
        self.assert_no_app_run()


if __name__ == "__main__":
    harness.main()
