"""The ABI of a shared library is exactly its public header: every dynamic
symbol that libucspitls.so defines is a function declared in
include/ucspitls/engine.h, and every function declared there is exported.

Usage: test_symbols.py LIB.so HEADER.h [LIB.so HEADER.h ...]

Uses `nm -D --defined-only` (binutils) as a packager would.  Exit 0 when
every pair matches, 1 with the differences listed, 77 (CTest SKIP) when nm
is missing."""

import re
import shutil
import subprocess
import sys

# A version node of the linker version script (engine/libucspitls.map) shows
# up as an absolute symbol of that name; it is not code.
VERSION_NODE = re.compile(r"^UCSPITLS_[0-9]+$")


def header_functions(path):
    """Names of the functions a C header declares: identifiers followed by
    '(' outside comments and preprocessor lines, excluding type names."""
    with open(path) as f:
        text = f.read()
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    text = re.sub(r"//[^\n]*", " ", text)
    text = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    names = set()
    for m in re.finditer(r"\b([A-Za-z_][A-Za-z0-9_]*)\s*\(", text):
        name = m.group(1)
        before = text[:m.start()].rstrip()
        # `struct x (` never declares a function; keywords are not names
        if before.endswith(("struct", "enum", "union")) or name in (
                "sizeof", "__attribute__", "_Alignas", "typeof"):
            continue
        names.add(name)
    return names


def exported(lib):
    """{name: type letter} of the dynamic symbols lib defines."""
    out = subprocess.run(["nm", "-D", "--defined-only", lib], check=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                         text=True).stdout
    syms = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) < 3:
            continue
        kind, name = parts[-2], parts[-1].split("@")[0]
        syms[name] = kind
    return syms


def check(lib, header):
    want = header_functions(header)
    syms = exported(lib)
    problems = []
    if not want:
        problems.append("%s: no function declarations found (parser or header broken)" % header)
    extra = sorted(n for n, k in syms.items()
                   if n not in want and not (k == "A" and VERSION_NODE.match(n)))
    missing = sorted(want - set(syms))
    not_code = sorted(n for n in want if n in syms and syms[n] not in ("T", "W", "i"))
    for n in extra:
        problems.append("%s exports %s (%s), which %s does not declare"
                        % (lib, n, syms[n], header))
    for n in missing:
        problems.append("%s does not export %s, declared in %s" % (lib, n, header))
    for n in not_code:
        problems.append("%s: %s is exported as %s, not as a function" % (lib, n, syms[n]))
    print("%s: %d exported, %d declared in %s%s"
          % (lib, sum(1 for n, k in syms.items() if k != "A"), len(want), header,
             "" if problems else ": they match"))
    return problems


def main(argv):
    if len(argv) < 3 or len(argv) % 2 != 1:
        sys.stderr.write("usage: test_symbols.py LIB.so HEADER.h [LIB.so HEADER.h ...]\n")
        return 100
    if shutil.which("nm") is None:
        print("SKIP: nm (binutils) is not installed")
        return 77
    problems = []
    for i in range(1, len(argv), 2):
        problems += check(argv[i], argv[i + 1])
    for p in problems:
        print("FAIL: " + p)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
