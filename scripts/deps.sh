#!/bin/sh
# Installs the Debian packages a target needs, when they are missing.
# usage: scripts/deps.sh build|test|bench|scan|fuzz
# As root: apt-get installs what is missing.  Otherwise: prints the exact
# command and fails, so that nothing half-works.
set -eu

build="gcc make cmake pkg-config libssl-dev libseccomp-dev libcap-dev libcdb-dev openssl"
# libasan8 libubsan1 binutils (addr2line): the sanitizer build `make test`
# runs too (make test-asan); gcc brings them, named here since it needs them
# clang libclang-rt-dev: the libFuzzer smoke runs of `make test` (fuzz/fuzz.sh)
test="$build python3 swaks ucspi-tcp curl socat procps sslscan libasan8 libubsan1 binutils clang libclang-rt-dev"
bench="$test stunnel4 hitch"
# external TLS scanners for `make scan` (scripts/scan.sh); sslscan also
# serves tests/e2e/test_scan.py, which skips without it
scan="$build python3 sslscan testssl.sh"
# `make fuzz`: clang with libFuzzer and the sanitizer runtimes (clang only
# recommends libclang-rt-dev; the unversioned names follow the release)
fuzz="$build clang libclang-rt-dev"

case "${1:-build}" in
build) want=$build ;;
test) want=$test ;;
bench) want=$bench ;;
scan) want=$scan ;;
fuzz) want=$fuzz ;;
*) echo "usage: $0 build|test|bench|scan|fuzz" >&2; exit 100 ;;
esac

missing=""
for p in $want; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if [ "$(id -u)" != 0 ]; then
    echo "missing packages:$missing" >&2
    echo "run as root:  apt-get install -y$missing" >&2
    exit 111
fi
echo "installing:$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# The package lists may be stale or absent on a fresh machine: refresh once
# if a plain install cannot find something.
if ! apt-get install -y -q $missing; then
    apt-get update -q
    apt-get install -y -q $missing
fi
