#!/bin/sh
# Builds and runs the libFuzzer targets (fuzz/fuzz_<input>.c, seeds in
# fuzz/corpus/<input>/).  The seed corpora are only read: new inputs go to a
# work corpus in the build directory, crashes to an artifact directory there.
#
# usage: fuzz/fuzz.sh build DIR             configure DIR (clang, UCSPITLS_FUZZ=ON)
#                                           and build every fuzz_* binary
#        fuzz/fuzz.sh build-if-clang DIR    the same when clang can link a
#                                           libFuzzer binary, else says so
#        fuzz/fuzz.sh run DIR SECONDS [INPUT...]
#                                           fuzz each target (all by default)
#                                           for SECONDS; prints a table; fails
#                                           if any crashed
#        fuzz/fuzz.sh smoke BINARY SECONDS  one short run from the seeds (the
#                                           fuzz-smoke CTests); 77 = skipped
#                                           when BINARY was not built
# Per target, fuzz/<input>.dict is passed as -dict and fuzz/<input>.options
# (one libFuzzer flag per line) as flags.  UBSan findings are fatal.
set -eu

here=$(cd "$(dirname "$0")" && pwd)
src=$(dirname "$here")
: "${UBSAN_OPTIONS:=halt_on_error=1:print_stacktrace=1}"
export UBSAN_OPTIONS

# clang can compile and link a libFuzzer binary with the sanitizers
can_build() {
    command -v clang >/dev/null 2>&1 || return 1
    t=$(mktemp -d)
    printf '%s\n' '#include <stddef.h>' \
        'int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n);' \
        'int LLVMFuzzerTestOneInput(const unsigned char *d, size_t n) { (void)d; return (int)n * 0; }' \
        >"$t/t.c"
    rc=0
    clang -fsanitize=fuzzer,address,undefined "$t/t.c" -o "$t/t" >/dev/null 2>&1 || rc=1
    rm -rf "$t"
    return $rc
}

build() {
    dir=$1
    if [ -f "$dir/CMakeCache.txt" ] && ! grep -q '^UCSPITLS_FUZZ:BOOL=ON' "$dir/CMakeCache.txt"; then
        echo "fuzz: $dir is not a fuzz build (UCSPITLS_FUZZ=ON); remove it" >&2
        exit 100
    fi
    if [ ! -f "$dir/CMakeCache.txt" ]; then
        CC=clang cmake -S "$src" -B "$dir" -DUCSPITLS_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo
    fi
    cmake --build "$dir" --target fuzzers -j "${JOBS:-2}"
}

# fuzz_one BINARY INPUT SECONDS WORKDIR ARTIFACT_PREFIX: libFuzzer's own
# exit codes (77 on a crash by default) are made 1, so that 77 stays "skip".
fuzz_one() {
    bin=$1 in=$2 secs=$3 work=$4 art=$5
    set -- -max_total_time="$secs" -timeout=10 -error_exitcode=1 -timeout_exitcode=1 \
        -print_final_stats=1 -artifact_prefix="$art"
    [ -f "$here/$in.dict" ] && set -- "$@" -dict="$here/$in.dict"
    if [ -f "$here/$in.options" ]; then
        while read -r flag; do
            case $flag in ''|'#'*) ;; *) set -- "$@" "$flag" ;; esac
        done <"$here/$in.options"
    fi
    mkdir -p "$work"
    "$bin" "$@" "$work" "$here/corpus/$in"
}

# One table row from a libFuzzer log: runs, exec/s, cov, ft.
summarize() {
    awk -v name="$2" -v result="$3" '
        /stat::number_of_executed_units:/ { runs = $2 }
        /stat::average_exec_per_sec:/ { eps = $2 }
        /^#[0-9]+.* cov: / {
            for (i = 1; i <= NF; i++) {
                if ($i == "cov:") cov = $(i + 1)
                if ($i == "ft:") ft = $(i + 1)
            }
        }
        END { printf "%-14s %10s %8s %7s %7s  %s\n", name, runs, eps, cov, ft, result }
    ' "$1"
}

run() {
    dir=$1 secs=$2
    shift 2
    if [ $# -eq 0 ]; then
        for f in "$here"/fuzz_*.c; do
            f=${f##*/fuzz_}
            set -- "$@" "${f%.c}"
        done
    fi
    mkdir -p "$dir/fuzz-logs"
    failed=""
    printf '%-14s %10s %8s %7s %7s  %s\n' target runs exec/s cov ft result
    for in in "$@"; do
        log=$dir/fuzz-logs/$in.log
        art=$dir/fuzz-artifacts/$in
        mkdir -p "$art"
        if [ ! -x "$dir/fuzz/fuzz_$in" ]; then
            printf '%-14s %10s %8s %7s %7s  %s\n' "$in" - - - - "NOT BUILT: $dir/fuzz/fuzz_$in"
            failed="$failed $in"
        elif fuzz_one "$dir/fuzz/fuzz_$in" "$in" "$secs" "$dir/fuzz-corpus/$in" "$art/" \
            >"$log" 2>&1; then
            summarize "$log" "$in" ok
        else
            summarize "$log" "$in" "FAILED (crash, hang or OOM): $log, input in $art"
            failed="$failed $in"
        fi
    done
    if [ -n "$failed" ]; then
        echo "fuzz: failed:$failed" >&2
        exit 1
    fi
}

smoke() {
    bin=$1 secs=$2
    if [ ! -x "$bin" ]; then
        echo "fuzz: no $bin (make fuzz, or make test with clang, builds it): skipped"
        exit 77
    fi
    in=${bin##*/fuzz_}
    t=$(mktemp -d)
    trap 'rm -rf "$t"' EXIT
    fuzz_one "$bin" "$in" "$secs" "$t/corpus" "$PWD/smoke-crash-$in-" || exit 1
}

case "${1:-}" in
build) build "$2" ;;
build-if-clang)
    if can_build; then
        build "$2"
    else
        echo "fuzz: no clang that links libFuzzer binaries: the fuzz-smoke tests are skipped" >&2
    fi
    ;;
run) shift; run "$@" ;;
smoke) smoke "$2" "$3" ;;
*)
    echo "usage: $0 build DIR | build-if-clang DIR | run DIR SECONDS [INPUT...] | smoke BINARY SECONDS" >&2
    exit 100
    ;;
esac
