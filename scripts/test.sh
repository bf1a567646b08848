#!/usr/bin/env bash
# The project's test command (CI runs exactly this, via .ci/run): formatting, lints, then every
# test in the workspace, against freshly built wasm tools, then the Python package's tests.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo test --workspace --locked
bash scripts/python.sh
