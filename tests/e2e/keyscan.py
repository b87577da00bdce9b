"""A memory scanner for private keys (used by test_keyd.py; stdlib only).

KeySecrets(keyfile) takes the secret values of a PEM private key from
`openssl pkey -text -noout` (EC and Ed25519: `priv:`; RSA: `privateExponent:`,
`prime1:`, `prime2:`) and turns each into the byte patterns it has in memory:

- big-endian, as written in DER and as printed (for EC also zero-padded to
  the field size, e.g. the 32-byte P-256 scalar);
- OpenSSL's BIGNUM layout: 64-bit limbs, least significant limb first, each
  limb little-endian, i.e. the whole integer in little-endian byte order,
  padded with zeros to a multiple of 8 bytes.  The padding and the length of
  a BIGNUM's allocation vary, so the pattern is the first (least significant)
  32 bytes, which are there whatever the padding;
- each base64 line of the PEM file's body (a process that read the key file
  keeps its text in freed stdio/BIO buffers).

Long big-endian values are searched by their first and last 32 bytes, so a
partial copy is found too.  Every pattern is at least 16 bytes, so a random
match is out of the question.

scan_pid(pid, secrets) reads /proc/PID/maps and every readable region through
/proc/PID/mem (root can read any process, also one that made itself
non-dumpable), in chunks that overlap by the longest pattern, and returns the
hits.  Regions that cannot be read ([vvar], I/O mappings) are skipped and
counted.
"""

import os
import re
import subprocess

WINDOW = 32          # bytes of a long value searched at each end
MIN_PATTERN = 16
CHUNK = 4 << 20


class Hit:
    __slots__ = ("name", "address", "mapping")

    def __init__(self, name, address, mapping):
        self.name, self.address, self.mapping = name, address, mapping

    def __repr__(self):
        return "%s at 0x%x in %s" % (self.name, self.address, self.mapping)


class ScanResult:
    def __init__(self, pid):
        self.pid = pid
        self.hits = []
        self.bytes_read = 0
        self.regions_read = 0
        self.regions_skipped = []
        self.read_writable_anon = 0  # bytes of heap/anonymous rw memory read

    def names(self):
        return sorted({h.name for h in self.hits})

    def found(self):
        return bool(self.hits)

    def summary(self):
        return ("pid %d: %d bytes in %d regions read (%d of them anonymous rw), "
                "%d skipped; hits: %s"
                % (self.pid, self.bytes_read, self.regions_read, self.read_writable_anon,
                   len(self.regions_skipped), self.hits[:12] or "none"))


def _pem_text(keyfile):
    out = subprocess.run(["openssl", "pkey", "-in", keyfile, "-text", "-noout",
                          "-passin", "pass:"],
                         stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, timeout=30)
    if out.returncode != 0:
        raise AssertionError("openssl pkey -text failed on %s: %s"
                             % (keyfile, out.stderr.decode(errors="replace")))
    return out.stdout.decode()


def parse_pkey_text(text):
    """The labelled hex blocks of `openssl pkey -text` as {label: bytes}."""
    fields = {}
    cur = None
    for line in text.splitlines():
        m = re.match(r"^([A-Za-z0-9]+):\s*$", line)
        if m:
            cur = m.group(1)
            fields[cur] = ""
            continue
        if cur is not None and re.match(r"^\s+[0-9a-f]{2}(:[0-9a-f]{2})*:?\s*$", line):
            fields[cur] += line.strip().replace(":", "")
        else:
            cur = None
    return {k: bytes.fromhex(v) for k, v in fields.items() if v}


