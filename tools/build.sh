#!/usr/bin/env bash
# Builds every guest tool and copies it to tools/wasm/<name>.wasm, where env/config.toml and the
# tests look for them: the Rust tools as wasm32-wasip1 command modules, the Python tools
# (tools/python/<name>/app.py) as wasi:cli/command components with componentize-py, which
# scripts/setup.sh installs into .venv-tools. Idempotent; only what changed is rebuilt.
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

# The calculator also as a component (wasm32-wasip2): the test that both kinds give the same bytes.
if rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip2; then
    cargo build --quiet --profile wasm --target wasm32-wasip2 -p calculator
    mkdir -p tools/wasm/p2
    cp "${CARGO_TARGET_DIR:-target}/wasm32-wasip2/wasm/calculator.wasm" tools/wasm/p2/calculator.wasm
    echo "built calculator for wasm32-wasip2 into tools/wasm/p2/"
else
    echo "skipping the wasm32-wasip2 calculator: rustup target add wasm32-wasip2" >&2
fi

# Python tools. componentize-py needs the WIT of the WASI the host links; it comes from the
# wasmtime-wasi crate this workspace builds against, so guest and host agree on every interface.
PY_TOOLS=(python text_stats dates hostile_py)
COMPONENTIZE="${COMPONENTIZE_PY:-.venv-tools/bin/componentize-py}"
if [ ! -x "$COMPONENTIZE" ]; then
    echo "skipping the Python tools: $COMPONENTIZE is missing (run scripts/setup.sh)" >&2
    exit 0
fi
wit="$(cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
wasi = [p for p in meta["packages"] if p["name"] == "wasmtime-wasi"]
if not wasi:
    sys.exit("wasmtime-wasi is not in the workspace dependencies")
print(os.path.join(os.path.dirname(wasi[0]["manifest_path"]), "src", "p2", "wit"))
')"
version="$(sed -n 's/^package wasi:cli@\(.*\);$/\1/p' "$wit/deps/cli.wit")"
built=0
for t in "${PY_TOOLS[@]}"; do
    out="tools/wasm/$t.wasm"
    src="tools/python/$t/app.py"
    if [ -f "$out" ] && [ "$out" -nt "$src" ] && [ "$out" -nt tools/python/toolenv_guest.py ]; then
        continue
    fi
    "$COMPONENTIZE" --quiet -d "$wit" -w "wasi:cli/command@$version" componentize \
        -p tools/python -p "tools/python/$t" app -o "$out.tmp"
    mv "$out.tmp" "$out"
    built=$((built + 1))
done
echo "built $built of ${#PY_TOOLS[@]} Python tools into tools/wasm/ (WASI $version)"
