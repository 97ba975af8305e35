#!/bin/sh
# Generate, once, the secrets Baton's compose deployment runs with. up.sh runs
# it; run it by hand to look at or rotate them. Nothing is ever committed:
# the folder is git-ignored, 0700, and every secret in it is 0600.
#
# Usage: deploy/compose/secrets.sh [DIR]      (default: .secrets next to this script)
#
# What DIR holds afterwards:
#   admin-token          the coordinators' admin token (0600); use it with
#                        BATON_TOKEN_FILE=DIR/admin-token baton runs --server ...
#   tokens               its SHA-256 only, for --tokens-file (0644: not a secret)
#   nats.env             one password per NATS user of deploy/nats/auth/baton-auth.conf
#                        (0600): BATON_NATS_<USER>_PASSWORD is what the client
#                        gives, BATON_NATS_<USER>_PASSWORD_SERVER what nats-server
#                        gets (a bcrypt hash when htpasswd or Python's bcrypt is
#                        installed, else the password itself); up.sh copies it
#                        into deploy/compose/.env, from where compose hands
#                        each service its own
#   nats-tls/ca.key      the private CA's key (0600), kept only to re-issue the
#                        server certificate; it never leaves this folder
#   nats-tls/ca.crt      the CA every Baton service trusts (--nats-tls-ca)
#   nats-tls/server.crt  the NATS nodes' certificate, for the names in
#                        $BATON_NATS_HOSTS (default nats-1 nats-2 nats-3),
#                        localhost and 127.0.0.1; used for clients and routes
#   nats-tls/server.key  its key (0600; up.sh then gives it to uid 10002, the
#                        NATS containers' user)
#
# Files that exist are kept, so a second run changes nothing. To rotate one,
# delete it and run up.sh again (deploy/README.md, "Secrets"): nats.env for
# the passwords, nats-tls/server.crt for the certificate, nats-tls/ for the
# whole CA, admin-token for the admin token.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
DIR="${1:-$HERE/.secrets}"
AUTH_CONF="${BATON_NATS_AUTH_CONF:-$HERE/../nats/auth/baton-auth.conf}"
NATS_HOSTS="${BATON_NATS_HOSTS:-nats-1 nats-2 nats-3}"

. "$HERE/../nats/secrets-lib.sh"

[ -r "$AUTH_CONF" ] || fail "cannot read $AUTH_CONF (the NATS users)"

umask 077
mkdir -p "$DIR"
chmod 700 "$DIR"

# The admin token: the coordinators keep only its hash.
if [ ! -s "$DIR/admin-token" ] || [ ! -s "$DIR/tokens" ]; then
    tok="baton_$(random_hex)$(random_hex | cut -c1-16)"
    printf '%s\n' "$tok" >"$DIR/admin-token"
    printf 'sha256:%s compose-admin admin\n' "$(printf '%s' "$tok" | sha256sum | cut -d' ' -f1)" >"$DIR/tokens"
    # Read by the coordinators' user (uid 10001) through a bind mount.
    chmod 644 "$DIR/tokens"
    echo "secrets.sh: new admin token in $DIR/admin-token" >&2
fi

# NATS passwords: one per `user:` of baton-auth.conf, each under the name of
# the variable its `password:` reads.
write_nats_passwords "$DIR/nats.env" "$AUTH_CONF" \
    "# Written once by deploy/compose/secrets.sh (0600, git-ignored); up.sh copies it into .env." \
    " (only through Docker, which is root on this host anyway)"

# TLS: a private CA and one certificate for every NATS node.
command -v openssl >/dev/null 2>&1 || fail "openssl is not installed — it makes the NATS CA and certificate (apt-get install openssl)"
tls="$DIR/nats-tls"
mkdir -p "$tls"
chmod 700 "$tls"
if [ ! -s "$tls/ca.key" ] || [ ! -s "$tls/ca.crt" ]; then
    rm -f "$tls/ca.key" "$tls/ca.crt" "$tls/server.crt" "$tls/server.key"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tls/ca.key" -out "$tls/ca.crt" -days 3650 -sha256 \
        -subj "/CN=Baton NATS CA (compose)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
        fail "openssl could not make the CA"
    chmod 600 "$tls/ca.key"
    chmod 644 "$tls/ca.crt"
    echo "secrets.sh: new NATS CA in $tls/ca.crt" >&2
fi
if [ ! -s "$tls/server.crt" ] || [ ! -e "$tls/server.key" ]; then
    rm -f "$tls/server.crt" "$tls/server.key"
    sans=""
    for h in $NATS_HOSTS localhost; do sans="${sans}DNS:$h,"; done
    sans="${sans}IP:127.0.0.1"
    work="$(mktemp -d "${TMPDIR:-/tmp}/baton-nats-tls.XXXXXX")"
    trap 'rm -rf "$work"' EXIT INT TERM
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >"$work/ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$tls/server.key" -out "$work/server.csr" -subj "/CN=nats" 2>/dev/null ||
        fail "openssl could not make the server key"
    # serverAuth for clients; clientAuth because a node dialing a route
    # presents the same certificate to the other node.
    openssl x509 -req -in "$work/server.csr" -CA "$tls/ca.crt" -CAkey "$tls/ca.key" \
        -set_serial "0x$(random_hex | cut -c1-30)" -days 825 -sha256 \
        -extfile "$work/ext" -out "$tls/server.crt" 2>/dev/null ||
        fail "openssl could not sign the server certificate"
    chmod 600 "$tls/server.key"
    chmod 644 "$tls/server.crt"
    echo "secrets.sh: new NATS certificate in $tls/server.crt ($sans)" >&2
fi
