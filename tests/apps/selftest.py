#!/usr/bin/env python3
"""Self-test of ucspi-testapp and gen-verify, with no TLS server involved.

A fake UCSPI-TLS server (socketpair for the plaintext connection and the
control socket, two pipes) checks that each mode does what the end-to-end
tests will rely on and records what they expect to parse.

usage: selftest.py UCSPI-TESTAPP GEN-VERIFY
"""
import hashlib
import os
import socket
import subprocess
import sys
import tempfile

APP, GEN = sys.argv[1], sys.argv[2]
failures = 0


def check(cond, what):
    global failures
    if not cond:
        failures += 1
        print("FAIL:", what, file=sys.stderr)


def stream(n, seed):
    """The xorshift64* stream documented in xorshift.h."""
    s = seed & 0xFFFFFFFFFFFFFFFF or 0x9E3779B97F4A7C15
    out = bytearray()
    while len(out) < n:
        s ^= s >> 12
        s ^= (s << 25) & 0xFFFFFFFFFFFFFFFF
        s ^= s >> 27
        out += ((s * 0x2545F4914F6CDD1D) & 0xFFFFFFFFFFFFFFFF).to_bytes(8, "little")
    return bytes(out[:n])


def recv_all(sock):
    data = b""
    while True:
        d = sock.recv(65536)
        if not d:
            return data
        data += d


def read_fd_all(fd):
    data = b""
    while True:
        d = os.read(fd, 65536)
        if not d:
            return data
        data += d


class Run:
    """One testapp process behind a fake server."""

    def __init__(self, args, ucspitls=True, env=None):
        self.outfile = tempfile.NamedTemporaryFile(delete=False).name
        self.cli, app = socket.socketpair()
        e = dict(os.environ, TESTAPP_OUT=self.outfile, TCPREMOTEIP="127.0.0.1")
        e.update(env or {})
        fds = []
        if ucspitls:
            self.ctl, ctl_app = socket.socketpair()
            r_app, self.to_app = os.pipe()
            self.from_app, w_app = os.pipe()
            fds = [ctl_app.fileno(), r_app, w_app]
            e.update(SSLCTLFD=str(fds[0]), SSLREADFD=str(r_app), SSLWRITEFD=str(w_app))
        self.p = subprocess.Popen([APP] + args, stdin=app.fileno(), stdout=app.fileno(),
                                  env=e, pass_fds=fds)
        app.close()
        if ucspitls:
            ctl_app.close()
            os.close(r_app)
            os.close(w_app)

    def finish(self):
        rc = self.p.wait(timeout=20)
        with open(self.outfile) as f:
            lines = f.read().splitlines()
        os.unlink(self.outfile)
        return rc, lines


def expect_lines(lines, want, what):
    it = iter(lines)
    for w in want:
        for line in it:
            if line == w or (w.endswith("*") and line.startswith(w[:-1])):
                break
        else:
            check(False, f"{what}: no line {w!r} in order in {lines}")
            return


# --- immediate-mode data modes over a socketpair ---
r = Run(["source", "100000", "42"], ucspitls=False)
data = recv_all(r.cli)
rc, lines = r.finish()
check(data == stream(100000, 42), "source bytes")
check(rc == 0, "source rc")
expect_lines(lines, ["pid *", "mode source",
                     f"wrote-sha256 100000 {hashlib.sha256(data).hexdigest()}", "exit 0"],
             "source")
check(subprocess.run([GEN, "sum", "100000", "42"], capture_output=True).stdout.decode().strip()
      == f"100000 {hashlib.sha256(data).hexdigest()}", "gen-verify sum")

r = Run(["sink-sha256"], ucspitls=False)
payload = stream(300001, 9)
r.cli.sendall(payload)
r.cli.shutdown(socket.SHUT_WR)
rc, lines = r.finish()
expect_lines(lines, [f"read-sha256 300001 {hashlib.sha256(payload).hexdigest()}", "exit 0"], "sink")

r = Run(["duplex", "500000", "5"], ucspitls=False)
payload = stream(700000, 6)
got = bytearray()
r.cli.setblocking(False)
sent = 0
import select
eof = False
while not eof or sent < len(payload):
    w = [r.cli] if sent < len(payload) else []
    rl = [r.cli] if not eof else []
    rd, wr, _ = select.select(rl, w, [], 10)
    check(rd or wr, "duplex progress")
    if not rd and not wr:
        break
    if wr:
        sent += r.cli.send(payload[sent:sent + 65536])
        if sent == len(payload):
            r.cli.shutdown(socket.SHUT_WR)
    if rd:
        d = r.cli.recv(65536)
        if not d:
            eof = True
        got += d
rc, lines = r.finish()
check(bytes(got) == stream(500000, 5), "duplex bytes written by app")
expect_lines(lines, [f"wrote-sha256 500000 {hashlib.sha256(got).hexdigest()}",
                     f"read-sha256 700000 {hashlib.sha256(payload).hexdigest()}", "exit 0"],
             "duplex")

