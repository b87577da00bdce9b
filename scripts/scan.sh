#!/usr/bin/env bash
# scripts/scan.sh [BUILD_DIR] [OUT_DIR]: external TLS scanners against
# tlsserver's default configuration (`make scan`).
#
# Builds nothing: uses BUILD_DIR/cmd/tlsserver (default ./build).  For each of
# two certificates, ECDSA P-256 and RSA-2048 (leaves of a throwaway CA, valid
# one year, SAN localhost and 127.0.0.1), it starts tlsserver on a free port
# of 127.0.0.1 with the default configuration (no -option, no $CIPHERS,
# $CIPHERSUITES or other setting in its environment) running /bin/cat, and
# runs:
#   sslscan    (a few seconds) --no-colour --show-sigs
#   testssl.sh (Debian's `testssl`; the full default run: 1.5 to 3 minutes
#              per certificate on 2 cores, under the 5 that would call for
#              --fast, so nothing is left out), --color 0,
#              --add-ca with the throwaway CA so that the chain-of-trust check
#              sees a valid chain and only the server is judged
# each bounded by `timeout`.  The reports go to OUT_DIR (default docs/scan/):
#   sslscan-<cert>.txt, testssl-<cert>.txt, testssl-<cert>.json
# plain text without ANSI colour.  Then it checks them against what the
# default configuration must give and prints a summary:
#   - only TLS 1.2 and 1.3 (no SSLv2/3, TLS 1.0/1.1)
#   - every accepted suite forward-secret: ECDHE in TLS 1.2 (no RSA key
#     exchange, no static or finite-field DH) or a TLS 1.3 suite; AEAD only
#   - no NULL/anonymous/export/LOW/3DES/RC4/CBC suites
#   - secure renegotiation, no client-initiated renegotiation, no compression
#   - none of testssl's vulnerability checks flagged, none failed to run
#   - no worker of the server died of a signal while being scanned (a
#     seccomp kill on some odd handshake would show here)
# Findings about the throwaway certificate itself (no CRL or OCSP URI in it,
# no DNS CAA record for 127.0.0.1) are listed but not counted.
#
# Exit: 0 all as expected; 100 a finding; 111 a tool or the server missing or
# failing.
set -u -o pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
SRC=$(dirname "$HERE")
BUILD=${1:-$SRC/build}
OUT=${2:-$SRC/docs/scan}
case $BUILD in /*) ;; *) BUILD=$PWD/$BUILD ;; esac
SERVER=$BUILD/cmd/tlsserver
SSLSCAN_TIMEOUT=120
TESTSSL_TIMEOUT=600

die() { echo "scan: $*" >&2; exit 111; }

[ -x "$SERVER" ] || die "$SERVER is not built (make build, or give the build directory)"
for t in sslscan testssl python3 openssl timeout; do
    command -v "$t" >/dev/null || die "$t is not installed (scripts/deps.sh scan)"
done
mkdir -p "$OUT" || die "cannot create $OUT"
OUT=$(cd "$OUT" && pwd)

WORK=$(mktemp -d /tmp/ucspitls-scan.XXXXXX) || die "mktemp failed"
SERVER_PID=
cleanup() {
    if [ -n "$SERVER_PID" ]; then
        kill "$SERVER_PID" 2>/dev/null
        wait "$SERVER_PID" 2>/dev/null
    fi
    rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 111' INT TERM

# ------------------------------------------------------------ certificates
ossl() { openssl "$@" >/dev/null 2>"$WORK/openssl.err" || { cat "$WORK/openssl.err" >&2; die "openssl $1 failed"; }; }
# digitalSignature only: an RSA leaf signs too (ECDHE-RSA); keyEncipherment
# would only serve RSA key exchange, which the server never offers
printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
    "extendedKeyUsage=serverAuth" "subjectAltName=DNS:localhost,IP:127.0.0.1" \
    >"$WORK/leaf.ext" || die "cannot write to $WORK"
ossl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 365 \
    -subj "/CN=ucspi-tls scan CA" -keyout "$WORK/ca.key" -out "$WORK/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign"
for kind in ecdsa rsa; do
    if [ $kind = ecdsa ]; then newkey=(-newkey ec -pkeyopt ec_paramgen_curve:P-256)
    else newkey=(-newkey rsa:2048); fi
    (umask 077 && ossl req "${newkey[@]}" -nodes -subj /CN=localhost \
        -keyout "$WORK/$kind.key" -out "$WORK/$kind.csr") || exit 111
    ossl x509 -req -in "$WORK/$kind.csr" -CA "$WORK/ca.pem" -CAkey "$WORK/ca.key" \
        -CAcreateserial -days 365 -extfile "$WORK/leaf.ext" -out "$WORK/$kind.pem"
    chmod 600 "$WORK/$kind.key"
done

# ------------------------------------------------------------ the server
# Starts tlsserver with the certificate of kind $1 in a clean environment;
# sets SERVER_PID and PORT.
start_server() {
    local kind=$1 line=
    env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin \
        CERTFILE="$WORK/$kind.pem" KEYFILE="$WORK/$kind.key" \
        "$SERVER" -v -1 127.0.0.1 0 /bin/cat \
        >"$WORK/port-$kind" 2>"$WORK/server-$kind.log" </dev/null &
    SERVER_PID=$!
    for _ in $(seq 100); do
        line=$(head -n1 "$WORK/port-$kind" 2>/dev/null)
        case $line in [0-9]*) break ;; esac
        kill -0 "$SERVER_PID" 2>/dev/null || break
        sleep 0.1
    done
    case $line in
    [0-9]*) PORT=$line ;;
    *) cat "$WORK/server-$kind.log" >&2; die "tlsserver ($kind) printed no port" ;;
    esac
}

stop_server() {
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
    SERVER_PID=
}

strip_ansi() { sed 's/\x1b\[[0-9;]*[A-Za-z]//g'; }

status=0
for kind in ecdsa rsa; do
    start_server $kind
    echo "scan: $kind certificate, tlsserver pid $SERVER_PID on 127.0.0.1:$PORT" >&2
    t0=$SECONDS
    timeout "$SSLSCAN_TIMEOUT" sslscan --no-colour --show-sigs --sni-name=localhost \
        "127.0.0.1:$PORT" 2>&1 | strip_ansi >"$OUT/sslscan-$kind.txt"
    rc=${PIPESTATUS[0]}
    echo "scan: sslscan ($kind) exit $rc, $((SECONDS - t0)) s" >&2
    [ "$rc" = 124 ] && die "sslscan ($kind) ran over ${SSLSCAN_TIMEOUT} s"
    t0=$SECONDS
    rm -f "$OUT/testssl-$kind.json"
    # testssl's exit status counts things it found noteworthy (certificate
    # ones included): the JSON is what is judged below
    timeout "$TESTSSL_TIMEOUT" testssl --color 0 --warnings batch --add-ca "$WORK/ca.pem" \
        --jsonfile "$OUT/testssl-$kind.json" "127.0.0.1:$PORT" 2>&1 |
        strip_ansi >"$OUT/testssl-$kind.txt"
    rc=${PIPESTATUS[0]}
    echo "scan: testssl ($kind) exit $rc, $((SECONDS - t0)) s" >&2
    [ "$rc" = 124 ] && die "testssl ($kind) ran over ${TESTSSL_TIMEOUT} s"
    [ -s "$OUT/testssl-$kind.json" ] || die "testssl ($kind) wrote no JSON"
    stop_server
    cp "$WORK/server-$kind.log" "$WORK/server-$kind.done"
done

# ------------------------------------------------------------ the verdict
python3 - "$OUT" "$WORK" <<'EOF' || status=$?
import json, os, re, sys

out, work = sys.argv[1], sys.argv[2]
problems, notes, flagged = [], [], set()


def flag(where, key, text):
    """One finding per scanner, certificate and check."""
    if (where, key) not in flagged:
        flagged.add((where, key))
        problems.append("%s: %s" % (where, text))

# testssl ids whose severity is about the throwaway certificate or DNS, not
# about the server's TLS configuration
CERT_ONLY = {
    "cert_revocation": "no CRL or OCSP URI in a throwaway certificate",
    "DNS_CAArecord": "no DNS CAA record for 127.0.0.1",
}
BAD = {"LOW", "MEDIUM", "HIGH", "CRITICAL", "WARN", "FATAL"}
NOT_OFFERED = ("SSLv2", "SSLv3", "TLS1", "TLS1_1", "cipherlist_NULL", "cipherlist_aNULL",
               "cipherlist_EXPORT", "cipherlist_LOW", "cipherlist_3DES_IDEA",
               "cipherlist_AVERAGE")
MUST_BE_OK = ("TLS1_2", "TLS1_3", "PFS", "heartbleed", "CCS", "ROBOT", "secure_renego",
              "secure_client_renego", "CRIME_TLS", "POODLE_SSL", "fallback_SCSV", "SWEET32",
              "FREAK", "DROWN", "LOGJAM", "BEAST", "LUCKY13", "RC4", "cert_chain_of_trust")


def testssl(kind):
    with open(os.path.join(out, "testssl-%s.json" % kind)) as f:
        findings = json.load(f)
    by_id = {}
    for x in findings:
        by_id.setdefault(x["id"], x)
    where = "testssl %s" % kind
    for x in findings:
        if x["severity"] in BAD:
            if x["id"] in CERT_ONLY:
                notes.append("%s: %s %s: %s (%s; not counted)" % (
                    where, x["id"], x["severity"], x["finding"], CERT_ONLY[x["id"]]))
            else:
                flag(where, x["id"], "%s %s: %s" % (x["id"], x["severity"], x["finding"]))
    for i in NOT_OFFERED:
        f = by_id.get(i)
        if f is None or not f["finding"].startswith("not offered"):
            flag(where, i, "%s: %s" % (i, f["finding"] if f else "not tested"))
    for i in MUST_BE_OK:
        f = by_id.get(i)
        if f is None or f["severity"] != "OK":
            flag(where, i, "%s: %s" % (i, "%s %s" % (f["severity"], f["finding"])
                                       if f else "not tested"))
    if by_id.get("secure_renego", {}).get("finding") != "supported":
        flag(where, "secure_renego", "secure renegotiation (RFC 5746) not supported")
    suites = []
    for x in findings:
        if not x["id"].startswith("cipher_x"):
            continue
        # "xc02b   ECDHE-ECDSA-AES128-GCM-SHA256   ECDH 253   AESGCM   128   TLS_..."
        cols = x["finding"].split()
        name, kx, enc = cols[1], cols[2], cols[4]
        suites.append(name)
        if kx != "ECDH" or enc not in ("AESGCM", "ChaCha20"):
            flag(where, name, "suite %s: key exchange %s, encryption %s (expected ECDHE with "
                 "AES-GCM or ChaCha20-Poly1305)" % (name, kx, enc))
    if not suites:
        problems.append("%s: no cipher suite listed" % where)
    curves = by_id.get("PFS_ECDHE_curves", {}).get("finding", "?")
    t = by_id.get("scanTime", {}).get("finding", "?")
    return "%d suites (%s); groups %s; %s s" % (len(suites), " ".join(suites), curves, t)


def sslscan(kind):
    where = "sslscan %s" % kind
    with open(os.path.join(out, "sslscan-%s.txt" % kind)) as f:
        text = f.read()
    for proto in ("SSLv2", "SSLv3", "TLSv1.0", "TLSv1.1"):
        if not re.search(r"^%s\s+disabled$" % re.escape(proto), text, re.M):
            problems.append("%s: %s not disabled" % (where, proto))
    for proto in ("TLSv1.2", "TLSv1.3"):
        if not re.search(r"^%s\s+enabled$" % re.escape(proto), text, re.M):
            problems.append("%s: %s not enabled" % (where, proto))
    accepted = re.findall(r"^(?:Preferred|Accepted)\s+(\S+)\s+\d+ bits\s+(\S+)", text, re.M)
    if not accepted:
        problems.append("%s: no accepted cipher listed" % where)
    for proto, name in accepted:
        if proto == "TLSv1.3" and name.startswith("TLS_"):
            continue
        if proto == "TLSv1.2" and name.startswith("ECDHE-") and ("GCM" in name or "CHACHA20" in name):
            continue
        problems.append("%s: accepted %s %s (expected ECDHE with AES-GCM or "
                        "ChaCha20-Poly1305, or a TLS 1.3 suite)" % (where, proto, name))
    if re.search(r"Insecure session renegotiation|Session renegotiation supported", text):
        problems.append("%s: insecure renegotiation" % where)
    if "Session renegotiation not supported" not in text and \
            "Secure session renegotiation supported" not in text:
        problems.append("%s: renegotiation result missing" % where)
    if re.search(r"^TLSv1\.[0-3] vulnerable to heartbleed", text, re.M) or \
            "not vulnerable to heartbleed" not in text:
        problems.append("%s: heartbleed" % where)
    if "Compression enabled" in text:
        problems.append("%s: compression enabled" % where)
    elif "Compression disabled" not in text:
        notes.append("%s: its OpenSSL cannot test compression (testssl's CRIME_TLS, "
                     "which offers DEFLATE over raw sockets, does)" % where)
    return "%d accepted suites" % len(accepted)


def server_log(kind):
    with open(os.path.join(work, "server-%s.done" % kind)) as f:
        log = f.read()
    ends = re.findall(r"^tlsserver: end \d+ (status|signal) (\d+)$", log, re.M)
    sig = [n for how, n in ends if how == "signal"]
    if sig:
        problems.append("server %s: %d worker(s) killed by a signal (%s)"
                        % (kind, len(sig), ", ".join(sorted(set(sig)))))
    return "%d connections, %d workers ended by a signal" % (len(ends), len(sig))


print("\nscan summary (reports in %s)" % out)
for kind in ("ecdsa", "rsa"):
    print("  %s: testssl: %s" % (kind, testssl(kind)))
    print("  %s: sslscan: %s" % (kind, sslscan(kind)))
    print("  %s: server: %s" % (kind, server_log(kind)))
for n in notes:
    print("  note: " + n)
for p in problems:
    print("  FINDING: " + p)
print("scan: %s" % ("%d finding(s)" % len(problems) if problems else
                    "no finding: TLS 1.2/1.3 only, forward-secret AEAD suites only, "
                    "secure renegotiation, no compression, no vulnerability flagged"))
sys.exit(100 if problems else 0)
EOF
exit $status
