#!/bin/sh
# Build the Baton agent image (baton/agent:local) from a static busybox.
#
# Idempotent and offline: the Dockerfile is FROM scratch, nothing is ever
# pulled. Usage: deploy/images/agent/build.sh [TAG]   (default baton/agent:local)
set -eu

TAG="${1:-${BATON_AGENT_IMAGE:-baton/agent:local}}"
HERE="$(cd "$(dirname "$0")" && pwd)"

. "$HERE/../lib.sh"

require_docker

# 1. Find a static busybox.
WANTED="${BUSYBOX:-}"
if [ -n "$WANTED" ] && [ ! -x "$WANTED" ]; then
    fail "BUSYBOX=$WANTED is not an executable file"
fi
BUSYBOX=""
for candidate in "$WANTED" "$(command -v busybox 2>/dev/null || true)" /bin/busybox /usr/bin/busybox; do
    if [ -n "$candidate" ] && [ -x "$candidate" ]; then
        BUSYBOX="$candidate"
        break
    fi
done

if [ -z "$BUSYBOX" ]; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        echo "build.sh: busybox not found, installing busybox-static" >&2
        { DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y busybox-static >/dev/null; }; } ||
            fail "apt-get install busybox-static failed — install a static busybox and retry"
        BUSYBOX=/bin/busybox
    else
        fail "busybox not found — install busybox-static (apt-get install busybox-static) or set BUSYBOX=/path/to/static/busybox"
    fi
fi

# 2. It must be static: the image has no libc.
if command -v ldd >/dev/null 2>&1; then
    if ! ldd "$BUSYBOX" 2>&1 | grep -qE 'not a dynamic executable|statically linked'; then
        fail "$BUSYBOX is dynamically linked — install busybox-static (the image is FROM scratch and has no libc)"
    fi
fi

# 3. Build from a private context (Dockerfile + busybox only).
CTX="$(mktemp -d "${TMPDIR:-/tmp}/baton-agent-build.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT INT TERM
cp "$HERE/Dockerfile" "$CTX/Dockerfile"
cp "$BUSYBOX" "$CTX/busybox"
chmod 0755 "$CTX/busybox"

build_image "$TAG" "$CTX"

echo "built $TAG ($(docker image inspect --format '{{.Id}}' "$TAG"))"
