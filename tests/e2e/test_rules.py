"""Access control before any TLS work: tcprules cdb files (-x, -X) with
allow, deny and per-rule environment, read at every connection; and the
per-address limit (MAXCONIP, also per rule)."""
import os
import socket
import ssl
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
from harness import field  # noqa: E402


class RulesTest(harness.E2ETest):

    def rules(self, text, name="rules.cdb"):
        path = os.path.join(self.tmp, name)
        subprocess.run([harness.tool("tcprules"), path, path + ".tmp"], input=text.encode(),
                       check=True, timeout=20)
        return path

    def talk(self, port):
        """True when the connection was served (TLS and the echo worked)."""
        sock = self.connect(port)
        try:
            tls = self.ctx().wrap_socket(sock, server_hostname="localhost")
            tls.sendall(b"hi\n")
            ok = tls.recv(10) == b"hi\n"
            tls.close()
            return ok
        except (ssl.SSLError, OSError):
            return False

    def test_allow_deny_env(self):
        path = self.rules('127.0.0.1:deny\n')
        srv = self.server(self.app_cmd("immediate-echo"), ["-x", path])
        self.assertFalse(self.talk(srv.port))
        srv.wait_log(r"deny 127\.0\.0\.1 rule '127\.0\.0\.1'")
        self.assert_no_app_run()
        # a new file applies at once (tcprules renames it into place)
        self.rules('127.:allow,FOO="bar",TCPREMOTEIP="10.9.9.9"\n')
        self.assertTrue(self.talk(srv.port))
        env = dict(kv.split("=", 1) for kv in field(self.app_run(), "env").split())
        self.assertEqual(env["TCPREMOTEIP"], "127.0.0.1")  # the server's own wins

    def test_rule_environment_reaches_the_app(self):
        path = self.rules(':allow,FOO="bar baz"\n')
        srv = self.server(self.app_cmd("show-env"), ["-x", path])
        self.assertTrue(self.talk(srv.port))
        self.assertIn("envvar FOO=bar\\x20baz", self.app_run())

    def test_missing_file(self):
        missing = os.path.join(self.tmp, "none.cdb")
        srv = self.server(self.app_cmd("immediate-echo"), ["-x", missing])
        self.assertFalse(self.talk(srv.port))
        srv.wait_log(r"deny 127\.0\.0\.1: rules file .*none\.cdb")
        srv2 = self.server(self.app_cmd("immediate-echo"), ["-X", "-x", missing])
        self.assertTrue(self.talk(srv2.port))

    def held(self, port):
        conn = self.tls_connect(port)
        conn.send(b"x\n")
        self.assertEqual(conn.recv_exactly(2), b"x\n")
        return conn

    def test_maxconip(self):
        srv = self.server(self.app_cmd("immediate-echo"), env=self.env(MAXCONIP="2"))
        a, b = self.held(srv.port), self.held(srv.port)
        self.assertFalse(self.talk(srv.port))
        srv.wait_log(r"deny 127\.0\.0\.1: 2 connections from it")
        a.close_notify()
        a.recv_all()
        a.close()
        self.assertTrue(harness.wait_until(lambda: self.talk(srv.port), 5))
        b.close()

    def test_maxconip_per_rule(self):
        path = self.rules('127.0.0.1:allow,MAXCONIP="1"\n')
        srv = self.server(self.app_cmd("immediate-echo"), ["-x", path])
        a = self.held(srv.port)
        self.assertFalse(self.talk(srv.port))
        a.close()


if __name__ == "__main__":
    unittest.main(verbosity=2)