r = Run(["exit-early"], ucspitls=False)
rc, lines = r.finish()
check(rc == 3 and lines[-1] == "exit 3", "exit-early")

r = Run(["immediate-echo"], ucspitls=False, env={"SSL_PROTOCOL": "TLSv1.3", "PROTO": "TLS"})
r.cli.sendall(b"hello world\n")
r.cli.shutdown(socket.SHUT_WR)
check(recv_all(r.cli) == b"hello world\n", "immediate-echo data")
rc, lines = r.finish()
expect_lines(lines, ["env PROTO=TLS TCPREMOTEIP=127.0.0.1 SSL_PROTOCOL=TLSv1.3",
                     "fds 0:sock 1:sock 2:*", "read-eof", "echoed 12", "exit 0"], "immediate-echo")

# --- delayed modes against the fake server ---
def y_session(mode, reply, close_ctl_after_reply=True):
    r = Run([mode])
    r.cli.sendall(b"STARTTLS\n")
    check(r.cli.recv(3) == b"OK\n", f"{mode} OK")
    cmd = r.ctl.recv(1)
    if reply is not None:
        r.ctl.sendall(reply)
    if close_ctl_after_reply:
        r.ctl.close()
    return r, cmd

for mode, cmd_want in (("y-echo", b"y"), ("Y-echo", b"Y"), ("Y-shut", b"Y")):
    reply = None if cmd_want == b"y" else b"SSL_PROTOCOL=TLSv1.3\0SSL_CIPHER=A B\0\0"
    r, cmd = y_session(mode, reply)
    check(cmd == cmd_want, f"{mode} command byte")
    os.write(r.to_app, b"secret data")
    os.close(r.to_app)
    check(read_fd_all(r.from_app) == b"secret data", f"{mode} echo over pipes")
    rc, lines = r.finish()
    want = ["pid *", f"mode {mode}", "env *", "fds *", "line STARTTLS", f"sent {cmd_want.decode()}"]
    if reply:
        want += ["vars-raw " + reply.hex(), "vars SSL_PROTOCOL=TLSv1.3|SSL_CIPHER=A\\x20B"]
    want += ["read-eof", "echoed 11", "ctl-after eof", "exit 0"]
    expect_lines(lines, want, mode)

# Handshake failure: EOF on ctl without data.
for mode in ("Y-echo", "Y-shut"):
    r, cmd = y_session(mode, None)
    rc, lines = r.finish()
    expect_lines(lines, ["sent Y", "ctl-eof-nodata", "exit 0"], mode + " nodata")

# delayed data mode: pipes land on 0/1.
r, cmd = y_session("delayed-sink-sha256", None)
payload = stream(12345, 77)
os.write(r.to_app, payload)
os.close(r.to_app)
rc, lines = r.finish()
expect_lines(lines, ["started y", f"read-sha256 12345 {hashlib.sha256(payload).hexdigest()}",
                     "exit 0"], "delayed-sink")

r = Run(["delayed-source", "70000", "3"])
r.cli.sendall(b"STARTTLS\n")
check(r.cli.recv(3) == b"OK\n", "delayed-source OK")
check(r.ctl.recv(1) == b"y", "delayed-source cmd")
r.ctl.close()
check(read_fd_all(r.from_app) == stream(70000, 3), "delayed-source bytes on write pipe")
rc, lines = r.finish()
expect_lines(lines, ["started y", "wrote-sha256 70000 *", "exit 0"], "delayed-source")

# decline and badcmd continue in plaintext.
r = Run(["decline"])
r.cli.sendall(b"STARTTLS\n")
check(r.cli.recv(3) == b"NO\n", "decline NO")
check(r.ctl.recv(1) == b"", "decline closes ctl without a command")
check(os.read(r.from_app, 1) == b"", "decline closes write pipe")
r.cli.sendall(b"plain\n")
r.cli.shutdown(socket.SHUT_WR)
check(recv_all(r.cli) == b"plain\n", "decline plaintext echo")
rc, lines = r.finish()
expect_lines(lines, ["line STARTTLS", "declined", "read-eof", "echoed 6", "exit 0"], "decline")

r = Run(["badcmd"])
check(r.ctl.recv(1) == b"x", "badcmd sends x")
r.ctl.close()
r.cli.sendall(b"still plain\n")
r.cli.shutdown(socket.SHUT_WR)
check(recv_all(r.cli) == b"still plain\n", "badcmd plaintext echo")
rc, lines = r.finish()
expect_lines(lines, ["sent x", "ctl-eof", "read-eof", "exit 0"], "badcmd")

r = Run(["show-env"], ucspitls=False, env={"WEIRD": "a b|c"})
r.cli.shutdown(socket.SHUT_WR)
rc, lines = r.finish()
check("envvar WEIRD=a\\x20b\\x7cc" in lines, "show-env escaping")

print("selftest:", "all checks passed" if not failures else f"{failures} failed", file=sys.stderr)
sys.exit(1 if failures else 0)
