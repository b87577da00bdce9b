#!/bin/sh
# The benchmark suite runs end to end on a tiny scale (tlsserver, tlsd and
# the ceiling, one short round of everything) and its report has a figure
# for every server in every table; a broken application is refused before
# anything is measured.  Figures are not checked: this machine is shared.
# usage: test_bench_smoke.sh BUILD_DIR SOURCE_DIR
set -u
BUILD=$1 SRC=$2
T=$(mktemp -d /tmp/ucspitls-bench-smoke.XXXXXX) || exit 1
trap 'rm -rf "$T"' EXIT
fail() { echo "test_bench_smoke: FAIL: $*" >&2; exit 1; }

command -v tcpserver >/dev/null || { echo "test_bench_smoke: no tcpserver: skipped" >&2; exit 77; }

tiny() {
    BENCH_SERVERS="tlsserver tlsd ceiling" BENCH_ROUNDS=1 BENCH_HS_SECONDS=1 \
        BENCH_KEY_ROUNDS=1 BENCH_KEY_SECONDS=1 BENCH_BYTES=8m BENCH_PINGS=50 BENCH_CONNS=10 \
        BENCH_OUT="$T/report" "$@" bash "$SRC/bench/run.sh" "$BUILD" >"$T/stdout" 2>"$T/stderr"
}

# 1. the whole suite, tiny
tiny env
rc=$?
[ $rc = 0 ] || { tail -n 20 "$T/stderr" >&2; fail "bench/run.sh exited $rc"; }
for h in "(a) bulk download" "(a) bulk upload" "(b) full handshakes/s" "(c) resumed handshakes/s" \
    "(d) 1-byte echo" "(e) memory per idle connection" "server CPU:" "key isolation:" \
    "targets (reported, not asserted):"; do
    grep -qF "$h" "$T/report" || fail "no '$h' in the report"
done
# every server has a number (not "fail") in each table it belongs to
for s in tlsserver tlsd ceiling; do
    n=$(awk -v s="$s" '$1 == s && $2 != "fail"' "$T/report" | wc -l)
    # download, upload, full, resumed, echo median, echo p99, memory, CPU
    [ "$n" -ge 8 ] || { cat "$T/report" >&2; fail "$s has figures in $n tables, not 8"; }
done
awk '$1 == "ceil+app" && $2 != "fail"' "$T/report" | grep -q . || fail "no ceil+app figures"
# every server resumes its sessions (tlsd through the bench's ticket key file)
sed -n '/^(c) resumed/,/^$/p' "$T/report" | grep -E '^  [a-z+]+ +n/a' &&
    fail "a server resumed fewer than half of its sessions"
grep -q '^  ceil+app ' "$T/report" || fail "no ceil+app row"
grep -E '^  (tlsserver|tlsd|ceiling) .*fail' "$T/report" && fail "a measurement failed"
# tlsd's CPU per handshake includes its keyd: a cgroup (as root) or the /proc fallback, said
grep -qE 'server CPU: .*(cgroup v[12]|/proc)' "$T/report" || fail "the report does not say how CPU was read"
# nothing of this run is left: its work directory is in every command line
W=$(sed -n 's/^bench: work directory \([^;]*\);.*/\1/p' "$T/stderr")
[ -n "$W" ] || fail "no work directory in the bench's output"
[ ! -e "$W" ] || fail "work directory $W left behind"
sleep 0.5
printf '%s/\n' "$W" >"$T/pattern" # (a pattern on grep's own command line would match grep)
left=$(grep -lF -f "$T/pattern" /proc/[0-9]*/cmdline 2>/dev/null | head -n 3)
[ -z "$left" ] || fail "processes of the bench still run: $left"

# 2. an application that does not run is refused before measuring
mkdir "$T/path"
printf '#!/bin/sh\nexit 1\n' >"$T/path/true"
chmod +x "$T/path/true"
tiny env PATH="$T/path:$PATH"
rc=$?
# a failed run keeps its work directory for the post-mortem: not this one
W=$(sed -n 's/^bench: work directory kept: //p' "$T/stderr")
[ -n "$W" ] && case $W in /tmp/ucspitls-bench.*) rm -rf "$W" ;; esac
[ $rc = 111 ] || fail "with a failing true, exit $rc instead of 111"
grep -q 'bin/true does not run' "$T/stderr" || { cat "$T/stderr" >&2; fail "no reason given for the failing true"; }
echo "test_bench_smoke: all checks passed"
