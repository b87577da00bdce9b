"""Sanitizer build: fails when any sanitizer report was written.

usage: check_reports.py REPORT_DIR

REPORT_DIR holds what the sanitizer build's programs and tests left there:
asan.PID / ubsan.PID (log_path, tests/sanitizer/options.c) and e2e.* (an
end-to-end test's log file that held a report, copied by tests/e2e/harness.py:
a locked-in worker or keyd reports on stderr).  Each new report is printed
with its module+offset frames symbolized by addr2line (the programs run with
symbolize=0), then moved to REPORT_DIR/seen/, so that the next run starts
clean.  Exit 0 with no report, 1 otherwise.
"""

import os
import re
import shutil
import subprocess
import sys

MARK = re.compile(r"==\d+==|runtime error: |ERROR: ")
FRAME = re.compile(r"^(\s*#\d+ 0x[0-9a-f]+)\s+\((.+)\+0x([0-9a-f]+)\)\s*$")


def symbolize(lines):
    """Adds ' in function file:line' to each module+offset frame whose module
    is still there; the rest are left as they are."""
    want = {}
    for ln in lines:
        m = FRAME.match(ln)
        if m and os.path.isfile(m.group(2)) and not m.group(2).startswith("/proc/"):
            want.setdefault(m.group(2), set()).add(m.group(3))
    names = {}
    for module, offs in want.items():
        offs = sorted(offs)
        try:
            out = subprocess.run(["addr2line", "-f", "-C", "-e", module, *["0x" + o for o in offs]],
                                 stdin=subprocess.DEVNULL, capture_output=True, timeout=60,
                                 check=True).stdout.decode(errors="replace").splitlines()
        except (OSError, subprocess.SubprocessError):
            continue
        for i, off in enumerate(offs):
            if 2 * i + 1 < len(out) and out[2 * i] != "??":
                names[(module, off)] = "%s %s" % (out[2 * i], out[2 * i + 1])
    res = []
    for ln in lines:
        m = FRAME.match(ln)
        name = names.get((m.group(2), m.group(3))) if m else None
        res.append("%s in %s (%s+0x%s)" % (m.group(1), name, m.group(2), m.group(3))
                   if name else ln)
    return res


def main():
    if len(sys.argv) != 2:
        print("usage: check_reports.py REPORT_DIR", file=sys.stderr)
        return 100
    top = sys.argv[1]
    seen = os.path.join(top, "seen")
    found = []
    if os.path.isdir(top):
        for name in sorted(os.listdir(top)):
            path = os.path.join(top, name)
            if os.path.isfile(path) and os.path.getsize(path) > 0:
                found.append(path)
    for path in found:
        with open(path, errors="replace") as f:
            lines = f.read().splitlines()
        # a copied log: from just before the report on
        first = next((i for i, ln in enumerate(lines) if MARK.search(ln)), 0)
        lines = lines[max(0, first - 3):]
        print("=== sanitizer report %s" % path)
        print("\n".join(symbolize(lines)))
        os.makedirs(seen, exist_ok=True)
        shutil.move(path, os.path.join(seen, os.path.basename(path)))
    if found:
        print("%d sanitizer report(s) (now in %s)" % (len(found), seen))
        print("(an allocation stack that ends in libcrypto: rerun the test with "
              "ASAN_OPTIONS=fast_unwind_on_malloc=0 for the whole stack)")
        return 1
    print("no sanitizer reports in %s" % top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
