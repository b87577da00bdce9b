#!/usr/bin/env bash
# bench/run.sh [BUILD_DIR]: the benchmark suite (`make bench`).
#
# Starts on loopback, with one ECDSA P-256 certificate, the servers to
# compare:
#   tlsserver   this project, immediate mode, running the application
#   tlsd        this project, one connection, under tcpserver (ucspi-tcp)
#   stunnel     stunnel4 in exec mode (exec = application)
#   hitch       hitch, to a TCP backend: the application under tcpserver
#   ceiling     bench/tls-ceiling: a bare OpenSSL server that does the
#               application's work from/into memory, no relay (the ceiling)
#   ceil+app    (handshakes only, with ceiling) the same, spawning /bin/true
#               per connection after the handshake: the least a server that
#               runs an application per connection can spend
# and measures, with bench/tlsbench as the client (TLS 1.3,
# TLS_AES_128_GCM_SHA256), in interleaved rounds (round-robin over the
# servers, the first server rotating each round), medians reported:
#   (a) bulk download and upload of BENCH_BYTES (default 1 GiB), verified
#   (b) full handshakes per second, application /bin/true, 2 client processes
#   (c) resumed handshakes per second (TLS 1.3 tickets), n/a when none resumed
#   (d) 1-byte echo latency through cat, median and p99
#   (e) memory per idle connection at BENCH_CONNS (default 1000) connections
#   key isolation: tlsserver with keyd against UCSPITLS_BENCH_KEY_IN_WORKER=1
# then prints one table per measurement with the ratio of each server to
# each other one, and the project's targets.  Nothing is asserted.
#
# Server CPU is read from a cgroup made for each server (as root, cgroup v2
# cpu.stat or v1 cpuacct): every process the server started counts, those
# re-parented to init too (tlsd's keyd).  Where no cgroup can be made, from
# the server's living process tree in /proc (re-parented processes missed).
#
# Environment:
#   BENCH_QUICK=1         a ~2 minute smoke run (smaller, fewer, shorter)
#   BENCH_BYTES=N         bulk size (k/m/g suffixes), default 1g (quick: 256m)
#   BENCH_ROUNDS=N        rounds per measurement, default 5 (quick: 3)
#   BENCH_HS_SECONDS=S    duration of one handshake measurement, default 5 (quick: 2)
#   BENCH_KEY_ROUNDS=N    rounds of the key isolation comparison, default 12 (quick: 4)
#   BENCH_KEY_SECONDS=S   duration of one of its measurements, default 3 (quick: 2);
#                         many short rounds pair the two variants closely in time
#   BENCH_PINGS=N         echo round trips, default 2000 (quick: 500)
#   BENCH_CONNS=N         idle connections held, default 1000 (quick: 200)
#   BENCH_SERVERS="..."   a subset of: tlsserver tlsd stunnel hitch ceiling
#   BENCH_OUT=FILE        also write the report (header and tables) to FILE
#   BENCH_KEEP=1          keep the work directory (logs, raw results)
#
# Everything started here runs in its own process group and carries the work
# directory in its command line; all of it is killed on exit.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${1:-${BUILD:-$SRC/build}}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac

if [ "${BENCH_QUICK:-0}" = 1 ]; then
    d_bytes=256m d_rounds=3 d_hs=2 d_key=4 d_key_secs=2 d_pings=500 d_conns=200
else
    d_bytes=1g d_rounds=5 d_hs=5 d_key=12 d_key_secs=3 d_pings=2000 d_conns=1000
fi
BYTES=${BENCH_BYTES:-$d_bytes}
ROUNDS=${BENCH_ROUNDS:-$d_rounds}
HS_SECS=${BENCH_HS_SECONDS:-$d_hs}
KEY_ROUNDS=${BENCH_KEY_ROUNDS:-$d_key}
KEY_SECS=${BENCH_KEY_SECONDS:-$d_key_secs}
PINGS=${BENCH_PINGS:-$d_pings}
CONNS=${BENCH_CONNS:-$d_conns}
WANT_SERVERS=${BENCH_SERVERS:-tlsserver tlsd stunnel hitch ceiling}
HS_PROCS=2

note() { printf '%s\n' "bench: $*" >&2; }
die() { printf '%s\n' "bench: fatal: $*" >&2; exit 111; }

for v in ROUNDS HS_SECS KEY_ROUNDS KEY_SECS PINGS CONNS; do
    case ${!v} in '' | *[!0-9]* | 0) die "$v must be a positive integer, not '${!v}'" ;; esac
done
case $BYTES in [0-9]*) ;; *) die "BENCH_BYTES must be a byte count (e.g. 1g), not '$BYTES'" ;; esac

# ------------------------------------------------------------ prerequisites

for b in cmd/tlsserver cmd/tlsd bench/tlsbench bench/tls-ceiling bench/bench-gen bench/bench-sink; do
    [ -x "$BUILD/$b" ] || die "$BUILD/$b is not built: build first (make build, or cmake --build $BUILD)"
done
command -v openssl >/dev/null || die "openssl (the command) is needed to make the certificate"

# what the requested servers need and this machine lacks
wants() { case " $WANT_SERVERS " in *" $1 "*) return 0 ;; esac; return 1; }
missing=""
if wants tlsd || wants hitch; then command -v tcpserver >/dev/null || missing="$missing ucspi-tcp"; fi
if wants stunnel; then command -v stunnel4 >/dev/null || command -v stunnel >/dev/null || missing="$missing stunnel4"; fi
if wants hitch; then command -v hitch >/dev/null || missing="$missing hitch"; fi
if [ -n "$missing" ]; then
    if [ "$(id -u)" = 0 ]; then
        note "installing:$missing"
        sh "$SRC/scripts/deps.sh" bench || note "scripts/deps.sh bench failed; servers whose program is missing are skipped"
    else
        note "missing:$missing (as root: sh scripts/deps.sh bench); the servers that need them are skipped"
    fi
