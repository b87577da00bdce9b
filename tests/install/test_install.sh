#!/bin/sh
# Installs into a temporary prefix, then builds the embedding example
# against the installed files only (pkg-config), runs it, and talks TLS to
# it: what a packager and an embedding server see.
set -eu
build=$1
src=$2
prefix=$(mktemp -d /tmp/ucspitls-install.XXXXXX)
trap 'if [ -n "$pid" ]; then kill $pid 2>/dev/null; wait $pid 2>/dev/null; fi; rm -rf "$prefix"' EXIT
pid=
cmake --install "$build" --prefix "$prefix" > "$prefix/install.log"
for f in bin/tlsserver bin/tlsd bin/tlsbench include/ucspitls/engine.h include/ucspitls_app.h \
         share/man/man1/tlsserver.1 share/man/man1/tlsd.1 share/man/man1/tlsbench.1 \
         share/man/man3/ucspitls.3 share/man/man7/ucspi-tls.7; do
    [ -e "$prefix/$f" ] || { echo "not installed: $f"; exit 1; }
done
lib=$(ls -d "$prefix"/lib*/ | head -1)
ls "$lib"/libucspitls.so.0* > /dev/null
export PKG_CONFIG_PATH="$lib/pkgconfig"
cc -o "$prefix/embed-server" "$src/examples/embed-server.c" $(pkg-config --cflags --libs ucspitls)
cc -o "$prefix/appkit-user" -x c - $(pkg-config --cflags --libs ucspitls-app) <<'EOC'
#include <ucspitls_app.h>
int main(void) { return ucspitls_level("!") == UCSPITLS_REQUIRED ? 0 : 1; }
EOC
"$prefix/appkit-user"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
    -subj /CN=localhost -keyout "$prefix/key.pem" -out "$prefix/cert.pem" 2>/dev/null
CERTFILE="$prefix/cert.pem" KEYFILE="$prefix/key.pem" LD_LIBRARY_PATH="$lib" \
    "$prefix/embed-server" 0 sh -c 'echo installed-and-embedded' > "$prefix/port" 2> "$prefix/log" &
pid=$!
i=0
while [ ! -s "$prefix/port" ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i + 1)); done
port=$(cat "$prefix/port")
out=$(timeout 10 openssl s_client -ign_eof -connect 127.0.0.1:$port < /dev/null 2>/dev/null)
case "$out" in
*installed-and-embedded*) echo "1 passed, 0 failed" ;;
*) echo "no reply from the installed embed-server:"; cat "$prefix/log"; exit 1 ;;
esac
