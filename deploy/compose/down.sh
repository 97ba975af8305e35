#!/bin/sh
# Stop and remove Baton's compose services and network.
#
# Usage: deploy/compose/down.sh [-v]
#   -v  also delete the NATS volumes (all JetStream data: runs, events, ...)
#
# BATON_COMPOSE_PROJECT selects the project (default "baton"), as for up.sh.
# The secrets (.secrets/, .env) are kept; deploy/README.md says how to rotate
# them.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
PROJECT="${BATON_COMPOSE_PROJECT:-baton}"

fail() {
    echo "down.sh: $*" >&2
    exit 1
}

ARGS="--remove-orphans"
case "${1:-}" in
    "") ;;
    -v | --volumes) ARGS="$ARGS --volumes" ;;
    *) fail "unknown argument $1 (usage: down.sh [-v])" ;;
esac

if docker compose version >/dev/null 2>&1; then
    compose() { docker compose "$@"; }
elif command -v docker-compose >/dev/null 2>&1; then
    compose() { docker-compose "$@"; }
else
    fail "neither 'docker compose' nor 'docker-compose' is installed"
fi

# compose.yaml requires DOCKER_GID and the NATS passwords (`${VAR:?...}`)
# even to tear down; up.sh left them in .env, and any value will do here for
# one that is missing (nothing is started).
for var in $(grep -o '\${[A-Za-z0-9_]*:?' "$HERE/compose.yaml" | sed 's/^\${//; s/:?$//' | sort -u); do
    if eval "[ -z \"\${$var:-}\" ]" && ! grep -qs "^$var=" "$HERE/.env"; then
        eval "$var=unused"
        export "$var"
    fi
done

# shellcheck disable=SC2086 # ARGS is a list of flags
compose -p "$PROJECT" -f "$HERE/compose.yaml" down $ARGS