fi
STUNNEL=$(command -v stunnel4 || command -v stunnel || true)
HITCH=$(command -v hitch || true)
TCPSERVER=$(command -v tcpserver || true)

SERVERS=()
for s in $WANT_SERVERS; do
    case $s in
    tlsserver | ceiling) SERVERS+=("$s") ;;
    tlsd) if [ -n "$TCPSERVER" ]; then SERVERS+=(tlsd); else note "skipping tlsd: no tcpserver (ucspi-tcp)"; fi ;;
    stunnel) if [ -n "$STUNNEL" ]; then SERVERS+=(stunnel); else note "skipping stunnel: not installed"; fi ;;
    hitch)
        if [ -n "$HITCH" ] && [ -n "$TCPSERVER" ]; then SERVERS+=(hitch)
        else note "skipping hitch: hitch or tcpserver not installed"; fi ;;
    *) die "unknown server '$s' in BENCH_SERVERS (tlsserver tlsd stunnel hitch ceiling)" ;;
    esac
done
[ ${#SERVERS[@]} -gt 0 ] || die "no server to measure"
has() { local x; for x in "${SERVERS[@]}"; do [ "$x" = "$1" ] && return 0; done; return 1; }
# handshakes also measure ceil+app (tls-ceiling spawning /bin/true)
HS_SERVERS=("${SERVERS[@]}")
has ceiling && HS_SERVERS+=("ceil+app")

# Room for BENCH_CONNS connections in the client, stunnel and hitch.
hard=$(ulimit -Hn)
if [ "$hard" = unlimited ] || [ "$hard" -gt 65536 ]; then hard=65536; fi
ulimit -n "$hard" 2>/dev/null || true
if [ "$(ulimit -n)" -lt $((CONNS + 200)) ]; then
    CONNS=$(($(ulimit -n) - 200))
    note "the file descriptor limit ($(ulimit -n)) allows only $CONNS idle connections"
fi

# -------------------------------------------------------------- work area

W=$(mktemp -d /tmp/ucspitls-bench.XXXXXX) || die "mktemp failed"
mkdir -p "$W/bin" "$W/log"
# Every program is started through a symlink in $W/bin, so that every
# process of ours has $W in its command line (the clean-up's safety net).
ln -s "$BUILD/cmd/tlsserver" "$W/bin/tlsserver"
ln -s "$BUILD/cmd/tlsd" "$W/bin/tlsd"
for b in tlsbench tls-ceiling bench-gen bench-sink; do ln -s "$BUILD/bench/$b" "$W/bin/$b"; done
RESULTS=$W/results.tsv
: >"$RESULTS"

PGIDS=()          # process groups we started (each server, each client in background)

kill_groups() {
    local g
    for g in "${PGIDS[@]}"; do kill -TERM -- "-$g" 2>/dev/null; done
    for _ in $(seq 50); do
        local alive=0
        for g in "${PGIDS[@]}"; do kill -0 -- "-$g" 2>/dev/null && alive=1; done
        [ $alive = 0 ] && break
        sleep 0.1
    done
    for g in "${PGIDS[@]}"; do kill -KILL -- "-$g" 2>/dev/null; done
    PGIDS=()
    wait 2>/dev/null
}

# ------------------------------------------------------ CPU accounting

CG_BASE="" CG_KIND=""
declare -A CG
# cg_init: a cgroup directory of ours, if this machine lets us make one,
# under the cgroup this script runs in (so that the servers stay under the
# same limits as the client).
cg_init() {
    local m d
    for m in "cgroup2 v2" "cpuacct v1"; do
        set -- $m
        if [ "$1" = cgroup2 ]; then
            d=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
            [ -n "$d" ] && d=$d$(awk -F: '$1 == "0" && $2 == "" { print $3; exit }' /proc/self/cgroup)
        else
            d=$(awk '$3 == "cgroup" && $4 ~ /(^|,)cpuacct(,|$)/ { print $2; exit }' /proc/mounts)
            [ -n "$d" ] && d=$d$(awk -F: '$2 ~ /(^|,)cpuacct(,|$)/ { print $3; exit }' /proc/self/cgroup)
        fi
        [ -n "$d" ] && [ -d "$d" ] || continue
        d=${d%/}/ucspitls-bench.$$
        mkdir "$d" 2>/dev/null || continue
        mkdir "$d/probe" 2>/dev/null &&
            sh -c 'echo $$ >"$0/cgroup.procs"' "$d/probe" 2>/dev/null &&
            rmdir "$d/probe" && { CG_BASE=$d CG_KIND=$2; return; }
        rmdir "$d/probe" "$d" 2>/dev/null
    done
}
cg_remove() {
    local d
    [ -n "$CG_BASE" ] || return 0
    for d in "$CG_BASE"/*/; do
        [ -d "$d" ] || continue
        [ -w "$d/cgroup.kill" ] && echo 1 >"$d/cgroup.kill" 2>/dev/null
        for _ in $(seq 20); do rmdir "$d" 2>/dev/null && break; sleep 0.1; done
    done
    rmdir "$CG_BASE" 2>/dev/null
}

# launch CGROUP CMD...: exec CMD in a new session, in CGROUP (made here)
# when there are cgroups.  Call it in the background: $! is then CMD's pid.
launch() {
    local cg=$1
    shift
    if [ -n "$CG_BASE" ]; then
        mkdir -p "$CG_BASE/$cg"
        exec setsid sh -c 'echo $$ >"$0/cgroup.procs" || echo "bench: cannot join cgroup $0" >&2; exec "$@"' \
            "$CG_BASE/$cg" "$@"
    fi
    exec setsid "$@"
}

# Processes whose command line names $W, except this script's own.
stray_pids() {
    local f pid
    for f in /proc/[0-9]*/cmdline; do
        pid=${f#/proc/}; pid=${pid%/cmdline}
        [ "$pid" = $$ ] && continue
        if tr '\0' ' ' 2>/dev/null <"$f" | grep -qF "$W/"; then echo "$pid"; fi
    done
}

cleanup() {
    local rc=$? p
    trap - EXIT INT TERM HUP
    kill_groups
    for p in $(stray_pids); do kill -KILL "$p" 2>/dev/null; done
    cg_remove
    if [ "${BENCH_KEEP:-0}" = 1 ] || [ $rc != 0 ]; then
        note "work directory kept: $W"
    else
        rm -rf "$W"
    fi
    exit $rc
}
trap cleanup EXIT
cg_init
trap 'exit 130' INT
trap 'exit 143' TERM
trap 'exit 129' HUP

# the applications: files, not shell builtins ("command -v true" names the
# builtin, and a link to "true" is a loop that no server can exec)
for p in true cat; do
    f=$(type -P "$p") || die "no $p program in PATH"
    ln -s "$f" "$W/bin/$p"
done
"$W/bin/true" </dev/null || die "$W/bin/true does not run"
[ "$(echo ok | "$W/bin/cat")" = ok ] || die "$W/bin/cat does not run"

# One throwaway ECDSA P-256 certificate for every server.
(umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$W/key.pem" -out "$W/cert.pem" -days 2 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost,IP:127.0.0.1 >/dev/null 2>&1) ||
    die "openssl req failed to make the certificate"
cat "$W/cert.pem" "$W/key.pem" >"$W/combined.pem"
chmod 600 "$W/combined.pem"
# tlsd's session-ticket keys (HAProxy format, 80-byte keys): each tlsd is a
# process of its own, so a deployment that wants resumption gives all of
# them one key file (tlsd(1), SESSION RESUMPTION); without it tlsd sends no
# TLS 1.3 tickets.  tlsserver keeps its own keys, shared by its workers.
(umask 077 && for i in 1 2; do head -c 80 /dev/urandom | base64 -w 0 && echo; done \
    >"$W/ticket-keys") || die "could not write the ticket key file"

HITCH_USER=nobody HITCH_GROUP=nogroup
if id _hitch >/dev/null 2>&1; then HITCH_USER=_hitch HITCH_GROUP=$(id -gn _hitch); fi
getent group "$HITCH_GROUP" >/dev/null 2>&1 || HITCH_GROUP=$(id -gn "$HITCH_USER" 2>/dev/null || echo nogroup)

# ----------------------------------------------------------------- ports

declare -A USED_PORT
port_busy() { # is anything bound to TCP port $1?
    local hex
    hex=$(printf '%04X' "$1")
    awk -v p=":$hex" 'NR > 1 && substr($2, length($2) - 4) == p { f = 1 } END { exit !f }' \
        /proc/net/tcp /proc/net/tcp6 2>/dev/null
}
free_port() { # sets FREE_PORT: a port below the ephemeral range, unused
    local p
    for _ in $(seq 200); do
        p=$((20000 + RANDOM % 10000))
        [ -n "${USED_PORT[$p]:-}" ] && continue
        port_busy "$p" && continue
        USED_PORT[$p]=1
        FREE_PORT=$p
        return 0
    done
    die "no free port found in 20000-29999"
}
wait_listen() { # port name log: until something listens on 127.0.0.1:port
    local hex
    hex=$(printf '0100007F:%04X' "$1")
    for _ in $(seq 200); do
        awk -v a="$hex" 'NR > 1 && $2 == a && $4 == "0A" { f = 1 } END { exit !f }' /proc/net/tcp &&
            return 0
        sleep 0.05
    done
    note "$2 does not listen on port $1 after 10 s; its log:"
    tail -n 20 "$3" >&2
    exit 111
}

# --------------------------------------------------------------- servers

declare -A PORT ROOT APPROOT

# start_server NAME KIND: KIND is gen, sink, true or cat (the application).
start_server() {
    local name=$1 kind=$2 port log app=() bport conf cg=$1-$2
    free_port
    port=$FREE_PORT
    log=$W/log/$name-$kind.log
    CG[$name]=$cg
    case $kind in
    gen) app=("$W/bin/bench-gen" "$BYTES") ;;
    sink) app=("$W/bin/bench-sink" "$BYTES") ;;
    true) app=("$W/bin/true") ;;
    cat) app=("$W/bin/cat") ;;
    esac
    case $name in
    tlsserver | tlsserver-nokeyd)
        local env=(CERTFILE="$W/cert.pem" KEYFILE="$W/key.pem")
        [ "$name" = tlsserver-nokeyd ] && env+=(UCSPITLS_BENCH_KEY_IN_WORKER=1)
        launch "$cg" env "${env[@]}" "$W/bin/tlsserver" -c $((CONNS + 100)) -b 1024 \
            127.0.0.1 "$port" "${app[@]}" </dev/null >/dev/null 2>>"$log" &
        ;;
    tlsd)
        CERTFILE="$W/cert.pem" KEYFILE="$W/key.pem" launch "$cg" "$TCPSERVER" -R -H -l 0 \
            -c $((CONNS + 100)) -b 1024 127.0.0.1 "$port" "$W/bin/tlsd" \
            --ticket-keys "$W/ticket-keys" "${app[@]}" \
            </dev/null >/dev/null 2>>"$log" &
        ;;
    stunnel)
        conf=$W/stunnel-$kind.conf
        {
            echo "foreground = yes"
            echo "pid ="
            echo "syslog = no"
            echo "debug = 3"
            echo "[bench]"
            echo "accept = 127.0.0.1:$port"
            echo "cert = $W/cert.pem"
            echo "key = $W/key.pem"
            echo "exec = ${app[0]}"
            echo "execArgs = ${app[*]}"
            echo "socket = l:TCP_NODELAY=1"
        } >"$conf"
        launch "$cg" "$STUNNEL" "$conf" </dev/null >/dev/null 2>>"$log" &
        ;;
    hitch)
        free_port
        bport=$FREE_PORT
        launch "$cg" "$TCPSERVER" -R -H -l 0 -c $((CONNS + 100)) -b 1024 127.0.0.1 "$bport" \
            "${app[@]}" </dev/null >/dev/null 2>>"$W/log/hitch-backend-$kind.log" &
        APPROOT[$name]=$!
        PGIDS+=($!)
        wait_listen "$bport" "hitch's backend (tcpserver)" "$W/log/hitch-backend-$kind.log"
        conf=$W/hitch-$kind.conf
        {
            echo "frontend = \"[127.0.0.1]:$port\""
            echo "backend = \"[127.0.0.1]:$bport\""
            echo "pem-file = \"$W/combined.pem\""
            echo "workers = $(nproc)"
            echo "backlog = 1024"
            echo "daemon = off"
            echo "user = \"$HITCH_USER\""
            echo "group = \"$HITCH_GROUP\""
            echo "tls-protos = TLSv1.2 TLSv1.3"
        } >"$conf"
        launch "$cg" "$HITCH" --config="$conf" </dev/null >/dev/null 2>>"$log" &
        ;;
    ceiling)
        local mode=$kind
        [ "$kind" = cat ] && mode=echo
        launch "$cg" "$W/bin/tls-ceiling" -w -m "$mode" -n "$BYTES" "$W/cert.pem" "$W/key.pem" \
            127.0.0.1 "$port" </dev/null >/dev/null 2>>"$log" &
        ;;
    ceil+app) # handshakes only (kind true)
        launch "$cg" "$W/bin/tls-ceiling" -w -m true -x "$W/bin/true" "$W/cert.pem" "$W/key.pem" \
            127.0.0.1 "$port" </dev/null >/dev/null 2>>"$log" &
        ;;
    esac
    ROOT[$name]=$!
    PGIDS+=($!)
    PORT[$name]=$port
    wait_listen "$port" "$name" "$log"
}

