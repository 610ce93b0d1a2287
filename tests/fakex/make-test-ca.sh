#!/bin/sh
# make-test-ca.sh OUTDIR [--name NAME] [HOSTNAME...]
#
# Makes a throwaway certificate authority and a server certificate signed by
# it, for the fake exchange's TLS mode (fakex --tls-cert/--tls-key) and for
# tests of certificate verification in curl and libwebsockets.
#
#   OUTDIR/ca.pem, OUTDIR/ca.key        the CA (reused if already present, so
#                                       several server certs share one CA)
#   OUTDIR/NAME.pem, OUTDIR/NAME.key    the server certificate and key
#                                       (NAME defaults to "server")
#
# HOSTNAMEs become subjectAltNames (IP: for addresses, DNS: otherwise); the
# default is 127.0.0.1 and localhost. For a wrong-host test, sign a second
# certificate with the same CA for a name the client will not use:
#
#   make-test-ca.sh "$dir"                                # ca + server (loopback)
#   make-test-ca.sh "$dir" --name wrong wrong.example     # same ca, wrong host
#
# Keys are EC P-256 (fast to make), certificates valid for 30 days. Needs
# only the openssl command line tool; touches nothing outside OUTDIR.
set -eu

if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
    sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'
    exit 2
fi
out=$1
shift
name=server
if [ $# -ge 2 ] && [ "$1" = "--name" ]; then
    name=$2
    shift 2
fi
case $name in
    ''|*/*|ca) echo "make-test-ca.sh: bad --name '$name'" >&2; exit 2 ;;
esac
if [ $# -eq 0 ]; then
    set -- 127.0.0.1 localhost
fi

mkdir -p "$out"
umask 077

if [ ! -s "$out/ca.pem" ] || [ ! -s "$out/ca.key" ]; then
    openssl req -x509 -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
        -keyout "$out/ca.key" -out "$out/ca.pem" -days 30 -sha256 \
        -subj "/CN=fakex throwaway test CA" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi

san=""
for h in "$@"; do
    case $h in
        *:*|[0-9]*.[0-9]*.[0-9]*.[0-9]*) entry="IP:$h" ;;
        *) entry="DNS:$h" ;;
    esac
    san="${san:+$san,}$entry"
done

ext="$out/$name.ext"
cat > "$ext" <<EOF
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth
subjectAltName=$san
EOF

openssl req -new -nodes -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -keyout "$out/$name.key" -out "$out/$name.csr" -subj "/CN=$1" 2>/dev/null
openssl x509 -req -in "$out/$name.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" \
    -set_serial "0x$(openssl rand -hex 8)" -days 30 -sha256 -extfile "$ext" \
    -out "$out/$name.pem" 2>/dev/null
rm -f "$out/$name.csr" "$ext"
chmod 644 "$out/ca.pem" "$out/$name.pem"
echo "$out/$name.pem ($san), signed by $out/ca.pem"
