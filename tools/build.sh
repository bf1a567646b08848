#!/usr/bin/env bash
# Builds every guest tool to a wasm32-wasip1 command module and copies it to tools/wasm/<name>.wasm,
# where env/config.toml and the tests look for them. Idempotent; cargo rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."
TOOLS=(calculator unit_convert kv_store search hostile)
if ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    rustup target add wasm32-wasip1
fi
args=()
for t in "${TOOLS[@]}"; do args+=(-p "$t"); done
cargo build --quiet --profile wasm --target wasm32-wasip1 "${args[@]}"
mkdir -p tools/wasm
for t in "${TOOLS[@]}"; do
    cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip1/wasm/$t.wasm" "tools/wasm/$t.wasm"
done
echo "built ${#TOOLS[@]} tools into tools/wasm/"