start_all() { # KIND [extra servers...]
    local kind=$1 s
    shift
    for s in "${SERVERS[@]}" "$@"; do start_server "$s" "$kind"; done
    sleep 0.3 # let every server settle (workers, keyd ready)
}

stop_all() {
    kill_groups
    PORT=() ROOT=() APPROOT=()
}

# --------------------------------------------------------------- clients

declare -A KV
parse_kv() { # the key=value line of tlsbench into KV
    local kv
    KV=()
    for kv in $1; do KV[${kv%%=*}]=${kv#*=}; done
}

# client TEST SERVER ROUND tlsbench-args... : runs one measurement; the
# key=value line lands in KV, and the server's CPU time during it (microseconds)
# in KV[server_us]; returns tlsbench's exit code.
client() {
    local test=$1 server=$2 round=$3 out rc t0 t1
    shift 3
    t0=$(cpu_us "$server")
    out=$("$W/bin/tlsbench" -q --no-progress "$@" 127.0.0.1 "${PORT[$server]}" \
        2>>"$W/log/client-$server.log")
    rc=$?
    sleep 0.1 # the last connection's processes end and are reaped
    t1=$(cpu_us "$server")
    parse_kv "$(printf '%s\n' "$out" | grep '^mode=' | tail -n 1)"
    KV[server_us]=$((t1 - t0))
    if [ $rc != 0 ]; then
        note "  $test $server round $round: tlsbench exited $rc: $(tail -n 1 "$W/log/client-$server.log")"
    fi
    return $rc
}

# per_unit MICROSECONDS UNITS SCALE: converted to seconds, times SCALE,
# divided by UNITS.
per_unit() {
    awk -v t="$1" -v n="$2" -v k="$3" 'BEGIN { if (n > 0) printf "%.4f\n", t / 1e6 * k / n }'
}

record() { # TEST SERVER ROUND VALUE
    printf '%s\t%s\t%s\t%s\n' "$1" "$2" "$3" "$4" >>"$RESULTS"
}

# rotated ROUND servers...: the servers, the first one rotating each round.
rotated() {
    local r=$1 n i
    shift
    n=$#
    local a=("$@")
    for ((i = 0; i < n; i++)); do echo "${a[$(((i + r) % n))]}"; done
}

# ----------------------------------------------------------- measurements

measure_handshakes() { # TEST SERVER ROUND [--resume]
    local test=$1 s=$2 r=$3
    shift 3
    if client "$test" "$s" "$r" -P $HS_PROCS -t "$HS_SECS" "$@" handshake; then
        record "$test" "$s" "$r" "${KV[rate_per_sec]}"
        record "${test}_cpu" "$s" "$r" "$(per_unit "${KV[server_us]}" "${KV[connections]}" 1000)"
        [ "$test" = hs_resumed ] && record hs_resumed_fraction "$s" "$r" "${KV[resumed_fraction]}"
        local extra=""
        [ "$test" = hs_resumed ] && extra=" (resumed fraction ${KV[resumed_fraction]})"
        [ "${KV[errors]:-0}" != 0 ] && extra+=", ${KV[errors]} failed"
        note "  [$test $r/$ROUNDS] $s: ${KV[rate_per_sec]}/s$extra; server CPU $(per_unit "${KV[server_us]}" "${KV[connections]}" 1000) ms/connection"
    fi
}

measure_bulk() { # TEST(download|upload) SERVER ROUND
    local test=$1 s=$2 r=$3
    if client "$test" "$s" "$r" -n "$BYTES" "$test" && [ "${KV[verified]:-}" = yes ]; then
        record "$test" "$s" "$r" "${KV[gbps]}"
        record "${test}_cpu" "$s" "$r" "$(per_unit "${KV[server_us]}" "${KV[bytes]}" 1e9)"
        note "  [$test $r/$ROUNDS] $s: ${KV[gbps]} GB/s, verified; server CPU $(per_unit "${KV[server_us]}" "${KV[bytes]}" 1e9) s/GB"
    else
        note "  [$test $r/$ROUNDS] $s: failed or not verified (${KV[verified]:-no result})"
    fi
}

measure_echo() { # SERVER ROUND
    local s=$1 r=$2
    if client echo "$s" "$r" -n "$PINGS" echo; then
        record echo_median "$s" "$r" "${KV[median_us]}"
        record echo_p99 "$s" "$r" "${KV[p99_us]}"
        note "  [echo $r/$ROUNDS] $s: median ${KV[median_us]} us, p99 ${KV[p99_us]} us"
    fi
}

# tree_of NAME: "pid ppid comm side" for every process of the server: the
# root and its descendants (side tls), and the applications (side app): the
# cat processes, and for hitch the backend tcpserver and its children.
tree_of() {
    ps -e -o pid=,ppid=,comm= | awk -v root="${ROOT[$1]}" -v approot="${APPROOT[$1]:-0}" '
        { pid[NR] = $1; ppid[NR] = $2; comm[NR] = $3; n = NR }
        END {
            side[root] = "tls"; if (approot != 0) side[approot] = "app"
            do {
                changed = 0
                for (i = 1; i <= n; i++)
                    if (!(pid[i] in side) && (ppid[i] in side)) {
                        side[pid[i]] = (comm[i] == "cat" || side[ppid[i]] == "app") ? "app" : "tls"
                        changed = 1
                    }
            } while (changed)
            for (i = 1; i <= n; i++) if (pid[i] in side) printf "%s %s %s %s\n", pid[i], ppid[i], comm[i], side[pid[i]]
        }'
}

# cpu_us NAME: CPU time (microseconds) the server's processes have used,
# the applications included.  From the server's cgroup when there is one;
# otherwise utime+stime+cutime+cstime of every living process of the tree
# (every server waits for its children, so the time of a finished
# connection is in its parent's cutime/cstime; processes re-parented to
# init are missed).  Read between measurements, when no connection is in
# flight.
cpu_us() {
    local files=() p d=$CG_BASE/${CG[$1]:-none}
    if [ -n "$CG_BASE" ] && [ -d "$d" ]; then
        if [ "$CG_KIND" = v2 ]; then
            awk '$1 == "usage_usec" { print $2 }' "$d/cpu.stat"
        else
            awk '{ printf "%.0f\n", $1 / 1000 }' "$d/cpuacct.usage"
        fi
        return
    fi
    while read -r p _; do files+=("/proc/$p/stat"); done < <(tree_of "$1")
    cat "${files[@]}" 2>/dev/null |
        awk -v hz="$CLK_TCK" '{ s = $0; sub(/^.*\) /, "", s); split(s, f, " "); t += f[12] + f[13] + f[14] + f[15] }
            END { printf "%.0f\n", t * 1e6 / hz }'
}
CLK_TCK=$(getconf CLK_TCK 2>/dev/null || echo 100)

# mem_snapshot NAME: one line "tls_pss tls_n app_pss app_n worker_n
# worker_pss worker_private_dirty" (KiB) over the server's process tree.
# Workers: for the fork-per-connection servers, the processes that are the
# parent of an application (tlsserver, tlsd) or the children of the root
# (ceiling).
mem_snapshot() {
    local name=$1 tree files=() p
    tree=$(tree_of "$name")
    while read -r p _; do files+=("/proc/$p/smaps_rollup"); done <<<"$tree"
    {
        printf '%s\n' "$tree" | sed 's/^/T /'
        grep -H -E '^(Pss|Private_Dirty):' "${files[@]}" 2>/dev/null | sed 's/^/S /'
    } | awk -v name="$name" -v root="${ROOT[$name]}" '
        $1 == "T" { ppid[$2] = $3; comm[$2] = $4; side[$2] = $5; next }
        $1 == "S" {
            split($2, a, "/"); p = a[3]
            if ($2 ~ /:Pss:$/) pss[p] = $3; else pd[p] = $3
        }
        END {
            for (p in side) if (side[p] == "app") parent_of_app[ppid[p]] = 1
            for (p in side) {
                if (side[p] == "tls") { tp += pss[p]; tn++ } else { ap += pss[p]; an++ }
                worker = 0
                if (name == "tlsserver" || name == "tlsd") worker = (p in parent_of_app) && side[p] == "tls"
                if (name == "ceiling") worker = (ppid[p] == root)
                if (worker) { wn++; wp += pss[p]; wd += pd[p] }
            }
            printf "%d %d %d %d %d %d %d\n", tp, tn, ap, an, wn, wp, wd
        }'
}

measure_memory() { # SERVER
    local s=$1 before after hold_pid ready=0 opened b a deadline
    before=($(mem_snapshot "$s"))
    setsid "$W/bin/tlsbench" -q --no-progress --ping -n "$CONNS" -t 600 hold 127.0.0.1 "${PORT[$s]}" \
        >"$W/hold-$s.out" 2>>"$W/log/client-$s.log" </dev/null &
    hold_pid=$!
    PGIDS+=($hold_pid)
    deadline=$((SECONDS + 60 + CONNS / 10))
    while [ $SECONDS -lt $deadline ] && kill -0 "$hold_pid" 2>/dev/null; do
        if grep -q 'ready=yes' "$W/hold-$s.out" 2>/dev/null; then ready=1; break; fi
        sleep 0.2
    done
    if [ $ready = 0 ]; then
        note "  [memory] $s: the connections were not all open in time; $(tail -n 1 "$W/log/client-$s.log")"
        kill -TERM -- "-$hold_pid" 2>/dev/null
        wait "$hold_pid" 2>/dev/null
        return
    fi
    parse_kv "$(grep '^mode=' "$W/hold-$s.out")"
    opened=${KV[connections]}
    sleep 1.5 # the last applications start, every worker idles past RELAY_IDLE_MS
    after=($(mem_snapshot "$s"))
    kill -TERM -- "-$hold_pid" 2>/dev/null
    wait "$hold_pid" 2>/dev/null
    if [ "$opened" -lt 1 ]; then
        note "  [memory] $s: no connection opened"
        return
    fi
    # per connection, KiB: TLS side, app side, total; worker averages
    local tls=$(((after[0] - before[0]) / opened)) app=$(((after[2] - before[2]) / opened))
    record mem_tls "$s" 1 "$tls"
    record mem_app "$s" 1 "$app"
    record mem_total "$s" 1 "$((tls + app))"
    record mem_procs "$s" 1 "$(awk -v a=$((after[1] + after[3] - before[1] - before[3])) -v n="$opened" 'BEGIN { printf "%.2f", a / n }')"
    record mem_conns "$s" 1 "$opened"
    if [ "${after[4]}" -gt 0 ]; then
        record mem_worker_pss "$s" 1 "$((after[5] / after[4]))"
        record mem_worker_pd "$s" 1 "$((after[6] / after[4]))"
    fi
    local w=""
    [ "${after[4]}" -gt 0 ] && w="; worker Private_Dirty $((after[6] / after[4])) KiB"
    note "  [memory] $s: $opened connections: TLS side $tls KiB, app $app KiB per connection (PSS)$w"
    # Wait (bounded) until the server is back to its idle process count, so
    # that the next server is measured on a quiet machine.
    for _ in $(seq 150); do
        b=($(mem_snapshot "$s"))
        [ $((b[1] + b[3])) -le $((before[1] + before[3] + 2)) ] && break
        sleep 0.2
    done
}

# ------------------------------------------------------------- reporting

# median TEST SERVER: the median of the recorded values, or nothing.
median() {
    awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { print $4 }' "$RESULTS" | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
range() { # TEST SERVER FORMAT: "min-max" of the rounds
    awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { print $4 }' "$RESULTS" | sort -g |
        awk -v f="$3" 'NR == 1 { lo = $1 } { hi = $1 } END { if (NR) printf f "-" f, lo, hi }'
}
round_ratio() { # TEST A B: the median over rounds of A's value / B's value
    awk -F'\t' -v t="$1" -v a="$2" -v b="$3" '$1 == t && ($2 == a || $2 == b) { v[$2 "," $3] = $4; r[$3] = 1 }
        END { for (x in r) if (v[a "," x] != "" && v[b "," x] + 0 > 0) print v[a "," x] / v[b "," x] }' "$RESULTS" |
        sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) exit; if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}
count() {
    awk -F'\t' -v t="$1" -v s="$2" '$1 == t && $2 == s { n++ } END { print n + 0 }' "$RESULTS"
}
ratio() { # A B [fmt]: A/B, or "-"
    awk -v a="$1" -v b="$2" -v f="${3:-%.2f}" 'BEGIN { if (a == "" || b == "" || b + 0 == 0 || a == "n/a" || b == "n/a") print "-"; else printf f "\n", a / b }'
}
fmt() { # VALUE PRINTF-FORMAT
    if [ -z "$1" ] || [ "$1" = n/a ]; then echo "${1:-fail}"; else awk -v v="$1" -v f="$2" 'BEGIN { printf f "\n", v }'; fi
}

declare -A MED
# table TEST TITLE FORMAT [SERVER...]: one table with ratio columns, for
# the given servers (default: all but the handshake-only ceil+app).
table() {
    local test=$1 title=$2 f=$3 s p line v
    shift 3
    local list=("$@")
    [ ${#list[@]} -gt 0 ] || list=("${SERVERS[@]}")
    echo
    echo "$title"
    printf '  %-11s %9s  %-19s' server median "range (n)"
    for p in "${list[@]}"; do printf ' %9s' "/$p"; done
    echo
    for s in "${list[@]}"; do
        v=$(median "$test" "$s")
        if [ "$test" = hs_resumed ] && [ -n "$v" ]; then
            local fr
            fr=$(median hs_resumed_fraction "$s")
            if awk -v x="${fr:-0}" 'BEGIN { exit !(x < 0.5) }'; then v=n/a; fi
        fi
        MED[$test,$s]=$v
    done
    for s in "${list[@]}"; do
        v=${MED[$test,$s]}
        line=$(printf '  %-11s %9s  %-19s' "$s" "$(fmt "$v" "$f")" "$(range "$test" "$s" "$f") ($(count "$test" "$s"))")
        for p in "${list[@]}"; do line+=$(printf ' %9s' "$(ratio "$v" "${MED[$test,$p]}")"); done
        echo "$line"
    done
}

target_line() { # LABEL VALUE TARGET-OP TARGET
    local met
    if [ "$2" = - ]; then met="not measured"
    elif awk -v v="$2" -v t="$4" -v op="$3" 'BEGIN { exit !((op == ">=" && v >= t) || (op == "<=" && v <= t) || (op == "<" && v < t)) }'; then met=met
    else met="NOT met"; fi
    printf '  %-52s %8s   target %s %s: %s\n' "$1" "$2" "$3" "$4" "$met"
}

report() {
    local s
    echo "ucspi-tls benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')$([ "${BENCH_QUICK:-0}" = 1 ] && echo ' (BENCH_QUICK=1 smoke run)')"
    echo "machine: $(nproc) CPUs, $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "OpenSSL: $(openssl version)"
    [ -n "$STUNNEL" ] && echo "stunnel: $("$STUNNEL" -version 2>&1 | grep -m1 '^stunnel' | cut -d' ' -f1-2)"
    [ -n "$HITCH" ] && echo "hitch:   $("$HITCH" --version 2>&1 | head -n 1)"
    echo "servers: tlsserver -c $((CONNS + 100)) (immediate mode); tlsd under tcpserver, --ticket-keys; stunnel exec mode;"
    echo "         hitch workers=$(nproc) to the app under tcpserver; ceiling = bench/tls-ceiling (fork per connection);"
    echo "         ceil+app = tls-ceiling -x /bin/true (handshakes only)"
    echo "client: tlsbench, TLS 1.3 TLS_AES_128_GCM_SHA256, X25519, ECDSA P-256 certificate, loopback"
    echo "rounds: $ROUNDS interleaved (median shown, range of the rounds and their count in brackets);"
    echo "        bulk $BYTES bytes; handshakes ${HS_SECS} s x $HS_PROCS client processes; echo $PINGS round trips"
    echo "ratio columns: the row's median divided by the column server's median"

    table download "(a) bulk download through the server, GB/s (higher is better)" %.3f
    table upload "(a) bulk upload through the server, GB/s (higher is better)" %.3f
    table hs_full "(b) full handshakes/s, app /bin/true, $HS_PROCS client processes (higher is better)" %.1f "${HS_SERVERS[@]}"
    table hs_resumed "(c) resumed handshakes/s (TLS 1.3 ticket; n/a: the server resumed < 50%) (higher is better)" %.1f "${HS_SERVERS[@]}"
    echo "  resumed fraction:$(for s in "${HS_SERVERS[@]}"; do printf ' %s %s' "$s" "$(fmt "$(median hs_resumed_fraction "$s")" %.2f)"; done)"
    table echo_median "(d) 1-byte echo through cat, median round trip, us (lower is better)" %.1f
    table echo_p99 "(d) 1-byte echo through cat, p99 round trip, us (lower is better)" %.1f

    echo
    echo "(e) memory per idle connection at $CONNS connections, KiB (PSS deltas of whole process trees; lower is better)"
    printf '  %-11s %8s %8s %8s %9s %13s %12s' server "TLS side" app total "procs" "worker Pss" "worker PrivD"
    for s in "${SERVERS[@]}"; do printf ' %9s' "/$s"; done
    echo
    for s in "${SERVERS[@]}"; do MED[mem_tls,$s]=$(median mem_tls "$s"); done
    for s in "${SERVERS[@]}"; do
        local line
        line=$(printf '  %-11s %8s %8s %8s %9s %13s %12s' "$s" "$(fmt "${MED[mem_tls,$s]}" %d)" \
            "$(fmt "$(median mem_app "$s")" %d)" "$(fmt "$(median mem_total "$s")" %d)" \
            "$(fmt "$(median mem_procs "$s")" %.2f)" "$(median mem_worker_pss "$s")" "$(median mem_worker_pd "$s")")
        for p in "${SERVERS[@]}"; do line+=$(printf ' %9s' "$(ratio "${MED[mem_tls,$s]}" "${MED[mem_tls,$p]}")"); done
        echo "$line"
    done
    echo "  TLS side: the server's own processes (tlsd: tcpserver, tlsd workers and their keyd; hitch: its"
    echo "  workers); app: the cat processes (hitch: and the backend tcpserver); procs: processes per"
    echo "  connection; worker: average over the per-connection TLS processes (fork-per-connection servers);"
    echo "  ratio columns compare the TLS side."

    echo
    if [ -n "$CG_BASE" ]; then
        echo "server CPU: every process the server started, the application's included (cgroup $CG_KIND; lower is better)"
    else
        echo "server CPU: the server's process tree, the application's included (/proc/PID/stat; processes"
        echo "re-parented to init, such as tlsd's keyd, are missed; lower is better)"
    fi
    printf '  %-11s %14s %14s %16s %16s\n' server "download s/GB" "upload s/GB" "full hs ms/conn" "resumed ms/conn"
    for s in "${HS_SERVERS[@]}"; do
        local dl ul
        dl=$(fmt "$(median download_cpu "$s")" %.3f) ul=$(fmt "$(median upload_cpu "$s")" %.3f)
        [ "$s" = "ceil+app" ] && dl=- ul=-
        printf '  %-11s %14s %14s %16s %16s\n' "$s" "$dl" "$ul" "$(fmt "$(median hs_full_cpu "$s")" %.3f)" \
            "$(fmt "$(median hs_resumed_cpu "$s")" %.3f)"
    done
    echo "  (the ceiling runs no application: its figures leave out what an application costs;"
    echo "  ceil+app spawns /bin/true per connection: what an application costs at the least)"

    if has tlsserver; then
        local k n kr kc nc kcr
        k=$(median hs_keyd tlsserver) n=$(median hs_keyd tlsserver-nokeyd)
        kc=$(median hs_keyd_cpu tlsserver) nc=$(median hs_keyd_cpu tlsserver-nokeyd)
        kr=$(round_ratio hs_keyd tlsserver tlsserver-nokeyd)
        kcr=$(round_ratio hs_keyd_cpu tlsserver tlsserver-nokeyd)
        echo
        echo "key isolation: full handshakes, tlsserver with keyd (default) against UCSPITLS_BENCH_KEY_IN_WORKER=1,"
        echo "$KEY_ROUNDS interleaved rounds of ${KEY_SECS} s"
        printf '  %-34s %12s %-13s %14s %s\n' "" handshakes/s range "CPU ms/conn" range
        printf '  %-34s %12s %-13s %14s %s\n' "key in keyd (default)" "$(fmt "$k" %.1f)" "$(range hs_keyd tlsserver %.1f)" \
            "$(fmt "$kc" %.3f)" "$(range hs_keyd_cpu tlsserver %.3f)"
        printf '  %-34s %12s %-13s %14s %s\n' "key in the worker (no keyd)" "$(fmt "$n" %.1f)" "$(range hs_keyd tlsserver-nokeyd %.1f)" \
            "$(fmt "$nc" %.3f)" "$(range hs_keyd_cpu tlsserver-nokeyd %.3f)"
        printf '  %-34s %12s %-13s %14s\n' "keyd / no keyd, ratio of medians" "$(ratio "$k" "$n" %.3f)" "" "$(ratio "$kc" "$nc" %.3f)"
        printf '  %-34s %12s %-13s %14s\n' "keyd / no keyd, per-round median" "$(fmt "$kr" %.3f)" "" "$(fmt "$kcr" %.3f)"
        KEYCOST=$(awk -v r="$kr" 'BEGIN { if (r == "") print "-"; else printf "%.1f\n", (1 - r) * 100 }')
        KEYCPU=$(awk -v r="$kcr" 'BEGIN { if (r == "") print "-"; else printf "%.1f\n", (r - 1) * 100 }')
    fi
    echo
    echo "targets (reported, not asserted):"
    if has tlsserver; then
        has ceiling && target_line "bulk download: tlsserver / ceiling" "$(ratio "${MED[download,tlsserver]}" "${MED[download,ceiling]}")" ">=" 0.85
        has stunnel && target_line "bulk download: tlsserver / stunnel" "$(ratio "${MED[download,tlsserver]}" "${MED[download,stunnel]}")" ">=" 2
        has ceiling && target_line "bulk upload: tlsserver / ceiling" "$(ratio "${MED[upload,tlsserver]}" "${MED[upload,ceiling]}")" ">=" 0.85
        has stunnel && target_line "bulk upload: tlsserver / stunnel" "$(ratio "${MED[upload,tlsserver]}" "${MED[upload,stunnel]}")" ">=" 2
        has stunnel && target_line "full handshakes: tlsserver / stunnel (exec mode)" "$(ratio "${MED[hs_full,tlsserver]}" "${MED[hs_full,stunnel]}")" ">=" 1.5
        has stunnel && has ceiling && printf '  %-52s %8s   (reference: no relay, no lock-in, no keyd)\n' \
            "full handshakes: ceil+app / stunnel (exec mode)" "$(ratio "${MED[hs_full,ceil+app]}" "${MED[hs_full,stunnel]}")"
        has ceiling && printf '  %-52s %8s\n' "full handshakes: tlsserver / ceil+app" \
            "$(ratio "${MED[hs_full,tlsserver]}" "${MED[hs_full,ceil+app]}")"
        target_line "idle connection: tlsserver worker Private_Dirty, KiB" "$(fmt "$(median mem_worker_pd tlsserver)" %d | sed 's/^fail$/-/')" "<=" 256
        target_line "key isolation: handshakes/s lost, % (per-round)" "${KEYCOST:--}" "<" 3
        target_line "key isolation: server CPU added, % (per-round)" "${KEYCPU:--}" "<" 3
    fi
    echo "figures from a shared 2-core machine are noisy: compare ratios from the same run, not runs"
}

# ------------------------------------------------------------------ main

note "work directory $W; servers: ${SERVERS[*]}; $ROUNDS rounds; bulk $BYTES; handshakes ${HS_SECS} s; $CONNS idle connections"
START=$SECONDS

# (b), (c), key isolation: application /bin/true
extra=()
has tlsserver && extra=(tlsserver-nokeyd)
has ceiling && extra+=("ceil+app")
start_all true "${extra[@]}"
note "(b) full handshakes"
for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(rotated "$r" "${HS_SERVERS[@]}"); do measure_handshakes hs_full "$s" "$r"; done
done
note "(c) resumed handshakes"
for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(rotated "$r" "${HS_SERVERS[@]}"); do measure_handshakes hs_resumed "$s" "$r" --resume; done
done
if has tlsserver; then
    note "key isolation: tlsserver with keyd against the key in the worker"
    for ((r = 1; r <= KEY_ROUNDS; r++)); do
        for s in $(rotated "$r" tlsserver tlsserver-nokeyd); do
            if client hs_keyd "$s" "$r" -P $HS_PROCS -t "$KEY_SECS" handshake; then
                record hs_keyd "$s" "$r" "${KV[rate_per_sec]}"
                record hs_keyd_cpu "$s" "$r" "$(per_unit "${KV[server_us]}" "${KV[connections]}" 1000)"
                note "  [key $r/$KEY_ROUNDS] $s: ${KV[rate_per_sec]}/s; server CPU $(per_unit "${KV[server_us]}" "${KV[connections]}" 1000) ms/connection"
            fi
        done
    done
fi
stop_all

# (a) bulk
start_all gen
note "(a) download of $BYTES bytes"
for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(rotated "$r" "${SERVERS[@]}"); do measure_bulk download "$s" "$r"; done
done
stop_all
start_all sink
note "(a) upload of $BYTES bytes"
for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(rotated "$r" "${SERVERS[@]}"); do measure_bulk upload "$s" "$r"; done
done
stop_all

# (d) echo, (e) memory: application cat
start_all cat
note "(d) echo latency, $PINGS round trips"
for ((r = 1; r <= ROUNDS; r++)); do
    for s in $(rotated "$r" "${SERVERS[@]}"); do measure_echo "$s" "$r"; done
done
note "(e) memory at $CONNS idle connections"
for s in "${SERVERS[@]}"; do measure_memory "$s"; done
stop_all

note "measured in $((SECONDS - START)) s"
if [ -n "${BENCH_OUT:-}" ]; then
    report | tee "$BENCH_OUT"
else
    report
fi

# A server that could not start its application, or died, makes its
# figures meaningless: say so and fail, after the report.
bad=$(grep -H -E 'unable to run|unable to set up the app|fatal:' "$W"/log/*.log 2>/dev/null | head -n 5)
if [ -n "$bad" ]; then
    note "servers reported errors; their figures are not to be trusted:"
    printf '%s\n' "$bad" >&2
    exit 111
fi
