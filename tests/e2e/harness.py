"""Shared helpers of the end-to-end tests (Python 3 stdlib only).

Every test file does::

    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import harness

and derives its test cases from harness.E2ETest, which gives each test:

- a private temporary directory (self.tmp) holding a throwaway P-256
  certificate (self.cert, self.key; the key 0600) and, on request, an RSA-2048
  one (self.rsa_cert());
- self.app: a copy of ucspi-testapp inside self.tmp, so that the master,
  its workers (forks of it) and the apps (exec'd from the symlink) all carry
  self.tmp in their command line and can be found in /proc afterwards;
- self.rec: the file the test app records its events in ($TESTAPP_OUT);
- self.server(...): starts tlsserver (or another front end) with -v -1,
  reads the bound port from its stdout and captures stderr to a file;
- on teardown: SIGTERM to every server, then a bounded wait until no process
  with self.tmp in its command line is left (a leftover fails the test and is
  then killed).

The binaries come from $UCSPITLS_BUILD (CTest sets it), else ./build.
All waits are bounded.  E2E_KEEP=1 keeps each test's directory (logs, app
records) for a post-mortem.
"""

import os
import re
import select
import shutil
import signal
import socket
import stat
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import weakref

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(os.path.dirname(HERE))
IS_ROOT = os.geteuid() == 0

_BINARIES = {
    "tlsserver": "cmd/tlsserver",
    "tlsd": "cmd/tlsd",
    "tlsserver-testhooks": "cmd/tlsserver-testhooks",
    "smtpd-demo": "examples/smtpd-demo",
    "embed-server": "examples/embed-server",
    "testapp": "tests/apps/ucspi-testapp",
    "gen-verify": "tests/apps/gen-verify",
    "starttls-app": "tests/apps/starttls-app",
    "tlsbench": "bench/tlsbench",
    "bench-gen": "bench/bench-gen",
    "bench-sink": "bench/bench-sink",
}


def build_dir():
    b = os.environ.get("UCSPITLS_BUILD")
    if b:
        return b
    return os.path.join(SOURCE_DIR, "build")


def binary(name):
    """Absolute path of a built program; fails the test if it is missing."""
    path = os.path.join(build_dir(), _BINARIES[name])
    if not os.access(path, os.X_OK):
        raise AssertionError(
            "%s is not built (looked in %s; set UCSPITLS_BUILD)" % (path, build_dir()))
    return path


def tool(name):
    """Absolute path of a system tool; skips the test when it is absent."""
    p = shutil.which(name)
    if p is None:
        raise unittest.SkipTest("%s is not installed (scripts/deps.sh test)" % name)
    return p


# ---------------------------------------------------------------- processes

class Proc:
    __slots__ = ("pid", "ppid", "state", "cmdline")

    def __init__(self, pid, ppid, state, cmdline):
        self.pid, self.ppid, self.state, self.cmdline = pid, ppid, state, cmdline

    def __repr__(self):
        return "<pid %d ppid %d %s %r>" % (self.pid, self.ppid, self.state, self.cmdline)


def proc_table():
    """Every process: pid -> Proc (state letter, ppid, command line)."""
    out = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d, "rb") as f:
                st = f.read()
            with open("/proc/%s/cmdline" % d, "rb") as f:
                cmd = f.read()
        except OSError:
            continue
        rp = st.rindex(b")")
        fields = st[rp + 2:].split()
        out[int(d)] = Proc(int(d), int(fields[1]), fields[0].decode(),
                           cmd.replace(b"\0", b" ").decode(errors="replace").strip())
    return out


def children(pid, table=None):
    table = table if table is not None else proc_table()
    return sorted((p for p in table.values() if p.ppid == pid), key=lambda p: p.pid)


def proc_status(pid):
    """/proc/PID/status as a dict of strings."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            k, _, v = line.partition(":")
            out[k] = v.strip()
    return out


def wait_until(pred, timeout, interval=0.02):
    """Polls pred() until it returns a true value or timeout seconds pass;
    returns the last value."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= deadline:
            return v
        time.sleep(interval)


