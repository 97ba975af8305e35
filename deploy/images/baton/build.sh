#!/bin/sh
# Build Baton's service image (baton/baton:local) FROM scratch: the release
# `baton` binary plus every shared library `ldd` lists, at their own paths.
#
# Idempotent and offline: nothing is ever pulled.
#
# Usage: deploy/images/baton/build.sh [--no-build] [TAG]   (default baton/baton:local)
#   --no-build (or BATON_NO_BUILD=1)  use the binary already built, do not run cargo
#   BATON_BIN=/path/to/baton          package this binary (implies --no-build)
#
# Without them it runs `cargo build --release --locked -p baton` and packages
# ${CARGO_TARGET_DIR:-target}/release/baton.
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
ROOT="$(cd "$HERE/../../.." && pwd)"

NO_BUILD="${BATON_NO_BUILD:-0}"
TAG=""
for arg in "$@"; do
    case "$arg" in
        --no-build) NO_BUILD=1 ;;
        -h | --help)
            sed -n '2,12p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        -*)
            echo "build.sh: unknown option $arg" >&2
            exit 2
            ;;
        *) TAG="$arg" ;;
    esac
done
TAG="${TAG:-${BATON_IMAGE:-baton/baton:local}}"

. "$HERE/../lib.sh"

require_docker
command -v ldd >/dev/null 2>&1 ||
    fail "ldd is not installed — it lists the libraries the image needs (apt-get install libc-bin)"

# 1. The binary: given, already built, or built now.
if [ -n "${BATON_BIN:-}" ]; then
    BIN="$BATON_BIN"
    [ -x "$BIN" ] || fail "BATON_BIN=$BIN is not an executable file"
else
    TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
    case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
    BIN="$TARGET_DIR/release/baton"
    if [ "$NO_BUILD" != 1 ]; then
        command -v cargo >/dev/null 2>&1 || fail "cargo is not installed — install Rust (rustup) or pass --no-build with a built binary"
        echo "build.sh: cargo build --release --locked -p baton" >&2
        (cd "$ROOT" && cargo build --release --locked -p baton) ||
            fail "cargo build --release --locked -p baton failed (see output above)"
    fi
    [ -x "$BIN" ] || fail "no binary at $BIN — build it (cargo build --release --locked -p baton) or set BATON_BIN"
fi

# 2. A private context: rootfs/ holds exactly what ends up in the image.
CTX="$(mktemp -d "${TMPDIR:-/tmp}/baton-image-build.XXXXXX")"
trap 'rm -rf "$CTX"' EXIT INT TERM
cp "$HERE/Dockerfile" "$CTX/Dockerfile"
RFS="$CTX/rootfs"
mkdir -p "$RFS/usr/local/bin" "$RFS/etc" "$RFS/tmp"
chmod 1777 "$RFS/tmp"
cp -L "$BIN" "$RFS/usr/local/bin/baton"
chmod 0755 "$RFS/usr/local/bin/baton"

# 3. Every library ldd lists, and the loader, at the path ldd gives (the
#    loader's path is compiled into the binary; libraries are found through
#    the default search path, which includes where they are on this machine).
#    `cp -L`: keep the listed name, copy the file it points to.
ldd "$BIN" >"$CTX/ldd.txt" 2>&1 || {
    if grep -qE 'not a dynamic executable|statically linked' "$CTX/ldd.txt"; then
        : >"$CTX/ldd.txt" # static: nothing to copy
    else
        cat "$CTX/ldd.txt" >&2
        fail "ldd $BIN failed"
    fi
}
if grep -q 'not found' "$CTX/ldd.txt"; then
    cat "$CTX/ldd.txt" >&2
    fail "$BIN needs libraries this machine does not have (see 'not found' above)"
fi
libs=0
for lib in $(sed -n -e 's/^.*=> \(\/[^ ]*\) (0x.*$/\1/p' -e 's/^[[:space:]]*\(\/[^ ]*\) (0x.*$/\1/p' "$CTX/ldd.txt"); do
    mkdir -p "$RFS$(dirname "$lib")"
    cp -L "$lib" "$RFS$lib"
    libs=$((libs + 1))
done

# 4. The few files glibc and the user switch look for.
printf 'root:x:0:0:root:/:/nonexistent\nbaton:x:10001:10001:Baton:/tmp:/nonexistent\nnobody:x:65534:65534:nobody:/nonexistent:/nonexistent\n' >"$RFS/etc/passwd"
printf 'root:x:0:\nbaton:x:10001:\nnogroup:x:65534:\n' >"$RFS/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$RFS/etc/nsswitch.conf"

build_image "$TAG" "$CTX"

# 5. The image must run: a missing library shows up here, not in production.
if ! version="$(docker run --rm --network none --entrypoint /usr/local/bin/baton "$TAG" --version 2>&1)"; then
    echo "$version" >&2
    fail "$TAG does not run (a library missing from the image?)"
fi
version="$(printf '%s\n' "$version" | head -n 1)"

echo "built $TAG ($(docker image inspect --format '{{.Id}}' "$TAG")): $version, $libs shared libraries"
