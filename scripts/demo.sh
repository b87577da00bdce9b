#!/bin/sh
# make run: a throwaway certificate, a Maildir, and tlsserver -n with the
# demo SMTP server on 127.0.0.1:2525, in the foreground.
set -eu
build=$1
demo=$2
mkdir -p "$demo"
demo=$(cd "$demo" && pwd)
if [ ! -s "$demo/key.pem" ] || [ ! -s "$demo/cert.pem" ]; then
    (umask 077 && openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
        -nodes -days 30 -subj /CN=localhost -addext subjectAltName=DNS:localhost,IP:127.0.0.1 \
        -keyout "$demo/key.pem" -out "$demo/cert.pem" 2>/dev/null)
    chmod 600 "$demo/key.pem"
    echo "made a throwaway self-signed certificate in $demo (key mode 0600)"
fi
mkdir -p "$demo/Maildir"
cat <<EOT

ucspi-tls demo: tlsserver -n (STARTTLS) with smtpd-demo on 127.0.0.1:2525
  messages are stored in $demo/Maildir/new

Try it from another terminal:
  swaks --server 127.0.0.1:2525 --tls --to you@example.org
  openssl s_client -starttls smtp -connect 127.0.0.1:2525 -CAfile $demo/cert.pem

Stop with Ctrl-C.
EOT
export CERTFILE="$demo/cert.pem" KEYFILE="$demo/key.pem"
export UCSPITLS= MAILDIR="$demo/Maildir"
exec "$build/cmd/tlsserver" -v -n 127.0.0.1 2525 "$build/examples/smtpd-demo"
