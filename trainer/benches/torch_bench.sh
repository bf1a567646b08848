#!/usr/bin/env bash
# Run torch_bench.py in a virtual environment (.venv-bench at the repository root, created on first
# use with torch and transformers from the default package index). BENCH_THREADS defaults to the
# number of threads candle would use (all cores), so compare like with like.
set -euo pipefail
repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
venv="${BENCH_VENV:-$repo_root/.venv-bench}"
if [[ ! -x "$venv/bin/python" ]]; then
    python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet torch transformers
fi
exec "$venv/bin/python" "$repo_root/trainer/benches/torch_bench.py"
