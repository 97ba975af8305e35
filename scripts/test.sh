#!/usr/bin/env bash
# The whole test suite, against a real nats-server and real Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export BATON_NATS_SERVER="$(pwd)/.baton/bin/nats-server"
# Unoptimised async state machines are several times their release size, and
# test threads get 2 MiB of stack; whole Batons started inside a test need more.
export RUST_MIN_STACK="${RUST_MIN_STACK:-8388608}"
cargo test --workspace --all-targets --locked "$@"