def read_line(fd, timeout):
    """One line from a raw fd within timeout seconds (b'' on EOF/timeout)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while not buf.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        r, _, _ = select.select([fd], [], [], left)
        if not r:
            break
        c = os.read(fd, 1)
        if not c:
            break
        buf += c
    return buf


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def port_listening(port, host="127.0.0.1"):
    """True when something accepts TCP connections on host:port."""
    s = socket.socket()
    s.settimeout(2)
    try:
        s.connect((host, port))
        return True
    except OSError:
        return False
    finally:
        s.close()


# ------------------------------------------------------------- certificates

def make_cert(directory, name="ec", kind="ec"):
    """A self-signed CN=localhost certificate (SAN localhost, 127.0.0.1);
    returns (certfile, keyfile); the key file is 0600."""
    cert = os.path.join(directory, name + "-cert.pem")
    key = os.path.join(directory, name + "-key.pem")
    newkey = (["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if kind == "ec"
              else ["-newkey", "rsa:2048"])
    old = os.umask(0o077)
    try:
        subprocess.run(["openssl", "req", "-x509", *newkey, "-nodes", "-keyout", key,
                        "-out", cert, "-days", "2", "-subj", "/CN=localhost",
                        "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=60)
    finally:
        os.umask(old)
    os.chmod(key, 0o600)
    os.chmod(cert, 0o644)
    return cert, key


def make_chain(directory):
    """root CA -> intermediate CA -> leaf (CN=localhost), all P-256.
    Returns (root cert, chain file = leaf + intermediate, leaf key)."""
    def run(*args):
        subprocess.run(["openssl", *args], check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, timeout=60, cwd=directory)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    ca_ext = os.path.join(directory, "ca.ext")
    leaf_ext = os.path.join(directory, "leaf.ext")
    with open(ca_ext, "w") as f:
        f.write("basicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\n")
    with open(leaf_ext, "w") as f:
        f.write("basicConstraints=CA:FALSE\nsubjectAltName=DNS:localhost,IP:127.0.0.1\n")
    run("req", "-x509", *ec, "-keyout", "root.key", "-out", "root.pem", "-days", "2",
        "-subj", "/CN=e2e root", "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    run("req", *ec, "-keyout", "inter.key", "-out", "inter.csr", "-subj", "/CN=e2e intermediate")
    run("x509", "-req", "-in", "inter.csr", "-CA", "root.pem", "-CAkey", "root.key",
        "-CAcreateserial", "-out", "inter.pem", "-days", "2", "-extfile", ca_ext)
    run("req", *ec, "-keyout", "leaf.key", "-out", "leaf.csr", "-subj", "/CN=localhost")
    run("x509", "-req", "-in", "leaf.csr", "-CA", "inter.pem", "-CAkey", "inter.key",
        "-CAcreateserial", "-out", "leaf.pem", "-days", "2", "-extfile", leaf_ext)
    chain = os.path.join(directory, "chain.pem")
    with open(chain, "wb") as out:
        for name in ("leaf.pem", "inter.pem"):
            with open(os.path.join(directory, name), "rb") as f:
                out.write(f.read())
    key = os.path.join(directory, "leaf.key")
    os.chmod(key, 0o600)
    return os.path.join(directory, "root.pem"), chain, key


def client_context(cafile, minimum=None, maximum=None):
    """A Python ssl client context that verifies the test certificate."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.load_verify_locations(cafile)
    ctx.check_hostname = True
    # A bare TCP EOF must leave the connection usable for writing (a
    # half-closed peer); TLSConn tells it from close_notify by the alert.
    ctx.options |= ssl.OP_IGNORE_UNEXPECTED_EOF
    if minimum is not None:
        ctx.minimum_version = minimum
    if maximum is not None:
        ctx.maximum_version = maximum
    return ctx


# ------------------------------------------------------------- the server

_SCRUB = ("CERTFILE", "KEYFILE", "CERTCHAINFILE", "CIPHERS", "CIPHERSUITES", "DHFILE",
          "SSL_UID", "SSL_GID", "TLS_UID", "TLS_GID", "SSL_CHROOT", "UCSPITLS",
          "TESTAPP_OUT", "UCSPITLS_TEST_TRY", "SSLCTLFD", "SSLREADFD", "SSLWRITEFD",
          "PROTO", "TCPREMOTEIP", "TCPREMOTEPORT", "TCPLOCALIP", "TCPLOCALPORT",
          "MAILDIR", "UCSPITLS_BENCH_KEY_IN_WORKER")


