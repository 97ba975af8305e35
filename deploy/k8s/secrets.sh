#!/bin/sh
# Make the Secrets Baton's Kubernetes manifests read, and (with --apply) apply
# them. There is no cert-manager here, so this script is the CA: openssl makes
# a private CA, one certificate for the NATS pods, and random passwords.
#
# Usage: deploy/k8s/secrets.sh [--apply] [DIR]    (default DIR: deploy/k8s/.secrets)
#   --apply  also `kubectl apply` the namespace and DIR/secrets.yaml
#
# Environment: BATON_K8S_NAMESPACE (default baton), BATON_K8S_CLUSTER_DOMAIN
# (default cluster.local), BATON_NATS_REPLICAS (the StatefulSet's size,
# default 3: the certificate names nats-0.nats ... nats-<n-1>.nats).
#
# DIR (git-ignored, 0700; every secret in it 0600) keeps what was made, so a
# second run changes nothing and the Secrets stay the same:
#   ca.key, ca.crt           the private CA (the key never leaves DIR)
#   nats.key, nats.crt       the NATS pods' certificate, for clients and routes
#   nats.env                 BATON_NATS_<USER>_PASSWORD (what a client gives) and
#                            ..._SERVER (what nats-server gets: a bcrypt hash
#                            when htpasswd or Python's bcrypt is installed, else
#                            the password) for every user of baton-auth.conf
#   admin-token, tokens      an admin token for the CLI, and its hash
#   secrets.yaml             the Secrets, written anew from the above on every run:
#     nats-tls                  tls.crt, tls.key, ca.crt  (NATS pods only)
#     nats-users                BATON_NATS_<USER>_PASSWORD for nats-server
#     nats-ca                   ca.crt                    (Baton pods)
#     baton-nats-coordinator    password                  (coordinator pods)
#     baton-nats-gates          password                  (gates pods)
#     baton-nats-worker         password                  (worker pods)
#     baton-admin-tokens        tokens                    (coordinator pods)
#
# Rotate by deleting what is to change and running again with --apply, then
# restarting what reads it (deploy/README.md, "Secrets"): nats.env for the
# passwords, nats.crt for the certificate, the whole DIR for everything.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
APPLY=0
if [ "${1:-}" = "--apply" ]; then
    APPLY=1
    shift
fi
DIR="${1:-$HERE/.secrets}"
NS="${BATON_K8S_NAMESPACE:-baton}"
DOMAIN="${BATON_K8S_CLUSTER_DOMAIN:-cluster.local}"
REPLICAS="${BATON_NATS_REPLICAS:-3}"
AUTH_CONF="${BATON_NATS_AUTH_CONF:-$HERE/../nats/auth/baton-auth.conf}"
# The Baton components that run in the cluster, each with its NATS user.
COMPONENTS="coordinator gates worker"

. "$HERE/../nats/secrets-lib.sh"

b64() {
    base64 | tr -d '\n'
}

# The value of VAR in nats.env (single-quoted there).
env_value() {
    sed -n "s/^$1='\(.*\)'\$/\1/p" "$DIR/nats.env"
}

[ -r "$AUTH_CONF" ] || fail "cannot read $AUTH_CONF (the NATS users)"
command -v openssl >/dev/null 2>&1 || fail "openssl is not installed — it makes the CA and the NATS certificate"
case "$REPLICAS" in '' | *[!0-9]*) fail "BATON_NATS_REPLICAS=$REPLICAS is not a number" ;; esac

umask 077
mkdir -p "$DIR"
chmod 700 "$DIR"

# The CA.
if [ ! -s "$DIR/ca.key" ] || [ ! -s "$DIR/ca.crt" ]; then
    rm -f "$DIR/ca.key" "$DIR/ca.crt" "$DIR/nats.key" "$DIR/nats.crt"
    openssl req -x509 -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$DIR/ca.key" -out "$DIR/ca.crt" -days 3650 -sha256 \
        -subj "/CN=Baton NATS CA ($NS)" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null ||
        fail "openssl could not make the CA"
    echo "secrets.sh: new CA in $DIR/ca.crt" >&2
fi

