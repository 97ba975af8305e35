#!/usr/bin/env bash
# Short fuzz runs of the plan parser, the gate expression language, the
# `expr` gate with a context off the bus and the `window` gate's evaluation
# (cargo fuzz / libFuzzer). Fails on any crash, panic, stack overflow or
# timeout. BATON_FUZZ_SECS sets the seconds per target (default 60).
set -euo pipefail
cd "$(dirname "$0")/.."
secs="${BATON_FUZZ_SECS:-60}"
export PATH="$PWD/.baton/bin:$PATH"
if ! command -v cargo-fuzz >/dev/null 2>&1; then
    echo "fuzz: installing cargo-fuzz into .baton/bin"
    cargo install cargo-fuzz --locked --root .baton
fi
# AddressSanitizer needs a nightly compiler. Without one, fuzz on stable
# without a sanitizer (Rust code is memory-safe; panics still end the run).
if rustup toolchain list 2>/dev/null | grep -q '^nightly'; then
    toolchain=(+nightly)
    sanitizer=address
else
    toolchain=()
    sanitizer=none
    export RUSTC_BOOTSTRAP=1
fi
for target in plan_parse expr expr_gate window; do
    # New inputs land in a scratch folder; the committed seed corpus stays as is.
    scratch="$(mktemp -d)"
    echo "fuzz: $target for ${secs}s (sanitizer: $sanitizer)"
    cargo "${toolchain[@]}" fuzz run --sanitizer "$sanitizer" "$target" \
        "$scratch" "fuzz/corpus/$target" -- \
        -max_total_time="$secs" -timeout=10 -rss_limit_mb=4096 -max_len=65536 -print_final_stats=1
    rm -rf "$scratch"
done
echo "fuzz: no crash in ${secs}s per target"