def base_env(**extra):
    env = {k: v for k, v in os.environ.items() if k not in _SCRUB}
    for k, v in extra.items():
        if v is None:
            env.pop(k, None)
        else:
            env[k] = v
    return env


class Server:
    """A running tlsserver-like front end: `binary [opts] host port prog...`."""

    def __init__(self, test, prog, opts=(), env=None, name="tlsserver",
                 host="127.0.0.1", port="0", verbose=True, exe=None):
        self.test = test
        self.name = name
        self.progname = name
        test._nservers += 1
        self.errpath = os.path.join(test.tmp, "%s-%d.err" % (name, test._nservers))
        argv = [exe or binary(name)]
        if verbose:
            argv.append("-v")
        argv += ["-1", *opts, host, str(port), *prog]
        self.argv = argv
        with open(self.errpath, "wb") as err:
            self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                         stderr=err, env=env, cwd=test.tmp, close_fds=True)
        self.pid = self.proc.pid
        test._servers.append(self)
        line = read_line(self.proc.stdout.fileno(), 15)
        if not line.strip().isdigit():
            rc = self.proc.poll()
            raise AssertionError("%s printed no port (stdout %r, exit %r); stderr:\n%s"
                                 % (" ".join(argv), line, rc, self.log()))
        self.port = int(line)

    # -- the log
    def log(self):
        try:
            with open(self.errpath, "rb") as f:
                return f.read().decode(errors="replace")
        except OSError:
            return ""

    def wait_log(self, pattern, timeout=5, count=1):
        """Waits until the log holds `count` matches of the regex pattern;
        returns the count-th match.  Fails the test on timeout."""
        rx = re.compile(pattern, re.M)

        def found():
            m = list(rx.finditer(self.log()))
            return m[count - 1] if len(m) >= count else None

        m = wait_until(found, timeout)
        if m is None:
            self.test.fail("no %r (x%d) in %s's log within %ss:\n%s\n%s"
                           % (pattern, count, self.name, timeout, self.log(),
                              self.describe_tree()))
        return m

    def describe_tree(self):
        """The master's descendants with state and kernel wait channel, for
        failure messages."""
        table = proc_table()
        lines = []

        def walk(pid, depth):
            for p in children(pid, table):
                try:
                    with open("/proc/%d/wchan" % p.pid) as f:
                        wchan = f.read()
                except OSError:
                    wchan = "?"
                lines.append("%s%d %s %s [%s]" % ("  " * depth, p.pid, p.state, p.cmdline, wchan))
                walk(p.pid, depth + 1)
        walk(self.pid, 1)
        return "processes under the master %d:\n%s" % (self.pid, "\n".join(lines) or "  none")

    def end_of(self, pid, timeout=5):
        """Waits for the master's `end PID ...` line; returns ('status', N)
        or ('signal', N)."""
        m = self.wait_log(r"^%s: end %d (status|signal) (\d+)$" % (re.escape(self.progname), pid),
                          timeout)
        return m.group(1), int(m.group(2))

    def worker_pids(self):
        """pids of the `pid N from IP` lines, in order."""
        return [int(x) for x in re.findall(r"^%s: pid (\d+) from " % re.escape(self.progname),
                                           self.log(), re.M)]

    def wait_idle(self, timeout=10):
        """Waits until every accepted connection's worker has ended: the
        master's last status line reads 0/N and no worker process is left."""
        def idle():
            lines = re.findall(r"^%s: status: (\d+)/\d+$" % re.escape(self.progname),
                               self.log(), re.M)
            return lines and lines[-1] == "0" and not self.workers()
        if not wait_until(idle, timeout):
            self.test.fail("%s did not return to 0 active connections within %ss; "
                           "workers %r; log:\n%s" % (self.name, timeout, self.workers(), self.log()))

    # -- processes
    def workers(self):
        """Live worker processes: children of the master that the log
        announced as connections (other children, such as keyd, are not)."""
        pids = set(self.worker_pids())
        return [p for p in children(self.pid) if p.pid in pids]

    def helpers(self):
        """Children of the master that are not connections (keyd)."""
        pids = set(self.worker_pids())
        return [p for p in children(self.pid) if p.pid not in pids]

    def wait_worker(self, timeout=5):
        """The newest live worker process."""
        w = wait_until(self.workers, timeout)
        if not w:
            self.test.fail("no worker process appeared; log:\n" + self.log())
        return w[-1]

    def zombies(self):
        return [p for p in children(self.pid) if p.state == "Z"]

    def alive(self):
        return self.proc.poll() is None

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                raise AssertionError("%s ignored SIGTERM for 5 s" % self.name)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
            self.proc.stdout = None


