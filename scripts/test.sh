#!/usr/bin/env bash
# The whole test suite, against a real nats-server and real Docker.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export BATON_NATS_SERVER="$(pwd)/.baton/bin/nats-server"
cargo test --workspace --all-targets --locked "$@"
