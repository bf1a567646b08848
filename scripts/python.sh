#!/usr/bin/env bash
# The Python package's tests (scripts/test.sh runs them; CI too): builds the extension module in
# the workspace (the same build cache as the Rust tests), puts it beside the package's sources,
# and runs pytest in a git-ignored virtual environment against the real registry, the real
# `toolenv` binary and a real `toolenv serve`. `scripts/python.sh bench` runs the speed script.
# A user installs the package with `pip install ./env/python` instead (maturin builds it).
set -euo pipefail
cd "$(dirname "$0")/.."
# pytest, and the frameworks whose real classes the adapters are tested against (those that
# install on this CPU machine without torch), pinned: skyrl-gym; verifiers (which brings
# transformers, whose get_json_schema is how TRL reads the environment's methods, PyYAML and
# pydantic for verl's tool config). TRL and verl need torch: scripts/trl-e2e.sh runs TRL.
REQUIREMENTS=(pytest==9.2.0 skyrl-gym==0.4.0 verifiers==0.4.0)
profile="${CARGO_PROFILE:-dev}"
case "$profile" in dev) dir=debug ;; *) dir="$profile" ;; esac
if [ "$(cat .venv-py/requirements 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
    python3 -m venv .venv-py
    .venv-py/bin/pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    echo "${REQUIREMENTS[*]}" > .venv-py/requirements
fi
cargo build --locked --profile "$profile" -p toolenv -p toolenv-python
cp "target/$dir/lib_native.so" env/python/python/toolenv/_native.abi3.so
export PYTHONPATH="$PWD/env/python/python" TOOLENV_BIN="$PWD/target/$dir/toolenv"
if [ "${1:-}" = bench ]; then
    exec .venv-py/bin/python env/python/bench.py
fi
exec .venv-py/bin/python -m pytest -q env/python/tests