# ------------------------------------------------------- sanitizer build

_SANITIZER_REPORT = re.compile(rb"ERROR: (AddressSanitizer|LeakSanitizer)|runtime error: "
                               rb"|ERROR: Can't open file")


def sanitizer_reports(tmp, test_id):
    """Sanitizer build ($UCSPITLS_SANITIZER_REPORTS set, tests/sanitizer): a
    locked-in worker or keyd writes its report on stderr, i.e. into a log
    file in tmp.  Copies each such file to that directory (the
    sanitizer_reports test prints it) and returns one error per file."""
    out = os.environ.get("UCSPITLS_SANITIZER_REPORTS")
    errors = []
    if not out:
        return errors
    for top, _, files in os.walk(tmp):
        for name in files:
            path = os.path.join(top, name)
            try:
                if not stat.S_ISREG(os.lstat(path).st_mode):
                    continue  # a FIFO a test made would block the open
                with open(path, "rb") as f:
                    data = f.read(64 << 20)
            except OSError:
                continue
            if _SANITIZER_REPORT.search(data):
                os.makedirs(out, exist_ok=True)
                copy = os.path.join(out, "e2e.%s.%s" % (test_id, name))
                shutil.copyfile(path, copy)
                errors.append("sanitizer report in %s (copied to %s)" % (name, copy))
    return errors


# ------------------------------------------------------------- test base

