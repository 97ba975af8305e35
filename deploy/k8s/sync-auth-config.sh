#!/bin/sh
# Copy deploy/nats/auth/baton-auth.conf into the `baton-auth.conf` key of the
# nats-config ConfigMap in deploy/k8s/nats.yaml. Run it after every change of
# the users or their permissions: the Kubernetes manifests must render on
# their own (kustomize may not read files outside deploy/k8s), so they carry
# a copy, and test-support/tests/deploy_manifests.rs fails while the copy
# differs from the file.
#
# Usage: deploy/k8s/sync-auth-config.sh
set -eu

HERE="$(cd "$(dirname "$0")" && pwd)"
AUTH="$HERE/../nats/auth/baton-auth.conf"
YAML="$HERE/nats.yaml"

grep -q '^  baton-auth.conf: |$' "$YAML" || {
    echo "sync-auth-config.sh: no '  baton-auth.conf: |' key in $YAML" >&2
    exit 1
}
tmp="$YAML.tmp.$$"
trap 'rm -f "$tmp"' EXIT INT TERM
# Keep everything but the key's block (its lines up to the next `---`), and
# write the file there, indented by four spaces (blank lines stay blank).
awk -v auth="$AUTH" '
    skipping && /^---$/ { skipping = 0 }
    skipping { next }
    { print }
    /^  baton-auth.conf: \|$/ {
        while ((getline line < auth) > 0) {
            if (line == "") print ""; else print "    " line
        }
        close(auth)
        skipping = 1
    }
' "$YAML" >"$tmp"
mv "$tmp" "$YAML"
trap - EXIT INT TERM
echo "sync-auth-config.sh: $YAML now carries $AUTH" >&2
