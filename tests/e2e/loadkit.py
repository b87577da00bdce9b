"""Helpers of the fault-injection and load tests (test_faultinject.py,
test_load.py): /proc readers, the master's fd table told apart from its
channels to keyd, and `figure:` lines for the numbers the tests measure.
Python 3 stdlib, plus `ss` (iproute2) for the peers of unix sockets."""

import os
import re
import subprocess
import sys

import harness


# A sanitizer build (tests/sanitizer, `make test-asan`) runs these tests
# too: its processes are several times bigger and slower, and its
# allocator's quarantine makes memory growth meaningless, so the load tests
# scale their counts down there (and say so).
SANITIZED = bool(os.environ.get("UCSPITLS_SANITIZER_REPORTS"))


def scaled(n, small):
    """n, or small in a sanitizer build."""
    return small if SANITIZED else n


def figure(text):
    """A measured number, on stderr, for the reader of the test's output."""
    sys.stderr.write("figure: %s\n" % text)
    sys.stderr.flush()


def keyd_pool_size():
    """KEYD_POOL of engine/keyd.h: the master hands keyd channels this many
    at a time and keeps the workers' ends until connections take them."""
    try:
        with open(os.path.join(harness.SOURCE_DIR, "engine", "keyd.h")) as f:
            m = re.search(r"^#define KEYD_POOL (\d+)", f.read(), re.M)
        return int(m.group(1)) if m else 1
    except OSError:
        return 1


def running(pid):
    """True while pid exists and is not a zombie."""
    p = harness.proc_table().get(pid)
    return p is not None and p.state != "Z"


def fd_targets(pid):
    """fd number -> readlink target of every open fd of pid."""
    out = {}
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            out[int(name)] = os.readlink(os.path.join(d, name))
        except OSError:
            pass
    return out


def socket_inode(target):
    m = re.match(r"socket:\[(\d+)\]$", target)
    return int(m.group(1)) if m else None


def unix_peers():
    """inode -> peer inode of every connected unix socket (ss -x)."""
    out = subprocess.run([harness.tool("ss"), "-xanH"], stdout=subprocess.PIPE,
                         stderr=subprocess.DEVNULL, timeout=10,
                         check=True).stdout.decode(errors="replace")
    peers = {}
    for line in out.splitlines():
        f = line.split()
        # Netid State Recv-Q Send-Q Local Inode Peer PeerInode
        if len(f) >= 8 and f[5].isdigit() and f[7].isdigit():
            peers[int(f[5])] = int(f[7])
    return peers


def master_fds(master, keyd):
    """The master's fd table as (fd -> target without inode numbers, for
    every fd but its channels to keyd; the number of those channels).  The
    channels (keyd's control socket and the pool of workers' ends that keyd
    already has the other end of) are told by their peer, which keyd holds;
    how many there are varies with the pool (at most keyd_pool_size() + 1)."""
    keyd_inodes = set()
    if keyd is not None:
        keyd_inodes = {socket_inode(t) for t in fd_targets(keyd).values()} - {None}
    peers = unix_peers()
    stable, channels = {}, 0
    for fd, target in fd_targets(master).items():
        ino = socket_inode(target)
        if ino is not None and peers.get(ino) in keyd_inodes:
            channels += 1
        else:
            stable[fd] = re.sub(r":\[\d+\]$", "", target)
    return stable, channels


def cpu_seconds(pid):
    """User + system CPU seconds of pid so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def smaps_rollup(pid):
    """/proc/PID/smaps_rollup in KiB: {'Rss': n, 'Pss': n, ...} ({} if
    pid is gone)."""
    out = {}
    try:
        with open("/proc/%d/smaps_rollup" % pid) as f:
            for line in f:
                m = re.match(r"^(\w+):\s+(\d+) kB", line)
                if m:
                    out[m.group(1)] = int(m.group(2))
    except OSError:
        pass
    return out


def data_pages_copied(pid, libs):
    """Private_Dirty KiB of the writable data of pid's program and of the
    libraries whose path contains one of libs, each with the anonymous
    mapping right after it (its .bss): {path: KiB} ({} if pid is gone).
    A page a forked child never wrote, and its parent has not written since
    the fork, is shared, not private."""
    maps, cur = [], None
    try:
        exe = os.readlink("/proc/%d/exe" % pid)
        with open("/proc/%d/smaps" % pid) as f:
            for line in f:
                m = re.match(r"^([0-9a-f]+)-([0-9a-f]+) (\S+) \S+ \S+ \d+\s*(.*)$", line)
                if m:
                    cur = [int(m.group(1), 16), int(m.group(2), 16), m.group(3), m.group(4), 0]
                    maps.append(cur)
                elif line.startswith("Private_Dirty:"):
                    cur[4] = int(line.split()[1])
    except OSError:
        return {}
    out = {}
    for i, (start, end, perms, path, dirty) in enumerate(maps):
        if perms != "rw-p" or not (path == exe or any(lib in path for lib in libs)):
            continue
        if i + 1 < len(maps) and maps[i + 1][0] == end and maps[i + 1][3] == "":
            dirty += maps[i + 1][4]
        out[path] = out.get(path, 0) + dirty
    return out


def meminfo(name):
    """A /proc/meminfo field in KiB."""
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(name + ":"):
                return int(line.split()[1])
    return 0


class LogTail:
    """The lines of a growing log, read on from where the last poll()
    stopped (the load tests write megabytes of log)."""

    def __init__(self, path):
        self.path = path
        self.pos = 0
        self.partial = b""
        self.lines = []

    def poll(self):
        with open(self.path, "rb") as f:
            f.seek(self.pos)
            data = f.read()
            self.pos = f.tell()
        parts = (self.partial + data).split(b"\n")
        self.partial = parts.pop()
        self.lines += [p.decode(errors="replace") for p in parts]
        return self.lines