class E2ETest(unittest.TestCase):
    """Base class: temporary directory, certificate, servers, leftover check."""

    # Seconds a process of the test may take to go away after the clients
    # are done and the servers are stopped.
    LEFTOVER_TIMEOUT = 5

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="ucspitls-e2e-")
        # the app may run as another uid (-u): it needs to reach self.tmp
        # and to create its record file there
        os.chmod(self.tmp, 0o755)
        self.recdir = os.path.join(self.tmp, "rec")
        os.mkdir(self.recdir)
        os.chmod(self.recdir, 0o1777)
        self.rec = os.path.join(self.recdir, "app.log")
        self.cert, self.key = make_cert(self.tmp)
        self.app = os.path.join(self.tmp, "app")
        # a copy, not a symlink: an app run as another uid (-u) must be able
        # to exec it even when the build tree is in a private (0700)
        # directory, as a CI clone may be
        shutil.copyfile(binary("testapp"), self.app)
        os.chmod(self.app, 0o755)
        self._servers = []
        self._socks = []
        self._nservers = 0
        self._rsa = None
        self.addCleanup(self._teardown)

    def rsa_cert(self):
        if self._rsa is None:
            self._rsa = make_cert(self.tmp, "rsa", "rsa")
        return self._rsa

    def env(self, **extra):
        """The server's environment: CERTFILE/KEYFILE, TESTAPP_OUT, extra
        (a None value removes a name)."""
        base = {"CERTFILE": self.cert, "KEYFILE": self.key, "TESTAPP_OUT": self.rec}
        base.update(extra)
        return base_env(**base)

    def server(self, prog, opts=(), env=None, **kw):
        """Starts a front end running prog (list) with opts; env defaults to
        self.env()."""
        return Server(self, list(prog), list(opts), env if env is not None else self.env(), **kw)

    def app_cmd(self, *args):
        return [self.app, *[str(a) for a in args]]

    # -- our processes
    def own_processes(self):
        me = os.getpid()
        return [p for p in proc_table().values()
                if self.tmp in p.cmdline and p.pid != me]

    def assert_no_leftovers(self, timeout=None):
        timeout = self.LEFTOVER_TIMEOUT if timeout is None else timeout
        left = wait_until(lambda: not self.own_processes(), timeout) or self.own_processes()
        if left is not True and left:
            for p in left:
                try:
                    os.kill(p.pid, signal.SIGKILL)
                except OSError:
                    pass
            self.fail("processes left running %ss after the test: %r" % (timeout, left))

    def _teardown(self):
        errors = []
        for s in self._socks:  # a failed test may have left a client open
            s.close()
        for s in self._servers:
            try:
                s.stop()
            except AssertionError as e:
                errors.append(str(e))
        try:
            self.assert_no_leftovers()
        except AssertionError as e:
            errors.append(str(e))
        errors += sanitizer_reports(self.tmp, self.id())
        if os.environ.get("E2E_KEEP"):
            sys.stderr.write("kept %s\n" % self.tmp)
        else:
            shutil.rmtree(self.tmp, ignore_errors=True)
        if errors:
            raise AssertionError("; ".join(errors))

    # -- the test app's record
    def records(self):
        """The test app's recorded lines, split into one list per app run
        (each run starts with `pid N`)."""
        try:
            with open(self.rec, "rb") as f:
                lines = f.read().decode(errors="replace").splitlines()
        except FileNotFoundError:
            return []
        runs = []
        for line in lines:
            if line.startswith("pid ") or not runs:
                runs.append([])
            runs[-1].append(line)
        return runs

    def wait_app_exit(self, n=1, timeout=10):
        """Waits until n app runs have recorded `exit`; returns the runs."""
        def done():
            runs = self.records()
            return runs if sum(1 for r in runs if r and r[-1].startswith("exit ")) >= n else None
        runs = wait_until(done, timeout)
        if runs is None:
            self.fail("the test app did not record %d exit(s) within %ss; records: %r%s"
                      % (n, timeout, self.records(),
                         "".join("\n--- %s log:\n%s" % (s.name, s.log()) for s in self._servers)))
        return runs

    def app_run(self, timeout=10):
        """The single finished app run of this test (as a list of lines)."""
        runs = self.wait_app_exit(1, timeout)
        self.assertEqual(len(runs), 1, "expected one app run, got %r" % runs)
        return runs[0]

    def assert_no_app_run(self):
        self.assertEqual(self.records(), [], "the app ran, but must not have")

    # -- clients
    def ctx(self, **kw):
        return client_context(self.cert, **kw)

    def connect(self, port, timeout=10):
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self._socks.append(s)  # closed at teardown if the test did not
        return s

    def tls_connect(self, port, ctx=None, timeout=10):
        conn = TLSConn(self.connect(port, timeout), ctx or self.ctx(), timeout=timeout)
        try:
            conn.handshake()
        except BaseException:
            conn.close()
            raise
        return conn


def field(run, prefix):
    """The first line of a run starting with prefix + ' ' (without it), or
    None; `prefix` alone matches a bare line."""
    for line in run:
        if line == prefix:
            return ""
        if line.startswith(prefix + " "):
            return line[len(prefix) + 1:]
    return None


def env_of(run):
    """The `env NAME=value ...` line of a run as a dict."""
    line = field(run, "env")
    if line is None:
        return None
    out = {}
    for item in line.split(" "):
        if "=" in item:
            k, _, v = item.partition("=")
            out[k] = unescape(v)
    return out


def unescape(s):
    return re.sub(r"\\x([0-9a-f]{2})", lambda m: chr(int(m.group(1), 16)), s)


# ------------------------------------------------------------- TLS client

_CONNS = weakref.WeakKeyDictionary()


def _msg_callback(obj, direction, version, content_type, msg_type, data):
    conn = _CONNS.get(obj)
    if conn is None or direction != "read":
        return
    if content_type == ssl._TLSContentType.ALERT:
        conn.alerts_received.append(msg_type)
        if msg_type == ssl._TLSAlertType.CLOSE_NOTIFY:
            conn.got_close_notify = True