# The NATS pods' certificate: every pod's name through the headless Service
# `nats`, short and fully qualified, the Service itself, and localhost for
# `kubectl port-forward`. serverAuth for clients; clientAuth because a pod
# dialing a route shows the same certificate to the other pod.
if [ ! -s "$DIR/nats.crt" ] || [ ! -s "$DIR/nats.key" ]; then
    rm -f "$DIR/nats.key" "$DIR/nats.crt"
    sans=""
    i=0
    while [ "$i" -lt "$REPLICAS" ]; do
        for suffix in "" ".$NS" ".$NS.svc" ".$NS.svc.$DOMAIN"; do
            sans="${sans}DNS:nats-$i.nats$suffix,"
        done
        i=$((i + 1))
    done
    for suffix in "" ".$NS" ".$NS.svc" ".$NS.svc.$DOMAIN"; do
        sans="${sans}DNS:nats$suffix,"
    done
    sans="${sans}DNS:localhost,IP:127.0.0.1"
    work="$(mktemp -d "${TMPDIR:-/tmp}/baton-k8s-tls.XXXXXX")"
    trap 'rm -rf "$work"' EXIT INT TERM
    printf 'basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >"$work/ext"
    openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
        -keyout "$DIR/nats.key" -out "$work/nats.csr" -subj "/CN=nats.$NS" 2>/dev/null ||
        fail "openssl could not make the NATS key"
    openssl x509 -req -in "$work/nats.csr" -CA "$DIR/ca.crt" -CAkey "$DIR/ca.key" \
        -set_serial "0x$(random_hex | cut -c1-30)" -days 825 -sha256 \
        -extfile "$work/ext" -out "$DIR/nats.crt" 2>/dev/null ||
        fail "openssl could not sign the NATS certificate"
    echo "secrets.sh: new NATS certificate in $DIR/nats.crt (valid 825 days)" >&2
fi

# Passwords: one per `user:` of baton-auth.conf, under the variable its
# `password:` reads.
write_nats_passwords "$DIR/nats.env" "$AUTH_CONF" \
    "# Written once by deploy/k8s/secrets.sh (0600, git-ignored)." ""

# The admin token: the coordinators keep only its hash.
if [ ! -s "$DIR/admin-token" ] || [ ! -s "$DIR/tokens" ]; then
    tok="baton_$(random_hex)$(random_hex | cut -c1-16)"
    printf '%s\n' "$tok" >"$DIR/admin-token"
    printf 'sha256:%s k8s-admin admin\n' "$(printf '%s' "$tok" | sha256sum | cut -d' ' -f1)" >"$DIR/tokens"
    echo "secrets.sh: new admin token in $DIR/admin-token" >&2
fi

# The variable of a user in baton-auth.conf.
user_var() {
    awk -v want="$1" '
        /^[[:space:]]*user:/ { user = $2 }
        /^[[:space:]]*password:[[:space:]]*\$/ { if (user == want) { var = $2; sub(/^\$/, "", var); print var; exit } }
    ' "$AUTH_CONF"
}

secret_head() {
    printf '%s\n' '---'
    printf 'apiVersion: v1\nkind: Secret\nmetadata:\n  name: %s\n  namespace: %s\n  labels:\n    app.kubernetes.io/part-of: baton\n    app.kubernetes.io/managed-by: baton-secrets-sh\ntype: %s\ndata:\n' "$1" "$NS" "$2"
}

# The Secrets, from the files above (so they are the same on every run).
{
    echo "# Written by deploy/k8s/secrets.sh; git-ignored, 0600. Apply with"
    echo "# kubectl apply -f $DIR/secrets.yaml (or run secrets.sh --apply)."
    secret_head nats-tls kubernetes.io/tls
    printf '  tls.crt: %s\n' "$(b64 <"$DIR/nats.crt")"
    printf '  tls.key: %s\n' "$(b64 <"$DIR/nats.key")"
    printf '  ca.crt: %s\n' "$(b64 <"$DIR/ca.crt")"
    # nats-server reads a variable's value as config text: quoted, a bcrypt
    # hash ($2y$...) is not taken for a variable reference.
    secret_head nats-users Opaque
    for var in $(sed -n "s/^\([A-Z0-9_]*\)_SERVER='.*'\$/\1/p" "$DIR/nats.env"); do
        printf '  %s: %s\n' "$var" "$(printf '"%s"' "$(env_value "${var}_SERVER")" | b64)"
    done
    secret_head nats-ca Opaque
    printf '  ca.crt: %s\n' "$(b64 <"$DIR/ca.crt")"
    for component in $COMPONENTS; do
        var="$(user_var "$component")"
        [ -n "$var" ] || fail "no user $component in $AUTH_CONF"
        pw="$(env_value "$var")"
        [ -n "$pw" ] || fail "no password for $var in $DIR/nats.env — delete the file and run again"
        secret_head "baton-nats-$component" Opaque
        printf '  password: %s\n' "$(printf '%s' "$pw" | b64)"
    done
    secret_head baton-admin-tokens Opaque
    printf '  tokens: %s\n' "$(b64 <"$DIR/tokens")"
} >"$DIR/secrets.yaml.tmp"
mv "$DIR/secrets.yaml.tmp" "$DIR/secrets.yaml"
chmod 600 "$DIR"/*

if [ "$APPLY" = 1 ]; then
    command -v kubectl >/dev/null 2>&1 || fail "kubectl is not installed"
    kubectl apply -f "$HERE/00-namespace.yaml" -f "$DIR/secrets.yaml"
    echo "secrets.sh: applied; now: kubectl apply -k $HERE" >&2
else
    echo "secrets.sh: Secrets in $DIR/secrets.yaml; apply them with: kubectl apply -f $HERE/00-namespace.yaml -f $DIR/secrets.yaml (or run secrets.sh --apply)" >&2
fi
