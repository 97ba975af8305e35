# Shared by deploy/images/*/build.sh (sourced, not run): failing with one
# clear line, checking Docker, and building a context with no registry.

fail() {
    echo "build.sh: $*" >&2
    exit 1
}

require_docker() {
    command -v docker >/dev/null 2>&1 ||
        fail "the docker CLI is not installed — install docker.io (or docker-ce) first"
    if ! docker version --format '{{.Server.Version}}' >/dev/null 2>&1; then
        endpoint="${DOCKER_HOST:-/var/run/docker.sock}"
        fail "cannot reach Docker at ${endpoint} — start the engine (systemctl start docker) or set DOCKER_HOST"
    fi
}

# build_image TAG CONTEXT: --pull=false, since FROM scratch needs no base
# image; make sure nothing is fetched. The log is shown only on failure.
build_image() {
    if ! docker build --pull=false -q -t "$1" "$2" >"$2/build.log" 2>&1; then
        cat "$2/build.log" >&2
        fail "docker build of $1 failed (see output above)"
    fi
}