class TLSConn:
    """A TLS client over a plain socket, driven by hand (ssl.SSLObject over
    memory BIOs) so that a test controls every step: the handshake on an
    already used socket, close_notify while still reading, full duplex
    without threads, an abortive close."""

    def __init__(self, sock, ctx, hostname="localhost", timeout=10):
        self.sock = sock
        sock.setblocking(False)
        self.inc = ssl.MemoryBIO()
        self.outb = ssl.MemoryBIO()
        if ctx._msg_callback is None:
            ctx._msg_callback = _msg_callback
        self.got_close_notify = False
        self.alerts_received = []
        self.obj = ctx.wrap_bio(self.inc, self.outb, server_side=False,
                                server_hostname=hostname)
        _CONNS[self.obj] = self
        self.wbuf = bytearray()
        self.raw_eof = False
        self.timeout = timeout
        self.sent_close = False
        self.write_error = None

    # -- raw socket moves
    def _deadline(self, timeout):
        return time.monotonic() + (self.timeout if timeout is None else timeout)

    def _left(self, deadline):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("TLS client: timed out")
        return left

    def _drain_out(self):
        if self.outb.pending:
            self.wbuf += self.outb.read()

    def _flush_some(self):
        if self.wbuf:
            try:
                n = self.sock.send(self.wbuf)
            except BlockingIOError:
                n = 0
            except (BrokenPipeError, ConnectionResetError) as e:
                # the peer is gone for writing: keep what it sent readable
                self.write_error = e
                n = len(self.wbuf)
            del self.wbuf[:n]

    def flush(self, timeout=None):
        deadline = self._deadline(timeout)
        self._drain_out()
        while self.wbuf:
            select.select([], [self.sock], [], self._left(deadline))
            self._flush_some()
        if self.write_error is not None:
            raise self.write_error

    def _fill(self):
        """Moves what the socket has into the TLS object; False if nothing."""
        if self.raw_eof:
            return False
        try:
            data = self.sock.recv(1 << 18)
        except BlockingIOError:
            return False
        except ConnectionResetError:
            data = b""
        if not data:
            self.inc.write_eof()
            self.raw_eof = True
        else:
            self.inc.write(data)
        return True

    def _wait_read(self, deadline):
        if self.raw_eof:
            return
        select.select([self.sock], [], [], self._left(deadline))
        self._fill()

    # -- TLS
    def first_flight(self):
        """Starts the handshake and returns the ClientHello without sending
        it (the caller sends it, e.g. pipelined behind STARTTLS)."""
        try:
            self.obj.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outb.read()

    def handshake(self, timeout=None, hold_finished=False):
        """Runs the handshake.  hold_finished: keep our last flight (the
        Finished) unsent, so that the caller can send it together with
        what follows (the next flush sends it)."""
        deadline = self._deadline(timeout)
        self.sock.setblocking(False)
        while True:
            try:
                self.obj.do_handshake()
                if not hold_finished:
                    self.flush(self._left(deadline))
                return
            except ssl.SSLWantReadError:
                self.flush(self._left(deadline))
                if self.raw_eof:
                    raise ssl.SSLEOFError("EOF during the handshake")
                self._wait_read(deadline)

    def version(self):
        return self.obj.version()

    def cipher(self):
        return self.obj.cipher()

    def send(self, data, timeout=None):
        mv = memoryview(data)
        deadline = self._deadline(timeout)
        for i in range(0, len(mv), 16384):
            self.obj.write(mv[i:i + 16384])
            self._drain_out()
            if len(self.wbuf) > 1 << 20:
                self.flush(self._left(deadline))
        self.flush(self._left(deadline))

    def end_kind(self):
        return "close_notify" if self.got_close_notify else "eof"

    def recv(self, timeout=None):
        """Next plaintext bytes; b'' at the end (the peer's close_notify,
        or a bare TCP EOF: see end_kind())."""
        deadline = self._deadline(timeout)
        while True:
            try:
                data = self.obj.read(1 << 18)
                self._drain_out()
                return data
            except ssl.SSLZeroReturnError:
                return b""
            except ssl.SSLWantReadError:
                self.flush(self._left(deadline))
                if self.raw_eof:
                    return b""
                self._wait_read(deadline)

    def recv_exactly(self, n, timeout=None):
        deadline = self._deadline(timeout)
        buf = bytearray()
        while len(buf) < n:
            d = self.recv(self._left(deadline))
            if not d:
                raise AssertionError("%s after %d of %d bytes: %r"
                                     % (self.end_kind(), len(buf), n, bytes(buf[:200])))
            buf += d
        return bytes(buf)

    def recv_all(self, timeout=None):
        """Everything until the peer's close; returns (bytes, how) with how
        'close_notify' or 'eof' (TCP EOF without close_notify)."""
        deadline = self._deadline(timeout)
        buf = bytearray()
        while True:
            try:
                d = self.recv(self._left(deadline))
            except ssl.SSLEOFError:
                return bytes(buf), "eof"
            if not d:
                return bytes(buf), self.end_kind()
            buf += d

    def _queue_close_notify(self):
        try:
            self.obj.unwrap()
        except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
            pass  # sent; the peer's close_notify is read later (or never)
        self.sent_close = True
        self._drain_out()

    def close_notify(self, timeout=None):
        """Sends close_notify (our write side ends), keeps the read side."""
        self._queue_close_notify()
        self.flush(timeout)

    def abort(self):
        """Closes with a TCP RST."""
        abort_socket(self.sock)

    def close(self):
        self.sock.close()

    def duplex(self, chunks, close_after_send=True, sink=None, timeout=60):
        """Sends every bytes object of the iterator `chunks` while reading
        all the peer sends, until the peer's close and our last byte are
        both done.  Each received piece goes to sink(data).  After the last
        chunk, sends close_notify if close_after_send.  Returns how the read
        side ended ('close_notify' or 'eof')."""
        deadline = self._deadline(timeout)
        it = iter(chunks)
        sending = True
        ended = None
        while True:
            if self.write_error is not None:
                sending = False
            # keep up to 1 MiB of records ready to go
            while sending and len(self.wbuf) + self.outb.pending < 1 << 20:
                c = next(it, None)
                if c is None:
                    sending = False
                    if close_after_send:
                        self._queue_close_notify()  # flushed below, still reading
                    break
                mv = memoryview(c)
                for i in range(0, len(mv), 16384):
                    self.obj.write(mv[i:i + 16384])
            self._drain_out()
            if ended is not None and not sending and not self.wbuf:
                return ended
            rl = [self.sock] if ended is None and not self.raw_eof else []
            wl = [self.sock] if self.wbuf else []
            if rl or wl:
                r, w, _ = select.select(rl, wl, [], min(self._left(deadline), 1.0))
                if w:
                    self._flush_some()
                if r:
                    self._fill()
            elif ended is not None:
                continue
            # (else: TCP EOF already seen; the TLS object reports it below)
            while ended is None:
                try:
                    d = self.obj.read(1 << 18)
                except ssl.SSLWantReadError:
                    if self.raw_eof:
                        ended = self.end_kind()
                    break
                except ssl.SSLZeroReturnError:
                    ended = self.end_kind()
                    break
                except ssl.SSLEOFError:
                    ended = "eof"
                    break
                if not d:
                    ended = self.end_kind()
                    break
                if sink is not None:
                    sink(d)
            self._drain_out()


