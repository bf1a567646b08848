#!/usr/bin/env bash
# One-time set-up on a fresh machine: wasm targets and the example tools as wasm modules.
# Idempotent. Needs rustup and network access to the Rust registries.
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1 >/dev/null
./tools/build.sh
