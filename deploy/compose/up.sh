#!/bin/sh
# Bring up Baton with docker compose: generate the secrets once (secrets.sh:
# NATS passwords, the NATS CA and certificate, the admin token), build the
# three local images (baton/agent, baton/nats, baton/baton; all FROM scratch,
# nothing is pulled), then `up -d` the 3 NATS nodes, 2 coordinators, the
# gates and 3 workers. NATS requires a user and TLS of every client; each
# Baton service connects as its own user (deploy/nats/auth/baton-auth.conf).
#
# Usage: deploy/compose/up.sh [--no-build | --secrets-only] [SERVICE...]
#   --no-build      do not run cargo; package the baton binary already built
#   --secrets-only  only make the secrets and .env (no Docker needed), then stop
#   SERVICE...  start only these services (default: all); with only nats-*
#               services the baton image is not built
#
# Environment: BATON_COMPOSE_PROJECT (project name, default "baton"),
# DOCKER_SOCKET (socket given to the workers, default /var/run/docker.sock),
# BATON_BIND_ADDR (where the coordinators' gRPC ports are published,
# default 127.0.0.1). CARGO_TARGET_DIR is honoured.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROJECT="${BATON_COMPOSE_PROJECT:-baton}"

fail() {
    echo "up.sh: $*" >&2
    exit 1
}

BUILD_FLAG=""
SECRETS_ONLY=0
case "${1:-}" in
    --no-build)
        BUILD_FLAG="--no-build"
        shift
        ;;
    --secrets-only)
        SECRETS_ONLY=1
        shift
        ;;
esac

# The workers get the socket's group, not root.
DOCKER_SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
if [ -S "$DOCKER_SOCKET" ]; then
    DOCKER_GID="$(stat -c %g "$DOCKER_SOCKET")"
    export DOCKER_SOCKET DOCKER_GID
elif [ "$SECRETS_ONLY" = 0 ]; then
    fail "$DOCKER_SOCKET is not a socket — start Docker or set DOCKER_SOCKET"
fi

# Secrets, made on the first run and kept (git-ignored, 0700/0600): the NATS
# passwords, the NATS CA and certificate, the admin token.
secrets="$HERE/.secrets"
"$HERE/secrets.sh" "$secrets" || fail "secrets.sh failed"

# Compose reads .env next to compose.yaml, so later `compose logs`, `ps`, ...
# by hand see the same values. It holds the NATS passwords, hence 0600 (and
# git-ignored); compose gives each service only its own.
(
    umask 077
    {
        echo "# Written by up.sh on every run (0600, git-ignored): Docker settings and the"
        echo "# NATS passwords of .secrets/nats.env."
        if [ -n "${DOCKER_GID:-}" ]; then
            printf 'DOCKER_SOCKET=%s\nDOCKER_GID=%s\n' "$DOCKER_SOCKET" "$DOCKER_GID"
        fi
        cat "$secrets/nats.env"
    } >"$HERE/.env.tmp"
    mv "$HERE/.env.tmp" "$HERE/.env"
)
chmod 600 "$HERE/.env"
# A variable of the same name in this shell would win over .env: drop it, so
# nats-server and the services always get the pair from .secrets/nats.env.
for var in $(sed -n 's/^\([A-Z0-9_]*\)=.*/\1/p' "$secrets/nats.env"); do
    unset "$var"
done

if [ "$SECRETS_ONLY" = 1 ]; then
    echo "up.sh: secrets in $secrets, NATS passwords in $HERE/.env; nothing started" >&2
    exit 0
fi

# `docker compose` (v2 plugin) if there is one, else `docker-compose` (v1).
if docker compose version >/dev/null 2>&1; then
    COMPOSE="docker compose"
elif command -v docker-compose >/dev/null 2>&1; then
    COMPOSE="docker-compose"
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi
# shellcheck disable=SC2086 # COMPOSE is one or two words
compose() { $COMPOSE "$@"; }

# The baton image only when a Baton service is to start (`up.sh nats-1 nats-2
# nats-3` brings up the NATS cluster alone, without cargo).
NEED_BATON=1
if [ $# -gt 0 ]; then
    NEED_BATON=0
    for service in "$@"; do
        case "$service" in
            nats-*) ;;
            *) NEED_BATON=1 ;;
        esac
    done
fi

"$ROOT/deploy/images/agent/build.sh"
"$ROOT/deploy/images/nats/build.sh"
if [ "$NEED_BATON" = 1 ]; then
    "$ROOT/deploy/images/baton/build.sh" $BUILD_FLAG
fi

# nats-server runs as uid 10002 and must read the TLS key, which stays 0400
# (in a 0700 folder no other user of this host can enter): give it to that
# uid, as root inside a throwaway container of the agent image (busybox).
docker run --rm --network none --user 0:0 --cap-drop ALL \
    --cap-add CHOWN --cap-add DAC_OVERRIDE --cap-add FOWNER \
    -v "$secrets/nats-tls:/tls" baton/agent:local \
    /bin/sh -c 'chown 10002:10002 /tls/server.key && chmod 0400 /tls/server.key' ||
    fail "could not hand $secrets/nats-tls/server.key to uid 10002 (the NATS containers' user)"

compose -p "$PROJECT" -f "$HERE/compose.yaml" up -d "$@"
compose -p "$PROJECT" -f "$HERE/compose.yaml" ps

bind="${BATON_BIND_ADDR:-127.0.0.1}"
cat <<MSG

Baton is up (project $PROJECT${*:+, services: $*}).
  admin gRPC:  http://$bind:7233 (coordinator-1), http://$bind:7234 (coordinator-2)
               e.g. BATON_TOKEN_FILE=$secrets/admin-token baton runs --server http://$bind:7233
  NATS:        monitoring on http://127.0.0.1:8222, :8223, :8224 (/routez, /jsz);
               clients (inside the compose network only) need TLS with the CA
               $secrets/nats-tls/ca.crt and a user from $secrets/nats.env
  logs:        $COMPOSE -p $PROJECT -f $HERE/compose.yaml logs -f coordinator-1
  stop:        BATON_COMPOSE_PROJECT=$PROJECT $HERE/down.sh  (add -v to delete the JetStream data)
MSG
