#!/bin/sh
# Build Baton's NATS image (baton/nats:local) from the static nats-server.
#
# Idempotent and offline: the Dockerfile is FROM scratch, nothing is ever
# pulled. Usage: deploy/images/nats/build.sh [TAG]   (default baton/nats:local)
#
# The binary is, in order: $NATS_SERVER, .baton/bin/nats-server (installed by
# scripts/setup.sh, which this script runs when the binary is missing).
set -eu

TAG="${1:-${BATON_NATS_IMAGE:-baton/nats:local}}"
HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"

. "$HERE/../lib.sh"

require_docker

# 1. Find nats-server.
NATS_BIN="${NATS_SERVER:-}"
if [ -n "$NATS_BIN" ]; then
    [ -x "$NATS_BIN" ] || fail "NATS_SERVER=$NATS_BIN is not an executable file"
else
    NATS_BIN="$ROOT/.baton/bin/nats-server"
    if [ ! -x "$NATS_BIN" ]; then
        echo "build.sh: $NATS_BIN is missing, running scripts/setup.sh" >&2
        "$ROOT/scripts/setup.sh" >&2 || fail "scripts/setup.sh failed — install nats-server or set NATS_SERVER=/path/to/nats-server"
    fi
    [ -x "$NATS_BIN" ] || fail "no nats-server at $NATS_BIN after scripts/setup.sh"
fi

# 2. It must be static: the image has no libc.
if command -v ldd >/dev/null 2>&1; then
    if ! ldd "$NATS_BIN" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
        fail "$NATS_BIN is dynamically linked — the image is FROM scratch and has no libc; use an official (static) nats-server release"
    fi
fi

# 3. Build from a private context (Dockerfile, nats-server, an empty /data, /etc/passwd).
CTX="$(mktemp -d "${TMPDIR:-/tmp}/baton-nats-build.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT INT TERM
cp "$HERE/Dockerfile" "$CTX/Dockerfile"
# Dereference: .baton/bin/nats-server may be a symlink to a system binary.
cp -L "$NATS_BIN" "$CTX/nats-server"
chmod 0755 "$CTX/nats-server"
mkdir -p "$CTX/data" "$CTX/etc/nats"
chmod 0700 "$CTX/data"
printf 'root:x:0:0:root:/:/nonexistent\nnats:x:10002:10002:NATS:/data:/nonexistent\n' >"$CTX/etc/passwd"
printf 'root:x:0:\nnats:x:10002:\n' >"$CTX/etc/group"

build_image "$TAG" "$CTX"

echo "built $TAG ($(docker image inspect --format '{{.Id}}' "$TAG")) with $("$NATS_BIN" --version 2>&1 | head -n 1)"
