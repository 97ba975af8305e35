#!/usr/bin/env bash
# The whole test suite, against a real nats-server and real Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export BATON_NATS_SERVER="$(pwd)/.baton/bin/nats-server"
# Unoptimised async state machines are several times their release size, and
# test threads get 2 MiB of stack; whole Batons started inside a test need more.
export RUST_MIN_STACK="${RUST_MIN_STACK:-8388608}"
# One test at a time: the cli's integration tests are one binary now, and a
# test that restarts nats-server under 100 runs must not share the two cores
# with a Docker-heavy neighbour (that is how the per-binary layout ran them).
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-1}"
cargo test --workspace --all-targets --locked "$@"
