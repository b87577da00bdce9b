"""keyd: the private key lives in one locked-in process (DESIGN.md sections 2
and 6), and the servers still negotiate every key type and signature scheme
through it, survive its death or hang, and refuse bad key configurations at
start-up.

Runs as root (CI is root): the memory scans read /proc/PID/mem of processes
of other uids, and keyd only exists as designed when started by root.
"""

import ctypes
import fcntl
import os
import pwd
import re
import resource
import select
import shutil
import signal
import ssl
import struct
import subprocess
import sys
import tempfile
import termios
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import keyscan  # noqa: E402
from harness import children, client_context, proc_status, proc_table, wait_until  # noqa: E402

KEYD_ROOT = "/run/ucspi-tls/empty"   # engine default chroot (ENGINE_DEFAULT_CHROOT)
EXIT_TEMPORARY = 111

_KEYS = {}        # name -> (cert, key), made once for the module
_KEYDIR = None

_KEY_SPECS = {
    "p384": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-384"],
    "rsa2048": ["-newkey", "rsa:2048"],
    "rsa4096": ["-newkey", "rsa:4096"],
    "ed25519": ["-newkey", "ed25519"],
    "other-p256": ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
}


def setUpModule():
    global _KEYDIR
    if not harness.IS_ROOT:
        raise unittest.SkipTest("keyd tests need root (keyd is only set up when started by root)")
    harness.tool("openssl")
    _KEYDIR = tempfile.mkdtemp(prefix="ucspitls-keyd-keys-")
    old = os.umask(0o077)
    procs = {}
    try:
        # in parallel: RSA-4096 takes seconds
        for name, newkey in _KEY_SPECS.items():
            cert = os.path.join(_KEYDIR, name + "-cert.pem")
            key = os.path.join(_KEYDIR, name + "-key.pem")
            procs[name] = (cert, key, subprocess.Popen(
                ["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key, "-out", cert,
                 "-days", "2", "-subj", "/CN=localhost",
                 "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE))
        for name, (cert, key, p) in procs.items():
            _, err = p.communicate(timeout=60)
            if p.returncode != 0:
                raise AssertionError("openssl req for %s failed: %s" % (name, err.decode()))
            _KEYS[name] = (cert, key)
    finally:
        os.umask(old)
        for _, _, p in procs.values():
            if p.poll() is None:
                p.kill()
                p.wait()


def tearDownModule():
    if _KEYDIR:
        shutil.rmtree(_KEYDIR, ignore_errors=True)


# ------------------------------------------------------------- processes

NOBODY = pwd.getpwnam("nobody").pw_uid


def uids(pid):
    """Real, effective, saved and fs uid of pid (None if it is gone)."""
    try:
        return [int(x) for x in proc_status(pid)["Uid"].split()]
    except (OSError, KeyError):
        return None


def root_of(pid):
    try:
        return os.readlink("/proc/%d/root" % pid)
    except OSError:
        return None


def state_of(pid):
    t = proc_table().get(pid)
    return t.state if t else None


def running(pid):
    """True while pid exists and is not a zombie."""
    s = state_of(pid)
    return s is not None and s != "Z"


def is_locked_in_keyd(pid):
    """uid nobody (all four ids), chrooted to the empty root."""
    u = uids(pid)
    return u is not None and all(x == NOBODY for x in u) and root_of(pid) == KEYD_ROOT


def live_children(pid):
    return [p for p in children(pid) if p.state != "Z"]


def unix_seqpacket_fds(pid):
    """pid's fds that are AF_UNIX SOCK_SEQPACKET sockets (keyd's ctl and
    channels are; nothing else of a worker is)."""
    seqpacket = set()
    with open("/proc/net/unix") as f:
        next(f)
        for line in f:
            fields = line.split()
            if fields[4] == "0005":  # SOCK_SEQPACKET
                seqpacket.add(fields[6])
    out = []
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:[") and link[8:-1] in seqpacket:
            out.append(int(fd))
    return sorted(out)


def waiting_keyd(front):
    """The keyd of a front end started in a session of its own (tlsserver's
    child, or tlsd's, adopted by init once the intermediate has gone),
    blocked in a read before it is ready (-3: on fd 3).  None until then."""
    for p in proc_table().values():
        try:
            with open("/proc/%d/stat" % p.pid, "rb") as f:
                fields = f.read().rsplit(b")", 1)[1].split()
            with open("/proc/%d/wchan" % p.pid) as f:
                wchan = f.read()
        except OSError:
            continue
        if (p.pid != front and int(fields[3]) == front and p.state == "S"
                and "pipe" in wchan):
            return p.pid
    return None


# ------------------------------------------------------------- file-open watch

class OpenWatch:
    """Who opens a file: fanotify (with the opener's pid) when the kernel
    lets us, else inotify (opens counted, pid unknown: None)."""

    FAN_CLOEXEC, FAN_NONBLOCK, FAN_CLASS_NOTIF = 0x1, 0x2, 0x0
    FAN_MARK_ADD, FAN_OPEN = 0x1, 0x20
    IN_OPEN = 0x20

    def __init__(self, path):
        self.path = path
        self.kind = None
        libc = ctypes.CDLL(None, use_errno=True)
        fd = -1
        try:
            libc.fanotify_init.argtypes = [ctypes.c_uint, ctypes.c_uint]
            libc.fanotify_mark.argtypes = [ctypes.c_int, ctypes.c_uint, ctypes.c_uint64,
                                           ctypes.c_int, ctypes.c_char_p]
            fd = libc.fanotify_init(self.FAN_CLOEXEC | self.FAN_NONBLOCK | self.FAN_CLASS_NOTIF,
                                    os.O_RDONLY | os.O_CLOEXEC)
            if fd >= 0 and libc.fanotify_mark(fd, self.FAN_MARK_ADD, self.FAN_OPEN, -100,
                                              path.encode()) == 0:
                self.kind = "fanotify"
            elif fd >= 0:
                os.close(fd)
                fd = -1
        except AttributeError:
            fd = -1
        if self.kind is None:
            fd = libc.inotify_init1(os.O_NONBLOCK | os.O_CLOEXEC)
            if fd < 0 or libc.inotify_add_watch(fd, path.encode(), self.IN_OPEN) < 0:
                raise AssertionError("neither fanotify nor inotify: %s"
                                     % os.strerror(ctypes.get_errno()))
            self.kind = "inotify"
        self.fd = fd

    def openers(self):
        """pids (None with inotify) of the opens since the last call."""
        out = []
        while True:
            try:
                data = os.read(self.fd, 65536)
            except BlockingIOError:
                return out
            if not data:
                return out
            off = 0
            while off < len(data):
                if self.kind == "fanotify":
                    ev_len, _, _, _, mask, efd, pid = struct.unpack_from("=IBBHQii", data, off)
                    if efd >= 0:
                        os.close(efd)
                    if mask & self.FAN_OPEN:
                        out.append(pid)
                    off += ev_len
                else:
                    _, mask, _, nlen = struct.unpack_from("iIII", data, off)
                    if mask & self.IN_OPEN:
                        out.append(None)
                    off += 16 + nlen

    def close(self):
        os.close(self.fd)


# ------------------------------------------------------------- the test base

class KeydTest(harness.E2ETest):

    ECHO = "immediate-echo"

    def keypair(self, name):
        if name == "p256":
            return self.cert, self.key
        return _KEYS[name]

    def start(self, keyname="p256", opts=(), app=None, env=None):
        cert, key = self.keypair(keyname)
        srv = self.server(app or self.app_cmd(self.ECHO), opts=list(opts),
                          env=env or self.env(CERTFILE=cert, KEYFILE=key))
        srv.cert, srv.keyfile = cert, key
        srv.keyd = self.keyd_of(srv)
        return srv

    def keyd_of(self, srv, exclude=(), timeout=5):
        """The master's keyd: with no connection open, its one live child
        that is not a worker; waits until it is locked in (uid nobody,
        chrooted)."""
        def find():
            workers = set(srv.worker_pids())
            cand = [p.pid for p in live_children(srv.pid)
                    if p.pid not in workers and p.pid not in exclude]
            if len(cand) == 1 and is_locked_in_keyd(cand[0]):
                return cand[0]
            return None
        pid = wait_until(find, timeout)
        if pid is None:
            self.fail("no locked-in keyd (uid %d, root %s) among the master's children "
                      "within %ss: %r (uids %r, roots %r); log:\n%s"
                      % (NOBODY, KEYD_ROOT, timeout, live_children(srv.pid),
                         [uids(p.pid) for p in live_children(srv.pid)],
                         [root_of(p.pid) for p in live_children(srv.pid)], srv.log()))
        return pid

    def connection_processes(self, srv, timeout=5):
        """(worker, app) of the one open connection: the master's child that
        is not keyd, and the worker's child."""
        def find():
            w = [p.pid for p in live_children(srv.pid) if p.pid != srv.keyd]
            if len(w) != 1:
                return None
            a = live_children(w[0])
            return (w[0], a[0].pid) if len(a) == 1 else None
        got = wait_until(find, timeout)
        if got is None:
            self.fail("no single worker with a single app child: master's children %r; log:\n%s"
                      % (live_children(srv.pid), srv.log()))
        return got

    def echo_once(self, srv, msg=b"ping over keyd\n", ctx=None):
        conn = self.tls_connect(srv.port, ctx or client_context(srv.cert))
        try:
            conn.send(msg)
            self.assertEqual(conn.recv_exactly(len(msg)), msg)
            conn.close_notify()
            data, _ = conn.recv_all(timeout=10)
            self.assertEqual(data, b"")
        finally:
            conn.close()

    def start_printing_port(self, name, argv, env):
        """Starts argv (a server that prints its port on stdout: tcpserver,
        embed-server), stopped at cleanup: (process, port, log reader)."""
        errpath = os.path.join(self.tmp, name + ".err")
        with open(errpath, "wb") as errf:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=errf, env=env, cwd=self.tmp, start_new_session=True)

        def stop():
            if p.poll() is None:
                p.terminate()
                p.wait(5)
            p.stdout.close()
        self.addCleanup(stop)

        def log():
            with open(errpath, "rb") as f:
                return f.read().decode(errors="replace")
        line = harness.read_line(p.stdout.fileno(), 10)
        self.assertTrue(line.strip().isdigit(), "%s printed no port: %r" % (name, line))
        return p, int(line), log

    # -- memory scans
    def assert_key_found(self, pid, secrets, what):
        res = keyscan.scan_pid(pid, secrets)
        self.assertGreater(res.read_writable_anon, 0, "%s: no heap read; %s" % (what, res.summary()))
        missing = [label for label in secrets.values
                   if not any(h.name.startswith(label + "-") for h in res.hits)]
        self.assertFalse(missing, "positive control failed: %s secret(s) %s of %s not found "
                         "in %s (so the scanner proves nothing); %s"
                         % (secrets.kind, missing, secrets.keyfile, what, res.summary()))
        if secrets.kind in ("ec", "rsa"):
            # the BIGNUM limb layout is the form a loaded key has
            self.assertTrue(secrets.limb_pattern_names() & set(res.names()),
                            "%s: key found but not in BIGNUM limb layout: %s"
                            % (what, res.summary()))
        return res

    def assert_key_absent(self, pid, secrets, what):
        try:
            res = keyscan.scan_pid(pid, secrets)
        except OSError as e:
            self.fail("cannot scan %s (pid %d): %s" % (what, pid, e))
        self.assertGreater(res.regions_read, 0, "%s: nothing read; %s" % (what, res.summary()))
        self.assertGreater(res.read_writable_anon, 0, "%s: no heap read; %s" % (what, res.summary()))
        self.assertFalse(res.found(), "the private key (%s) is in %s (pid %d): %s"
                         % (secrets.keyfile, what, pid, res.summary()))
        return res

    def s_server_control(self, cert, key, secrets):
        """Positive control (a): openssl s_server with the same key."""
        p = subprocess.Popen(["openssl", "s_server", "-accept", "0", "-naccept", "1",
                              "-cert", cert, "-key", key],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT)
        try:
            line = b""
            deadline = time.monotonic() + 10
            while b"ACCEPT" not in line:
                line = harness.read_line(p.stdout.fileno(), max(0.1, deadline - time.monotonic()))
                if b"ACCEPT" not in line and (p.poll() is not None
                                              or time.monotonic() > deadline):
                    self.fail("openssl s_server did not start listening")
            self.assert_key_found(p.pid, secrets, "openssl s_server (control)")
        finally:
            p.kill()
            p.wait(5)
            p.stdout.close()


# ============================================================ 1. key absence

class KeyAbsenceTest(KeydTest):
    """The key is in keyd and in no other process of the tree."""

    def check_immediate(self, keyname):
        srv = self.start(keyname)
        secrets = keyscan.KeySecrets(srv.keyfile)
        self.s_server_control(srv.cert, srv.keyfile, secrets)
        conn = self.tls_connect(srv.port, client_context(srv.cert))
        self.addCleanup(conn.close)
        conn.send(b"idle after this\n")
        self.assertEqual(conn.recv_exactly(16), b"idle after this\n")
        worker, app = self.connection_processes(srv)
        self.assertIn(self.app, proc_table()[app].cmdline)
        # control (b): keyd holds it
        self.assert_key_found(srv.keyd, secrets, "keyd (pid %d)" % srv.keyd)
        self.assert_key_absent(srv.pid, secrets, "the master")
        self.assert_key_absent(worker, secrets, "the worker")
        self.assert_key_absent(app, secrets, "the app")
        # and the connection still works after being looked at
        conn.send(b"still here\n")
        self.assertEqual(conn.recv_exactly(11), b"still here\n")
        conn.close_notify()
        conn.recv_all(timeout=10)

    def test_immediate_ec_p256_key_only_in_keyd(self):
        self.check_immediate("p256")

    def test_immediate_rsa2048_key_only_in_keyd(self):
        self.check_immediate("rsa2048")

    def test_delayed_ec_p256_key_only_in_keyd(self):
        srv = self.start("p256", opts=["-n"], app=self.app_cmd("y-echo"))
        secrets = keyscan.KeySecrets(srv.keyfile)
        self.s_server_control(srv.cert, srv.keyfile, secrets)
        sock = self.connect(srv.port)
        sock.sendall(b"STARTTLS\n")
        harness.read_until(sock, b"OK\n")
        conn = harness.TLSConn(sock, client_context(srv.cert))
        self.addCleanup(conn.close)
        conn.handshake()
        conn.send(b"after starttls\n")
        self.assertEqual(conn.recv_exactly(15), b"after starttls\n")
        worker, app = self.connection_processes(srv)
        self.assert_key_found(srv.keyd, secrets, "keyd (pid %d)" % srv.keyd)
        self.assert_key_absent(srv.pid, secrets, "the master")
        self.assert_key_absent(worker, secrets, "the worker")
        self.assert_key_absent(app, secrets, "the app")
        conn.close_notify()
        conn.recv_all(timeout=10)


    def test_scanner_finds_key_in_master_and_worker_without_keyd(self):
        """Control (c): the same binary with keyd bypassed
        (UCSPITLS_BENCH_KEY_IN_WORKER=1, the cost benchmark's mode) holds the
        key in the master and the worker, and the scanner sees it there: the
        negative checks above look at the right processes in the right way."""
        srv = self.server(self.app_cmd(self.ECHO),
                          env=self.env(UCSPITLS_BENCH_KEY_IN_WORKER="1"))
        if "UCSPITLS_BENCH_KEY_IN_WORKER" not in srv.log():
            self.skipTest("the front end no longer has the key-in-worker benchmark mode")
        secrets = keyscan.KeySecrets(self.key)
        conn = self.tls_connect(srv.port)
        self.addCleanup(conn.close)
        conn.send(b"ping\n")
        self.assertEqual(conn.recv_exactly(5), b"ping\n")
        kids = live_children(srv.pid)
        self.assertEqual(len(kids), 1, "expected only the worker (no keyd): %r" % kids)
        self.assert_key_found(srv.pid, secrets, "the master with the key in it")
        self.assert_key_found(kids[0].pid, secrets, "a worker with the key in it")
        conn.close_notify()
        conn.recv_all(timeout=10)


# ============================================================ 2. schemes

# (protocol flag, -sigalgs, expected "Peer signature type", expected digest)
def _ecdsa12():
    return [("-tls1_2", "ECDSA+" + h, "ECDSA", h) for h in ("SHA256", "SHA384", "SHA512")]


def _rsa_cases():
    cases = []
    for flag in ("-tls1_3", "-tls1_2"):
        for h in ("256", "384", "512"):
            cases.append((flag, "rsa_pss_rsae_sha" + h, "RSA-PSS", "SHA" + h))
    for h in ("SHA256", "SHA384", "SHA512"):
        cases.append(("-tls1_2", "RSA+" + h, "RSA", h))
    return cases


SCHEMES = {
    "p256": [("-tls1_3", "ecdsa_secp256r1_sha256", "ECDSA", "SHA256")] + _ecdsa12(),
    "p384": [("-tls1_3", "ecdsa_secp384r1_sha384", "ECDSA", "SHA384")] + _ecdsa12(),
    "rsa2048": _rsa_cases(),
    "rsa4096": _rsa_cases(),
    "ed25519": [("-tls1_3", "ed25519", "ed25519", None), ("-tls1_2", "ed25519", "ed25519", None)],
}


def s_client(port, cert, args, timeout=15):
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost", "-CAfile", cert,
                        "-verify_return_error", "-ign_eof", *args],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")


def assert_every_scheme(test, keyname, port, cert, marker, log):
    """One s_client per scheme of SCHEMES[keyname]: each must negotiate
    that scheme, verify, and see the app's marker."""
    for flag, sigalg, sigtype, digest in SCHEMES[keyname]:
        with test.subTest(proto=flag, sigalgs=sigalg):
            rc, out, err = s_client(port, cert, [flag, "-sigalgs", sigalg])
            test.assertEqual(rc, 0, "s_client failed:\n%s\n%s\nserver log:\n%s"
                             % (out[-1500:], err[-1500:], log()[-1500:]))
            test.assertIn(marker, out, "the app's output did not arrive")
            proto = re.search(r"^New, (TLSv1\.[23]), Cipher is", out, re.M)
            test.assertIsNotNone(proto, out)
            test.assertEqual(proto.group(1), "TLSv1.3" if flag == "-tls1_3" else "TLSv1.2")
            m = re.search(r"^Peer signature type: (\S+)$", out, re.M)
            test.assertIsNotNone(m, out)
            test.assertEqual(m.group(1), sigtype)
            d = re.search(r"^Peer signing digest: (\S+)$", out, re.M)
            if digest is not None:
                test.assertIsNotNone(d, out)
                test.assertEqual(d.group(1), digest)
            test.assertIn("Verify return code: 0 (ok)", out)


class SignatureSchemeTest(KeydTest):
    """Every key type and scheme, signed by keyd, verified by s_client."""

    def check_schemes(self, keyname):
        marker = "signed-by-keyd " + self.tmp
        srv = self.start(keyname, app=["/bin/echo", marker])
        assert_every_scheme(self, keyname, srv.port, srv.cert, marker, srv.log)
        if keyname.startswith("rsa"):
            with self.subTest("TLS 1.3 with PKCS#1 only must fail"):
                rc, out, err = s_client(srv.port, srv.cert, ["-tls1_3", "-sigalgs", "RSA+SHA256"])
                self.assertNotEqual(rc, 0, "TLS 1.3 negotiated with PKCS#1 v1.5:\n" + out)
                self.assertNotIn(marker, out)
                self.assertNotRegex(out, r"Peer signature type")
                # the server refused (alert), the client did not give up alone
                self.assertIn("alert handshake failure", err)
                srv.wait_log(r"handshake failed: .*no suitable signature algorithm", 5)
        # each handshake needed keyd; keyd was never restarted or refused
        self.assertTrue(running(srv.keyd), "keyd is gone")
        self.assertNotRegex(srv.log(), r"keyd.*(restarting|refused)")

    def test_tls12_every_group(self):
        # keyd signs TLS 1.2 ECDHE parameters only for the groups the
        # server offers (DEFAULT_GROUPS in tlsctx.c, keyd_proto.c): a real
        # handshake with each of them must still be signed.  An Ed25519
        # key: an ECDSA certificate's curve would have to be among the
        # client's groups too
        marker = "signed-by-keyd " + self.tmp
        srv = self.start("ed25519", app=["/bin/echo", marker])
        for group, temp_key in (("X25519", "X25519"), ("P-256", "ECDH, prime256v1"),
                                ("P-384", "ECDH, secp384r1")):
            with self.subTest(group=group):
                rc, out, err = s_client(srv.port, srv.cert, ["-tls1_2", "-groups", group])
                self.assertEqual(rc, 0, "s_client failed:\n%s\n%s\nserver log:\n%s"
                                 % (out[-1500:], err[-1500:], srv.log()[-1500:]))
                self.assertIn(marker, out)
                self.assertIn("Server Temp Key: %s," % temp_key, out)
        self.assertNotRegex(srv.log(), r"keyd.*(restarting|refused)")

    def test_ec_p256(self):
        self.check_schemes("p256")

    def test_ec_p384(self):
        self.check_schemes("p384")

    def test_rsa2048(self):
        self.check_schemes("rsa2048")

    def test_rsa4096(self):
        self.check_schemes("rsa4096")

    def test_ed25519(self):
        self.check_schemes("ed25519")


def nice(pid):
    return os.getpriority(os.PRIO_PROCESS, pid)


def keyd_nice(base):
    """keyd's nice value for a server started at base: 10 steps higher
    priority, at most -20."""
    return max(base - 10, -20)


class KeydPriorityTest(KeydTest):
    """keyd answers every handshake: it runs 10 nice steps above the master
    and the workers, which keep the nice value they were started with, and
    moves with an operator's nice(1)."""

    def check_priority(self, base):
        # the server inherits the nice value it is started with (as from
        # `nice -n BASE tlsserver ...`); root may come back to 0 after
        os.setpriority(os.PRIO_PROCESS, 0, base)
        try:
            srv = self.start()
        finally:
            os.setpriority(os.PRIO_PROCESS, 0, 0)
        conn = self.connect(srv.port)
        self.addCleanup(conn.close)
        tls = harness.TLSConn(conn, client_context(srv.cert))
        tls.handshake()
        worker, _ = self.connection_processes(srv)
        self.assertEqual(nice(srv.pid), base)
        self.assertEqual(nice(worker), base)
        self.assertEqual(nice(srv.keyd), keyd_nice(base))

    def test_keyd_runs_before_workers(self):
        self.check_priority(0)

    def test_keyd_moves_with_nice(self):
        self.check_priority(15)
        self.check_priority(-15)  # clamped at -20


# ============================================================ 3. keyd dies or hangs

class KeydFailureTest(KeydTest):

    def cont_on_cleanup(self, pid):
        def cont():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        self.addCleanup(cont)

    def wait_state(self, pid, state, timeout=2):
        if not wait_until(lambda: state_of(pid) == state, timeout):
            self.fail("pid %d not in state %s within %ss (state %r)"
                      % (pid, state, timeout, state_of(pid)))

    def start_stopped(self, opts=()):
        """A server whose keyd is stopped (continued at cleanup): (srv, keyd)."""
        srv = self.start("p256", opts=list(opts))
        keyd = srv.keyd
        self.cont_on_cleanup(keyd)
        os.kill(keyd, signal.SIGSTOP)
        self.wait_state(keyd, "T")
        return srv, keyd

    def test_keyd_killed_is_restarted(self):
        srv = self.start("p256")
        self.echo_once(srv)
        wait_until(lambda: not [p for p in live_children(srv.pid) if p.pid != srv.keyd], 5)
        old = srv.keyd
        t0 = time.monotonic()
        os.kill(old, signal.SIGKILL)
        srv.wait_log(r"keyd\b.*\brestarting", timeout=3)
        new = self.keyd_of(srv, exclude={old}, timeout=2.0)
        took = time.monotonic() - t0
        self.assertNotEqual(new, old)
        self.assertFalse(running(old), "the killed keyd %d still runs" % old)
        self.assertLessEqual(took, 2.5, "new keyd after %.2f s" % took)
        srv.keyd = new
        # the new keyd has the key (and is the one signing from now on)
        secrets = keyscan.KeySecrets(srv.keyfile)
        self.assert_key_found(new, secrets, "the restarted keyd")
        for i in range(3):
            self.echo_once(srv, b"after restart %d\n" % i)
        self.assertTrue(srv.alive(), "the master ended")
        self.assertEqual(len(re.findall(r"restarting", srv.log())), 1, srv.log())

    def test_restarted_keyd_checks_keys_against_the_certificates_in_use(self):
        # The files were replaced (a renewal) but no reload was asked for;
        # then keyd dies.  A new keyd must not sign with the new key for
        # the old certificate the master still serves (every handshake
        # would fail on a bad signature): it checks its keys against the
        # certificates in use, refuses, and the master exits 111 as when
        # keyd cannot be restarted.  A changed certificate file alone is
        # fine: the key still matches the certificate in use.
        cert_a, key_a = self.keypair("p256")
        cert_b, key_b = _KEYS["p384"]
        live_cert = os.path.join(self.tmp, "live-cert.pem")
        live_key = os.path.join(self.tmp, "live-key.pem")
        shutil.copyfile(cert_a, live_cert)
        shutil.copyfile(key_a, live_key)
        srv = self.start(env=self.env(CERTFILE=live_cert, KEYFILE=live_key))
        srv.cert = cert_a
        self.echo_once(srv)

        shutil.copyfile(cert_b, live_cert)  # the certificate alone: still A's key
        os.kill(srv.keyd, signal.SIGKILL)
        srv.wait_log(r"keyd\b.*\brestarting", timeout=3)
        srv.keyd = self.keyd_of(srv, exclude={srv.keyd}, timeout=3)
        self.echo_once(srv, b"old certificate, old key\n")

        shutil.copyfile(key_b, live_key)
        os.kill(srv.keyd, signal.SIGKILL)
        try:
            rc = srv.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.fail("the master still runs 5 s after keyd died with a key that does not "
                      "match the certificate in use; log:\n" + srv.log())
        self.assertEqual(rc, EXIT_TEMPORARY, srv.log())
        srv.wait_log(r"fatal: keyd: private key in %s does not match the certificate in use"
                     % re.escape(live_key), timeout=1)

    def test_keyd_stopped_handshake_times_out(self):
        srv, keyd = self.start_stopped(["-T", "3"])
        t0 = time.monotonic()
        error = None
        try:
            conn = self.tls_connect(srv.port, client_context(srv.cert), timeout=12)
            conn.close()
        except TimeoutError as e:
            self.fail("the handshake hung for 12 s with keyd stopped (-T 3): %s\n%s"
                      % (e, srv.log()))
        except (ssl.SSLError, OSError) as e:
            error = e
        took = time.monotonic() - t0
        self.assertIsNotNone(error, "the handshake succeeded with keyd stopped")
        self.assertGreaterEqual(took, 2.0, "failed after %.2f s: not waiting for keyd? %r\n%s"
                                % (took, error, srv.log()))
        self.assertLessEqual(took, 6.0, "failed only after %.2f s with -T 3:\n%s"
                             % (took, srv.log()))
        srv.wait_log(r"keyd\b.*(no answer|timed out|timeout)", timeout=3)
        os.kill(keyd, signal.SIGCONT)
        if not wait_until(lambda: state_of(keyd) not in ("T", "t"), 2):
            self.fail("keyd %d still stopped after SIGCONT" % keyd)
        self.echo_once(srv, b"keyd is back\n")
        self.assertEqual(self.keyd_of(srv), keyd, "keyd was replaced")
        self.assertNotRegex(srv.log(), r"restarting")
        self.assertTrue(srv.alive())

    def test_keyd_stopped_late_client_hello(self):
        # -T counts from the handshake's start, keyd's answer included: a
        # client that sends its ClientHello late must not get the time to
        # wait for a hung keyd over again (the signature request waits
        # only for what is left of -T)
        srv, keyd = self.start_stopped(["-T", "3"])
        sock = self.connect(srv.port)
        self.addCleanup(sock.close)
        t0 = time.monotonic()
        time.sleep(2.0)
        conn = harness.TLSConn(sock, client_context(srv.cert), timeout=12)
        with self.assertRaises((ssl.SSLError, OSError)):
            conn.handshake()
        took = time.monotonic() - t0
        self.assertLessEqual(took, 4.3, "the handshake failed %.2f s after the connection "
                             "with -T 3: keyd was waited for beyond -T\n%s" % (took, srv.log()))
        srv.wait_log(r"keyd: no answer within the handshake's time", timeout=3)

    def test_master_stops_on_sigterm_while_keyd_is_stopped(self):
        # "nothing hangs forever" also holds for shutting down
        srv, keyd = self.start_stopped()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            srv.proc.wait(5)
        except subprocess.TimeoutExpired:
            try:
                with open("/proc/%d/wchan" % srv.pid) as f:
                    wchan = f.read()
            except OSError:
                wchan = "?"
            self.fail("the master still runs 5 s after SIGTERM while keyd %d is stopped "
                      "(master wchan %s, keyd state %s); log:\n%s"
                      % (keyd, wchan, state_of(keyd), srv.log()))
        if not wait_until(lambda: not running(keyd), 2):
            self.fail("keyd %d outlived its master" % keyd)

    def test_keyd_killed_during_handshake(self):
        # -T 10: a failure that comes from the kill comes long before it
        srv, keyd = self.start_stopped(["-T", "10"])
        p = subprocess.Popen(["openssl", "s_client", "-connect", "127.0.0.1:%d" % srv.port,
                              "-servername", "localhost", "-ign_eof"],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE)
        self.addCleanup(lambda: p.poll() is None and p.kill())
        worker = wait_until(lambda: [c.pid for c in live_children(srv.pid) if c.pid != keyd], 5)
        self.assertTrue(worker, "no worker for the client")
        # the worker has sent its request and waits for keyd's answer
        time.sleep(0.8)
        self.assertIsNone(p.poll(), "s_client ended before keyd was killed")
        t_kill = time.monotonic()
        os.kill(keyd, signal.SIGKILL)
        try:
            out, err = p.communicate(timeout=8)
        except subprocess.TimeoutExpired:
            p.kill()
            p.communicate()
            self.fail("the client's handshake still hangs 8 s after keyd was killed; log:\n"
                      + srv.log())
        took = time.monotonic() - t_kill
        self.assertLess(took, 3.0, "the handshake ended %.2f s after keyd's death (-T 10)" % took)
        self.assertNotEqual(p.returncode, 0, out.decode(errors="replace"))
        self.assertNotIn(b"Peer signature type", out)
        if not wait_until(lambda: not running(worker[0]), 3):
            self.fail("the worker %d still runs after keyd's death" % worker[0])
        # the worker said why, and the master brought keyd back
        srv.wait_log(r"^tlsserver: keyd: ", timeout=3)
        srv.wait_log(r"keyd\b.*\brestarting", timeout=3)
        srv.keyd = self.keyd_of(srv, exclude={keyd})
        self.echo_once(srv, b"served again\n")
        self.assertTrue(srv.alive())


# ============================================================ 4. bad key configuration

class BadKeyConfigTest(KeydTest):

    def run_fatal(self, env, name="tlsserver", timeout=15, tty=False, preexec=None,
                  program=None):
        """Runs a front end that must refuse to start: returns (rc, stdout,
        stderr lines, seconds, what it wrote on its terminal).  preexec runs
        in the child before the exec (not with tty); program replaces the
        built binary's path."""
        argv = [program or harness.binary(name)]
        if name == "tlsserver":
            argv += ["-1", "127.0.0.1", "0"]
        argv += self.app_cmd(self.ECHO)
        mfd = sfd = None
        kw = {}
        if tty:
            # a controlling terminal: a password prompt would show (and block) here
            mfd, sfd = os.openpty()
            kw = dict(stdin=sfd, preexec_fn=lambda: fcntl.ioctl(0, termios.TIOCSCTTY, 0))
        else:
            kw = dict(stdin=subprocess.DEVNULL, preexec_fn=preexec)
        t0 = time.monotonic()
        p = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True, cwd=self.tmp, **kw)
        if sfd is not None:
            os.close(sfd)
        try:
            out, err = p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            out, err = p.communicate()
            self.fail("%s did not end within %ss (waiting for a password?): %r"
                      % (name, timeout, err))
        took = time.monotonic() - t0
        said = b""
        if mfd is not None:
            while select.select([mfd], [], [], 0)[0]:
                try:
                    d = os.read(mfd, 4096)
                except OSError:
                    break
                if not d:
                    break
                said += d
            os.close(mfd)
        return p.returncode, out, err.decode(errors="replace").splitlines(), took, said

    def assert_fails_naming(self, env, path, phrase=None, name="tlsserver", **kw):
        rc, out, lines, took, said = self.run_fatal(env, name=name, **kw)
        self.assertEqual(rc, EXIT_TEMPORARY, "exit %r; stderr %r" % (rc, lines))
        self.assertEqual(out, b"", "printed something (a port?) on stdout")
        self.assertEqual(len(lines), 1, "not one line: %r" % lines)
        self.assertIn(path, lines[0])
        if phrase:
            self.assertIn(phrase, lines[0])
        self.assert_no_app_run()
        return lines[0], took, said

    def test_missing_key_file(self):
        path = os.path.join(self.tmp, "no-such-key.pem")
        self.assert_fails_naming(self.env(KEYFILE=path), path)
        self.assert_fails_naming(self.env(KEYFILE=path), path, name="tlsd")

    def test_unreadable_key_file(self):
        # root reads any mode: a directory is what even root cannot read
        path = os.path.join(self.tmp, "keydir")
        os.mkdir(path, 0o700)
        self.assert_fails_naming(self.env(KEYFILE=path), path)

    def test_not_a_key(self):
        path = os.path.join(self.tmp, "garbage.pem")
        with open(path, "w") as f:
            f.write("this is not a key\n")
        self.assert_fails_naming(self.env(KEYFILE=path), path)
        empty = os.path.join(self.tmp, "empty.pem")
        open(empty, "w").close()
        self.assert_fails_naming(self.env(KEYFILE=empty), empty)

    def test_key_does_not_match_certificate(self):
        _, other = _KEYS["other-p256"]
        self.assert_fails_naming(self.env(KEYFILE=other), other, "does not match")
        _, rsa = _KEYS["rsa2048"]
        self.assert_fails_naming(self.env(KEYFILE=rsa), rsa, "does not match")
        self.assert_fails_naming(self.env(KEYFILE=other), other, "does not match", name="tlsd")

    def test_context_error_while_keyd_loads(self):
        # keyd loads its keys while the front end makes its context: when
        # only the context fails, keyd (whose key is fine) must not outlive
        # the front end; when both fail, keyd's reason is the one given.
        # communicate() in run_fatal returns only once every holder of the
        # front end's stderr has gone, keyd included.
        for name in ("tlsserver", "tlsd"):
            with self.subTest(name=name, failing="context"):
                rc, out, lines, took, _ = self.run_fatal(
                    self.env(CIPHERS="NO-SUCH-CIPHER"), name=name)
                self.assertEqual(rc, EXIT_TEMPORARY, lines)
                self.assertEqual(len(lines), 1, lines)
                self.assertIn("$CIPHERS", lines[0])
                self.assertLess(took, 5, "keyd outlived the front end?")
                self.assert_no_app_run()
            with self.subTest(name=name, failing="both"):
                _, other = _KEYS["other-p256"]
                self.assert_fails_naming(self.env(KEYFILE=other, CIPHERS="NO-SUCH-CIPHER"),
                                         other, "does not match", name=name)

    def test_keyd_fork_fails(self):
        # tlsd forks keyd through an intermediate process, so that init
        # adopts keyd.  When that second fork fails, tlsd must say so and
        # exit 111 at once, not wait 10 s for a report that cannot come.
        # The fork is made to fail with RLIMIT_NPROC 2 (tlsd and the
        # intermediate) for a uid of its own; root is exempt from the limit.
        uid = 64999
        d = tempfile.mkdtemp(prefix="ucspitls-nproc-")
        self.addCleanup(shutil.rmtree, d, True)
        os.chmod(d, 0o755)
        files = {}
        for var, src in (("CERTFILE", self.cert), ("KEYFILE", self.key)):
            files[var] = os.path.join(d, os.path.basename(src))
            shutil.copyfile(src, files[var])
            os.chown(files[var], uid, uid)

        def as_user_with_two_processes():
            os.setgroups([])
            os.setgid(uid)
            resource.setrlimit(resource.RLIMIT_NPROC, (2, 2))
            os.setuid(uid)

        # the build tree may be out of that uid's reach (a clone in a 0700
        # directory): tlsd runs from the same directory
        tlsd = os.path.join(d, "tlsd")
        shutil.copy(harness.binary("tlsd"), tlsd)
        rc, out, lines, took, _ = self.run_fatal(self.env(**files), name="tlsd",
                                                 preexec=as_user_with_two_processes,
                                                 program=tlsd)
        self.assertEqual(rc, EXIT_TEMPORARY, lines)
        self.assertEqual(out, b"")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn("keyd: fork failed", lines[0])
        self.assertLess(took, 5, "waited for keyd's report")
        self.assert_no_app_run()

    def test_key_file_that_never_ends(self):
        # A FIFO nobody writes as the key file: keyd cannot get ready.  It
        # says so itself after 10 s and exits, so that no root keyd is left
        # behind (tlsd's is init's child: nobody else could kill it); the
        # front end exits 111.  Also when started with SIGALRM blocked.
        fifo = os.path.join(self.tmp, "key-fifo.pem")
        os.mkfifo(fifo, 0o600)
        self.addCleanup(os.unlink, fifo)
        procs = {}

        def block_alarm():
            signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGALRM})
        t0 = time.monotonic()
        for name in ("tlsserver", "tlsd", "tlsd, SIGALRM blocked"):
            argv = [harness.binary(name.split(",")[0])]
            if name == "tlsserver":
                argv += ["-1", "127.0.0.1", "0"]
            argv += self.app_cmd(self.ECHO)
            # output to files: a keyd left behind would hold a pipe open
            out = os.path.join(self.tmp, "%s.out" % name.replace(", ", "-").replace(" ", "-"))
            with open(out, "wb") as f:
                procs[name] = (subprocess.Popen(argv, env=self.env(KEYFILE=fifo),
                                                stdin=subprocess.DEVNULL, stdout=f, stderr=f,
                                                start_new_session=True,
                                                preexec_fn=block_alarm if "blocked" in name
                                                else None), out)
        for name, (p, out) in procs.items():
            with self.subTest(name=name):
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()
                    self.fail("%s still runs after 20 s" % name)
                took = time.monotonic() - t0
                with open(out, "rb") as f:
                    lines = f.read().decode(errors="replace").splitlines()
                self.assertEqual(p.returncode, EXIT_TEMPORARY, lines)
                self.assertEqual(len(lines), 1, lines)
                self.assertIn("keyd not ready within 10 s", lines[0])
                self.assertLess(took, 13, "took %.1f s" % took)

                def session_left():
                    left = []
                    for q in proc_table().values():
                        try:
                            with open("/proc/%d/stat" % q.pid, "rb") as f:
                                sid = int(f.read().rsplit(b")", 1)[1].split()[3])
                        except OSError:
                            continue
                        if sid == p.pid:
                            left.append(q)
                    return left
                left = wait_until(lambda: not session_left(), 3) or session_left()
                for q in left if left is not True else ():
                    os.kill(q.pid, signal.SIGKILL)
                self.assertIs(left, True, "left behind: %r" % left)
        self.assert_no_app_run()

    def test_encrypted_key_fails_without_prompt(self):
        path = os.path.join(self.tmp, "encrypted-key.pem")
        subprocess.run(["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                        "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:x", "-out", path],
                       check=True, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=30)
        with open(path) as f:
            self.assertIn("ENCRYPTED", f.read())
        line, took, said = self.assert_fails_naming(self.env(KEYFILE=path), path, tty=True,
                                                    timeout=10)
        self.assertIn("encrypt", line.lower(), "the message does not say why: %r" % line)
        self.assertNotIn(b"pass", said.lower(), "a prompt on the terminal: %r" % said)
        self.assertEqual(said, b"", "wrote on the terminal: %r" % said)
        self.assertLess(took, 5, "took %.1f s" % took)

    def test_root_only_key_is_read_by_keyd_alone(self):
        keydir = os.path.join(self.tmp, "private")
        os.mkdir(keydir, 0o700)
        key = os.path.join(keydir, "key.pem")
        shutil.copyfile(self.key, key)
        os.chown(key, 0, 0)
        os.chmod(key, 0o600)
        watch = OpenWatch(key)
        self.addCleanup(watch.close)
        srv = self.server(self.app_cmd(self.ECHO), env=self.env(KEYFILE=key))
        srv.cert, srv.keyfile = self.cert, key
        srv.keyd = self.keyd_of(srv)
        at_start = watch.openers()
        self.assertTrue(at_start, "nobody opened the key file at start-up (%s)" % watch.kind)
        if watch.kind == "fanotify":
            self.assertEqual(set(at_start), {srv.keyd},
                             "the key file was opened by %r; keyd is %d, the master %d"
                             % (at_start, srv.keyd, srv.pid))
        self.echo_once(srv, b"one\n")
        self.assertEqual(watch.openers(), [], "the key file was opened again for a connection")
        # it is not needed any more at all
        os.rename(key, key + ".gone")
        self.echo_once(srv, b"two\n")
        self.assertEqual(watch.openers(), [])


class EmbedTest(KeydTest):
    """The embedding API (examples/embed-server.c, ucspitls(3))."""

    def test_embedder_told_when_keyd_cannot_be_restarted(self):
        # keyd dies and its key file has become unusable: the embedder must
        # learn that no new keyd could be started (-1), not be told
        # "restarted" while every later connection fails; the example
        # then exits 111, as tlsserver does
        live_cert = os.path.join(self.tmp, "live-cert.pem")
        live_key = os.path.join(self.tmp, "live-key.pem")
        shutil.copyfile(self.cert, live_cert)
        shutil.copyfile(self.key, live_key)
        p, port, log = self.start_printing_port(
            "embed-server", [harness.binary("embed-server"), "0", *self.app_cmd(self.ECHO)],
            self.env(CERTFILE=live_cert, KEYFILE=live_key))

        class Srv:
            cert = self.cert
        Srv.port = port
        self.echo_once(Srv)
        def only_keyd():  # once the connection's worker has gone
            kids = [c.pid for c in live_children(p.pid)]
            return kids[0] if len(kids) == 1 and is_locked_in_keyd(kids[0]) else None
        keyd = wait_until(only_keyd, 5)
        self.assertTrue(keyd, "no keyd alone among %r" % live_children(p.pid))
        with open(live_key, "w") as f:
            f.write("not a key any more\n")
        os.kill(keyd, signal.SIGKILL)
        try:
            rc = p.wait(5)
        except subprocess.TimeoutExpired:
            self.fail("embed-server still runs 5 s after keyd died for good; log:\n" + log())
        self.assertEqual(rc, EXIT_TEMPORARY, log())
        self.assertRegex(log(), r"fatal: keyd: .*%s" % re.escape(live_key))


class PasswordFd3Test(KeydTest):
    """-3: an encrypted key whose password keyd reads from fd 3."""

    PASSWORD = "k3yd-e2e-" + os.urandom(12).hex()

    def encrypted_pair(self):
        key = os.path.join(self.tmp, "enc-key.pem")
        cert = os.path.join(self.tmp, "enc-cert.pem")
        for argv in (["openssl", "genpkey", "-algorithm", "EC", "-pkeyopt",
                      "ec_paramgen_curve:P-256", "-aes256", "-pass", "pass:" + self.PASSWORD,
                      "-out", key],
                     ["openssl", "req", "-x509", "-new", "-key", key, "-passin",
                      "pass:" + self.PASSWORD, "-out", cert, "-days", "2", "-subj",
                      "/CN=localhost", "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"]):
            subprocess.run(argv, check=True, stdin=subprocess.DEVNULL,
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        os.chmod(key, 0o600)
        return cert, key

    def password_file(self, text):
        path = os.path.join(self.tmp, "password")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        os.write(fd, text.encode() + b"\n")
        os.close(fd)
        return path

    def start_fd3(self, cert, key, pwfile):
        """tlsserver -3 with fd 3 reading pwfile (through sh's redirection,
        exec'd away); returns a Fd3Server."""
        return Fd3Server(self, ["sh", "-c", 'exec "$0" "$@" 3<"$PWFILE"',
                                harness.binary("tlsserver"), "-v", "-1", "-3", "127.0.0.1", "0",
                                *self.app_cmd(self.ECHO)],
                         self.env(CERTFILE=cert, KEYFILE=key, PWFILE=pwfile))

    def test_encrypted_key_with_password_on_fd3(self):
        cert, key = self.encrypted_pair()
        srv = self.start_fd3(cert, key, self.password_file(self.PASSWORD))
        srv.cert, srv.keyfile = cert, key
        srv.keyd = self.keyd_of(srv)
        conn = self.tls_connect(srv.port, client_context(cert))
        self.addCleanup(conn.close)
        conn.send(b"encrypted key\n")
        self.assertEqual(conn.recv_exactly(14), b"encrypted key\n")
        worker, app = self.connection_processes(srv)
        # openssl pkey needs the password for the encrypted file
        plain = os.path.join(self.tmp, "decrypted-for-scan.pem")
        subprocess.run(["openssl", "pkey", "-in", key, "-passin", "pass:" + self.PASSWORD,
                        "-out", plain], check=True, stdin=subprocess.DEVNULL,
                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=30)
        secrets = keyscan.KeySecrets(plain)
        password = keyscan.RawPatterns([("password", self.PASSWORD.encode())], "the password")
        self.assert_key_found(srv.keyd, secrets, "keyd")
        for pid, what in ((srv.pid, "the master"), (worker, "the worker"), (app, "the app")):
            self.assert_key_absent(pid, secrets, what)
            self.assert_key_absent(pid, password, what)
        # keyd wiped the password once the key was decrypted
        self.assert_key_absent(srv.keyd, password, "keyd (the password, after loading)")
        # nobody but keyd kept fd 3 (the master closed it after keyd started)
        for pid, what in ((srv.pid, "the master"), (worker, "the worker"), (srv.keyd, "keyd")):
            self.assertFalse(os.path.exists("/proc/%d/fd/3" % pid)
                             and "password" in os.readlink("/proc/%d/fd/3" % pid),
                             "%s still holds the password file on fd 3" % what)
        conn.close_notify()
        conn.recv_all(timeout=10)

    def test_dead_keyd_with_fd3_password_ends_the_master(self):
        cert, key = self.encrypted_pair()
        srv = self.start_fd3(cert, key, self.password_file(self.PASSWORD))
        srv.cert, srv.keyfile = cert, key
        srv.keyd = self.keyd_of(srv)
        self.echo_once(srv)
        os.kill(srv.keyd, signal.SIGKILL)
        try:
            rc = srv.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.fail("the -3 master still runs 5 s after keyd died; log:\n" + srv.log())
        self.assertEqual(rc, EXIT_TEMPORARY, srv.log())
        srv.wait_log(r"fatal: .*keyd", timeout=1)

    def test_keyd_killed_before_it_is_ready(self):
        # -3 with a pipe no password is ever written to: keyd waits on fd 3
        # and never reports.  Killed there, it hangs up on the front end,
        # which must say so at once (and, when keyd is its child, how it
        # ended), not after its 10 s start timeout.
        cert, key = self.encrypted_pair()
        for name in ("tlsserver", "tlsd"):
            with self.subTest(name=name):
                r, w = os.pipe()
                argv = ["sh", "-c", 'exec "$0" "$@" 3<&%d' % r, harness.binary(name), "-3"]
                if name == "tlsserver":
                    argv += ["-1", "127.0.0.1", "0"]
                argv += self.app_cmd(self.ECHO)
                p = subprocess.Popen(argv, env=self.env(CERTFILE=cert, KEYFILE=key),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, pass_fds=(r,),
                                     start_new_session=True)
                os.close(r)
                try:
                    keyd = wait_until(lambda: waiting_keyd(p.pid), 5)
                    self.assertIsNotNone(keyd, "no keyd waiting for its password on fd 3")
                    os.kill(keyd, signal.SIGKILL)
                    t0 = time.monotonic()
                    out, err = p.communicate(timeout=15)
                    took = time.monotonic() - t0
                finally:
                    os.close(w)
                    if p.poll() is None:
                        p.kill()
                        p.communicate()
                lines = err.decode(errors="replace").splitlines()
                self.assertEqual(p.returncode, EXIT_TEMPORARY, lines)
                self.assertEqual(out, b"")
                self.assertEqual(len(lines), 1, lines)
                self.assertIn("keyd ended before it was ready", lines[0])
                if name == "tlsserver":  # tlsd's keyd is init's child
                    self.assertIn("killed by signal %d" % signal.SIGKILL, lines[0])
                self.assertLess(took, 5, "waited for the start timeout: %r" % lines)
                self.assert_no_app_run()

    def test_wrong_password_on_fd3(self):
        cert, key = self.encrypted_pair()
        pw = self.password_file("not-the-password")
        p = subprocess.run(["sh", "-c", 'exec "$0" "$@" 3<"$PWFILE"', harness.binary("tlsserver"),
                            "-1", "-3", "127.0.0.1", "0", *self.app_cmd(self.ECHO)],
                           env=self.env(CERTFILE=cert, KEYFILE=key, PWFILE=pw),
                           stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, timeout=15, start_new_session=True)
        lines = p.stderr.decode(errors="replace").splitlines()
        self.assertEqual(p.returncode, EXIT_TEMPORARY, lines)
        self.assertEqual(p.stdout, b"")
        self.assertEqual(len(lines), 1, lines)
        self.assertIn(key, lines[0])
        self.assert_no_app_run()


class Fd3Server:
    """Just enough of harness.Server for a master started through sh
    (harness.Server closes every fd but 0-2)."""

    def __init__(self, test, argv, env):
        self.test = test
        self.name = self.progname = "tlsserver"
        self.errpath = os.path.join(test.tmp, "fd3-server.err")
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, env=env, cwd=test.tmp)
        self.pid = self.proc.pid
        test.addCleanup(self.stop)
        line = harness.read_line(self.proc.stdout.fileno(), 15)
        if not line.strip().isdigit():
            raise AssertionError("no port from %r (exit %r); log:\n%s"
                                 % (argv, self.proc.poll(), self.log()))
        self.port = int(line)

    def log(self):
        with open(self.errpath, "rb") as f:
            return f.read().decode(errors="replace")

    def wait_log(self, pattern, timeout=5):
        rx = re.compile(pattern, re.M)
        m = wait_until(lambda: rx.search(self.log()), timeout)
        if m is None:
            self.test.fail("no %r in the log within %ss:\n%s" % (pattern, timeout, self.log()))
        return m

    def worker_pids(self):
        return [int(x) for x in re.findall(r"^tlsserver: pid (\d+) from ", self.log(), re.M)]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("tlsserver -3 ignored SIGTERM for 5 s")
        self.proc.stdout.close()


# ============================================================ 5. tlsd under tcpserver

class TlsdTest(KeydTest):

    def start_tlsd(self, keyname, app):
        """tcpserver running tlsd with keyname's key: (tcpserver, port, log)."""
        cert, key = self.keypair(keyname)
        return self.start_printing_port(
            "tcpserver", [harness.tool("tcpserver"), "-1", "127.0.0.1", "0",
                          harness.binary("tlsd"), *app],
            self.env(CERTFILE=cert, KEYFILE=key))

    def check_tlsd(self, keyname):
        cert, key = self.keypair(keyname)
        secrets = keyscan.KeySecrets(key)
        p, port, log = self.start_tlsd(keyname, self.app_cmd(self.ECHO))

        sock = self.connect(port)
        self.addCleanup(sock.close)
        tlsd = wait_until(lambda: live_children(p.pid), 5)
        self.assertTrue(tlsd, "tcpserver started no tlsd")
        tlsd = tlsd[0].pid

        # tlsd's keyd: a fork of tlsd (forked twice, so that init adopts
        # it: the locked-in tlsd could never reap it), locked in
        def find_keyd():
            table = proc_table()
            mine = table.get(tlsd)
            for c in table.values():
                if (mine and c.pid != tlsd and c.cmdline == mine.cmdline
                        and c.ppid != tlsd and is_locked_in_keyd(c.pid)):
                    return c.pid
            return None
        keyd = wait_until(find_keyd, 5)
        self.assertTrue(keyd, "no locked-in keyd of tlsd (adopted by init): %r; log:\n%s"
                        % (live_children(tlsd), log()))
        self.assert_key_found(keyd, secrets, "tlsd's keyd")
        self.assertEqual(nice(keyd), keyd_nice(nice(tlsd)))
        # before its handshake tlsd holds one socket to keyd, its channel:
        # keyd's control socket was closed once keyd had reported ready
        self.assertEqual(len(unix_seqpacket_fds(tlsd)), 1,
                         "tlsd's fds to keyd: %r" % unix_seqpacket_fds(tlsd))

        conn = harness.TLSConn(sock, client_context(cert))
        conn.handshake()
        conn.send(b"via tlsd\n")
        self.assertEqual(conn.recv_exactly(9), b"via tlsd\n")
        apps = [c.pid for c in live_children(tlsd) if self.app in c.cmdline]
        self.assertEqual(len(apps), 1, live_children(tlsd))
        self.assert_key_absent(tlsd, secrets, "tlsd (the worker)")
        self.assert_key_absent(apps[0], secrets, "tlsd's app")
        conn.close_notify()
        data, _ = conn.recv_all(timeout=10)
        self.assertEqual(data, b"")
        conn.close()
        if not wait_until(lambda: not running(tlsd), 5):
            self.fail("tlsd still runs after the connection ended; log:\n" + log())
        t0 = time.monotonic()
        gone = wait_until(lambda: not running(keyd), 2)
        self.assertTrue(gone, "tlsd's keyd %d still runs %.1f s after the connection ended "
                        "(state %r)" % (keyd, time.monotonic() - t0, state_of(keyd)))
        self.assertNotRegex(log(), r"fatal|keyd", log())
        self.assertEqual(self.app_run()[-1], "exit 0")

    def test_tlsd_ec(self):
        self.check_tlsd("p256")

    def test_tlsd_rsa(self):
        self.check_tlsd("rsa2048")

    def check_tlsd_schemes(self, keyname):
        # tlsd's keyd warms up one scheme per key (it signs once): every
        # other scheme is prepared by the locked-in keyd on request
        marker = "signed-by-tlsd-keyd " + self.tmp
        _, port, log = self.start_tlsd(keyname, ["/bin/echo", marker])
        cert, _ = self.keypair(keyname)
        assert_every_scheme(self, keyname, port, cert, marker, log)
        self.assertNotRegex(log(), r"fatal|keyd|refused", log())

    def test_tlsd_every_scheme_ec(self):
        self.check_tlsd_schemes("p256")

    def test_tlsd_every_scheme_rsa(self):
        self.check_tlsd_schemes("rsa2048")

    def test_tlsd_every_scheme_ed25519(self):
        self.check_tlsd_schemes("ed25519")


if __name__ == "__main__":
    harness.main()