class KeySecrets:
    """The secret values of one private key and their memory patterns."""

    LABELS = {"ec": ("priv",), "ed25519": ("priv",),
              "rsa": ("privateExponent", "prime1", "prime2")}

    def __init__(self, keyfile):
        self.keyfile = keyfile
        text = _pem_text(keyfile)
        first = text.splitlines()[0] if text else ""
        if first.startswith("ED25519"):
            self.kind = "ed25519"
        elif "privateExponent:" in text:
            self.kind = "rsa"
        elif "priv:" in text:
            self.kind = "ec"
        else:
            raise AssertionError("unknown key type in %s:\n%s" % (keyfile, first))
        fields = parse_pkey_text(text)
        self.values = {}   # label -> big-endian bytes as printed, leading 00 stripped
        for label in self.LABELS[self.kind]:
            if label not in fields:
                raise AssertionError("no %s: in openssl pkey -text of %s" % (label, keyfile))
            raw = fields[label]
            self.values[label] = raw.lstrip(b"\0") if self.kind == "rsa" else raw
        self.field_bytes = None
        if self.kind == "ec":
            m = re.search(r"\((\d+) bit\)", first)
            self.field_bytes = (int(m.group(1)) + 7) // 8 if m else len(self.values["priv"])
        self.patterns = self._patterns()
        self.pem_lines = self._pem_lines()

    def _patterns(self):
        pats = []  # (name, bytes)
        for label, raw in self.values.items():
            n = int.from_bytes(raw, "big")
            if n == 0:
                raise AssertionError("secret %s of %s is zero" % (label, self.keyfile))
            nbytes = (n.bit_length() + 7) // 8
            be = n.to_bytes(nbytes, "big")
            bes = [be]
            if self.field_bytes and self.field_bytes > nbytes:
                bes.append(n.to_bytes(self.field_bytes, "big"))   # e.g. 32-byte P-256 scalar
            if self.kind == "ed25519" and raw != be:
                bes.append(raw)  # a seed is raw bytes, leading zeros and all
            for i, b in enumerate(bes):
                tag = "" if i == 0 else "-padded"
                if len(b) <= 2 * WINDOW:
                    pats.append(("%s-be%s" % (label, tag), b))
                else:
                    pats.append(("%s-be%s-head" % (label, tag), b[:WINDOW]))
                    pats.append(("%s-be%s-tail" % (label, tag), b[-WINDOW:]))
            # BIGNUM limbs: the integer little-endian; its least significant
            # bytes come first whatever the padding at the top
            le = n.to_bytes(((nbytes + 7) // 8) * 8, "little")
            pats.append(("%s-bn-limbs" % label, le[:min(WINDOW, nbytes)]))
        for name, p in pats:
            if len(p) < MIN_PATTERN:
                raise AssertionError("pattern %s too short (%d bytes)" % (name, len(p)))
        return pats

    def _pem_lines(self):
        with open(self.keyfile, "rb") as f:
            body = [ln.strip() for ln in f.read().splitlines()
                    if ln.strip() and not ln.startswith(b"-----") and b":" not in ln]
        return [("pem-line-%d" % i, ln) for i, ln in enumerate(body) if len(ln) >= 40]

    def all_patterns(self, pem=True):
        return self.patterns + (self.pem_lines if pem else [])

    def limb_pattern_names(self):
        return {n for n, _ in self.patterns if n.endswith("-bn-limbs")}


# UCSPITLS_KEYSCAN_SKIP="lo-hi,..." (hex, end exclusive): address ranges that
# hold no data and are not read: the sanitizer build's ASan shadow memory
# (set by tests/e2e/CMakeLists.txt).
_SKIP = [tuple(int(x, 16) for x in r.split("-"))
         for r in os.environ.get("UCSPITLS_KEYSCAN_SKIP", "").split(",") if r]


def read_maps(pid):
    with open("/proc/%d/maps" % pid) as f:
        return f.read().splitlines()


def scan_pid(pid, secrets, pem=True):
    """Searches every readable mapping of pid for the secrets' patterns.
    Raises OSError if the process cannot be opened at all (gone, or no
    permission): a scan that could not look proves nothing."""
    pats = secrets.all_patterns(pem)
    longest = max(len(p) for _, p in pats)
    res = ScanResult(pid)
    maps = read_maps(pid)
    fd = os.open("/proc/%d/mem" % pid, os.O_RDONLY)
    try:
        for line in maps:
            parts = line.split(None, 5)
            lo, hi = (int(x, 16) for x in parts[0].split("-"))
            perms = parts[1]
            name = parts[5].strip() if len(parts) > 5 else ""
            if perms[0] != "r" or any(a <= lo and hi <= b for a, b in _SKIP):
                continue
            addr = lo
            tail = b""
            ok = True
            while addr < hi:
                want = min(CHUNK, hi - addr)
                try:
                    data = os.pread(fd, want, addr)
                except OSError as e:
                    res.regions_skipped.append("%s (%s)" % (line, e.strerror))
                    ok = False
                    break
                if not data:
                    res.regions_skipped.append("%s (short read)" % line)
                    ok = False
                    break
                buf = tail + data
                base = addr - len(tail)
                for pname, p in pats:
                    i = buf.find(p)
                    while i >= 0:
                        # a match wholly inside the overlap was found last round
                        if i + len(p) > len(tail):
                            res.hits.append(Hit(pname, base + i, line.strip()))
                        i = buf.find(p, i + 1)
                res.bytes_read += len(data)
                if perms[1] == "w" and (name == "" or name.startswith("[heap")
                                        or name.startswith("[stack")):
                    res.read_writable_anon += len(data)
                tail = buf[-(longest - 1):] if longest > 1 else b""
                addr += len(data)
            if ok:
                res.regions_read += 1
    finally:
        os.close(fd)
    return res


class RawPatterns:
    """Arbitrary byte strings to scan for (e.g. a key's password), in the
    shape scan_pid expects."""

    def __init__(self, patterns, label="raw"):
        self.patterns = list(patterns)
        self.keyfile = label
        for name, p in self.patterns:
            if len(p) < MIN_PATTERN:
                raise AssertionError("pattern %s too short (%d bytes)" % (name, len(p)))

    def all_patterns(self, pem=True):
        return self.patterns
