#!/usr/bin/env bash
# Builds BFCL's multi-turn backends into the sandbox: `.bfcl/tools/bfcl_backends.wasm`, one
# componentize-py component holding bfcl-eval's eight multi-turn classes (from the sources
# scripts/fetch-bfcl.sh unpacked into .bfcl/, with mpmath, pinned, which MathAPI imports) and
# tools/bfcl/app.py; and `.bfcl/tools/config.toml`, one tool per backend method with the schema
# from BFCL's function docs (tools/bfcl/make_config.py). Nothing of it is committed. Idempotent:
# rebuilt only when app.py, make_config.py or the fetched version changed.
set -euo pipefail
cd "$(dirname "$0")/../.."
MPMATH_VERSION=1.3.0
COMPONENTIZE="${COMPONENTIZE_PY:-.venv-tools/bin/componentize-py}"
out=.bfcl/tools
if [ ! -f .bfcl/VERSION ]; then
    echo "tools/bfcl/build.sh: .bfcl/ is missing: run scripts/fetch-bfcl.sh first" >&2
    exit 1
fi
stamp="$(cat .bfcl/VERSION) mpmath $MPMATH_VERSION $(sha256sum tools/bfcl/app.py tools/bfcl/make_config.py | sha256sum | cut -c1-16)"
if [ -f "$out/bfcl_backends.wasm" ] && [ "$(cat "$out/STAMP" 2>/dev/null)" = "$stamp" ]; then
    exit 0
fi
build="$(mktemp -d)"
trap 'rm -rf "$build"' EXIT
src=.bfcl/bfcl_eval
py="$build/py/bfcl_eval"
# Only the modules the backends import: the rest of bfcl-eval (its model handlers) needs SDKs
# that are neither wanted nor installable in the component.
mkdir -p "$py/constants" "$py/eval_checker"
cp "$src/__init__.py" "$py/"
cp "$src/constants/__init__.py" "$src/constants/executable_backend_config.py" "$py/constants/"
cp "$src/eval_checker/__init__.py" "$py/eval_checker/"
cp -r "$src/eval_checker/multi_turn_eval" "$py/eval_checker/"
rm -f "$py"/eval_checker/multi_turn_eval/func_source_code/{memory_*,web_search}.py
.venv-tools/bin/pip install --quiet --disable-pip-version-check --target "$build/py" "mpmath==$MPMATH_VERSION"
wit="$(cargo metadata --format-version 1 --locked --filter-platform "$(rustc -vV | sed -n 's/^host: //p')" | python3 -c '
import json, os, sys
meta = json.load(sys.stdin)
wasi = [p for p in meta["packages"] if p["name"] == "wasmtime-wasi"]
print(os.path.join(os.path.dirname(wasi[0]["manifest_path"]), "src", "p2", "wit"))
')"
version="$(sed -n 's/^package wasi:cli@\(.*\);$/\1/p' "$wit/deps/cli.wit")"
mkdir -p "$out"
"$COMPONENTIZE" --quiet -d "$wit" -w "wasi:cli/command@$version" componentize \
    -p "$build/py" -p tools/bfcl app -o "$out/bfcl_backends.wasm.tmp"
mv "$out/bfcl_backends.wasm.tmp" "$out/bfcl_backends.wasm"
python3 tools/bfcl/make_config.py "$src/data/multi_turn_func_doc" "$out"
echo "$stamp" > "$out/STAMP"
echo "built BFCL's multi-turn backends into $out/ (WASI $version)"