def abort_socket(sock):
    """Closes sock so that the peer gets an RST (SO_LINGER 0)."""
    import struct
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    except OSError:
        pass
    sock.close()


def read_until(sock, token, timeout=10, limit=1 << 16):
    """Reads a plain socket byte by byte until token (bytes) has arrived;
    returns all it read.  Reading one byte at a time leaves whatever follows
    (a TLS record) in the kernel."""
    deadline = time.monotonic() + timeout
    buf = b""
    sock.settimeout(timeout)
    while not buf.endswith(token):
        left = deadline - time.monotonic()
        if left <= 0 or len(buf) > limit:
            raise AssertionError("no %r within %ss; got %r" % (token, timeout, buf))
        sock.settimeout(left)
        c = sock.recv(1)
        if not c:
            raise AssertionError("EOF before %r; got %r" % (token, buf))
        buf += c
    return buf


def recv_plain_all(sock, timeout=10):
    """Everything a plain socket sends until EOF (bounded)."""
    deadline = time.monotonic() + timeout
    buf = b""
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError("no EOF within %ss; got %r" % (timeout, buf[:200]))
        sock.settimeout(left)
        try:
            d = sock.recv(65536)
        except ConnectionResetError:
            return buf
        if not d:
            return buf
        buf += d


# ------------------------------------------------------------- openssl s_client

