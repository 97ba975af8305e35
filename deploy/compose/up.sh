#!/bin/sh
# Bring up Baton with docker compose: build the three local images
# (baton/agent, baton/nats, baton/baton; all FROM scratch, nothing is pulled),
# then `up -d` the 3 NATS nodes, 2 coordinators, the gates and 3 workers.
#
# Usage: deploy/compose/up.sh [--no-build] [SERVICE...]
#   --no-build  do not run cargo; package the baton binary already built
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
if [ "${1:-}" = "--no-build" ]; then
    BUILD_FLAG="--no-build"
    shift
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

# The workers get the socket's group, not root.
DOCKER_SOCKET="${DOCKER_SOCKET:-/var/run/docker.sock}"
[ -S "$DOCKER_SOCKET" ] || fail "$DOCKER_SOCKET is not a socket — start Docker or set DOCKER_SOCKET"
DOCKER_GID="$(stat -c %g "$DOCKER_SOCKET")"
export DOCKER_SOCKET DOCKER_GID
# Compose reads .env next to compose.yaml, so later `compose logs`, `ps`, ...
# by hand see the same values (the file is git-ignored).
printf '# Written by up.sh.\nDOCKER_SOCKET=%s\nDOCKER_GID=%s\n' "$DOCKER_SOCKET" "$DOCKER_GID" >"$HERE/.env"

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

# The coordinators' tokens file holds only a hash (readable by the
# containers' user); the admin token itself stays in .secrets/admin-token, 0600.
secrets="$HERE/.secrets"
if [ ! -s "$secrets/tokens" ]; then
    mkdir -p "$secrets" && chmod 700 "$secrets"
    tok="baton_$(head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n')"
    (umask 077 && printf '%s\n' "$tok" >"$secrets/admin-token")
    printf 'sha256:%s compose-admin admin\n' "$(printf '%s' "$tok" | sha256sum | cut -d' ' -f1)" >"$secrets/tokens"
    chmod 755 "$secrets" && chmod 644 "$secrets/tokens"
fi

compose -p "$PROJECT" -f "$HERE/compose.yaml" up -d "$@"
compose -p "$PROJECT" -f "$HERE/compose.yaml" ps

bind="${BATON_BIND_ADDR:-127.0.0.1}"
cat <<MSG

Baton is up (project $PROJECT${*:+, services: $*}).
  admin gRPC:  http://$bind:7233 (coordinator-1), http://$bind:7234 (coordinator-2)
               e.g. BATON_TOKEN_FILE=$secrets/admin-token baton --server http://$bind:7233 runs
  NATS:        monitoring on http://127.0.0.1:8222, :8223, :8224 (/routez, /jsz)
  logs:        $COMPOSE -p $PROJECT -f $HERE/compose.yaml logs -f coordinator-1
  stop:        BATON_COMPOSE_PROJECT=$PROJECT $HERE/down.sh  (add -v to delete the JetStream data)
MSG
