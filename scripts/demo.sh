#!/usr/bin/env bash
# The flagship demo: real NATS, real containers. Starts `baton dev`, runs
# examples/release-train-ga.yaml (P0–P8, dev → stage → prod, a prod canary
# 10 → 50 → 100 %, the GA flip), approves prod's promotion the way a person
# would, follows the run to its end, verifies its audit trail and signed
# evidence, then stops everything.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --locked -p baton
B=target/release/baton
nats_port=${BATON_DEMO_NATS_PORT:-4222}
admin=${BATON_DEMO_ADMIN:-127.0.0.1:7233}
export BATON_SERVER="http://$admin"
log=$(mktemp)
"$B" dev --nats-port "$nats_port" --grpc-addr "$admin" >"$log" 2>&1 &
dev=$!
stop() { kill -INT "$dev" 2>/dev/null || true; wait "$dev" 2>/dev/null || true; }
trap stop EXIT
for _ in $(seq 1 100); do
  "$B" runs >/dev/null 2>&1 && break
  if ! kill -0 "$dev" 2>/dev/null; then cat "$log" >&2; echo "demo: baton dev did not start" >&2; exit 1; fi
  sleep 0.2
done
sed -n '/baton dev is up/,/try:/p' "$log" >&2

"$B" plan validate examples/release-train-ga.yaml
run=$("$B" run examples/release-train-ga.yaml --input version=v3.0.0)
echo "demo: run $run submitted; it will stop before promoting to prod and wait for an approval" >&2
for _ in $(seq 1 300); do
  if "$B" status "$run" | grep -q "waiting: approval"; then break; fi
  sleep 0.2
done
"$B" status "$run"
echo "demo: \$ baton approve $run --reason \"stage is green, promote to prod\"" >&2
"$B" approve "$run" --reason "stage is green, promote to prod" --by demo
"$B" status "$run" --wait
"$B" logs "$run"

# What an auditor does afterwards: walk the run's hash-chained audit trail,
# then export its signed evidence and verify it offline with the public key.
"$B" audit verify --run "$run" --nats-url "nats://127.0.0.1:$nats_port"
evidence="$(dirname "$log")/$run.intoto.json"
for _ in $(seq 1 150); do
  "$B" evidence export "$run" -o "$evidence" >/dev/null 2>&1 && break
  sleep 0.2
done
"$B" evidence verify "$evidence" --key .baton/evidence.key.pub