class SClient:
    """`openssl s_client -quiet -no_ign_eof -connect 127.0.0.1:PORT args...`
    driven through its stdin/stdout."""

    def __init__(self, port, args=(), timeout=15):
        self.argv = ["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                     "-servername", "localhost", *args]
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE)
        self.timeout = timeout
        self.out = b""

    def write(self, data):
        self.proc.stdin.write(data)
        self.proc.stdin.flush()

    def read_until(self, token, timeout=None):
        deadline = time.monotonic() + (timeout or self.timeout)
        fd = self.proc.stdout.fileno()
        while token not in self.out:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            r, _, _ = select.select([fd], [], [], left)
            if not r:
                break
            d = os.read(fd, 65536)
            if not d:
                break
            self.out += d
        return self.out

    def finish(self, timeout=None):
        """Closes stdin, waits; returns (exit code, stdout, stderr)."""
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        self.proc.stdin = None
        try:
            out, err = self.proc.communicate(timeout=timeout or self.timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            out, err = self.proc.communicate(timeout=5)
            raise AssertionError("%s did not end within %ss" % (" ".join(self.argv), timeout))
        self.out += out
        return self.proc.returncode, self.out, err.decode(errors="replace")


def s_client_once(port, args=(), data=b"", timeout=15):
    """s_client that sends data and ends at once (for handshakes that must
    fail); returns (exit code, stdout, stderr)."""
    p = subprocess.run(["openssl", "s_client", "-connect", "127.0.0.1:%d" % port,
                        "-servername", "localhost", *args], input=data,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    return p.returncode, p.stdout, p.stderr.decode(errors="replace")


# ------------------------------------------------------------- data streams

def xorshift_stream(n, seed):
    """The test app's source/duplex byte stream (tests/apps/xorshift.h),
    computed independently of the C code."""
    M = 0xFFFFFFFFFFFFFFFF
    s = (seed & M) or 0x9E3779B97F4A7C15
    out = bytearray()
    for _ in range((n + 7) // 8):
        s ^= s >> 12
        s ^= (s << 25) & M
        s ^= s >> 27
        out += ((s * 0x2545F4914F6CDD1D) & M).to_bytes(8, "little")
    return bytes(out[:n])


_XS_HASH_PROG = r"""
import hashlib, sys
n, seed = int(sys.argv[1]), int(sys.argv[2])
M = 0xFFFFFFFFFFFFFFFF
s = (seed & M) or 0x9E3779B97F4A7C15
h = hashlib.sha256()
left = n
while left > 0:
    k = min(left, 1 << 20)
    words = []
    for _ in range((k + 7) // 8):
        s ^= s >> 12; s ^= (s << 25) & M; s ^= s >> 27
        words.append((s * 0x2545F4914F6CDD1D) & M)
    b = b"".join(w.to_bytes(8, "little") for w in words)[:k]
    h.update(b)
    left -= k
print(h.hexdigest())
"""


class StreamHash:
    """SHA-256 of xorshift_stream(n, seed), computed in a separate Python
    process (it takes seconds for 64 MiB) while the test moves data."""

    def __init__(self, n, seed):
        self.proc = subprocess.Popen([sys.executable, "-c", _XS_HASH_PROG, str(n), str(seed)],
                                     stdout=subprocess.PIPE)

    def result(self, timeout=120):
        out, _ = self.proc.communicate(timeout=timeout)
        if self.proc.returncode != 0:
            raise AssertionError("stream hash helper failed")
        return out.decode().strip()


def random_chunks(total, seed, chunk=1 << 16, hasher=None):
    """total pseudo-random bytes (random.Random(seed)), chunk by chunk;
    each chunk also goes into hasher if given."""
    import random
    r = random.Random(seed)
    left = total
    while left > 0:
        k = min(chunk, left)
        b = r.randbytes(k)
        if hasher is not None:
            hasher.update(b)
        left -= k
        yield b


def main():
    unittest.main(verbosity=2)
