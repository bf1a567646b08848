#!/usr/bin/env bash
# One end-to-end run of TRL's GRPOTrainer with toolenv, on CPU: SmolLM2-135M-Instruct exported
# by `trainer` as a Hugging Face directory, the registry's tools as TRL's environment_factory
# (every call runs in the WebAssembly sandbox, counted), ToolRL's reward as the reward function,
# on a few of env/data/tasks/train.jsonl. CI does not run it: its git-ignored virtual
# environment (.venv-trl: torch, transformers, trl, datasets, pinned) is ~6 GB and the run takes
# ~10 minutes on 2 cores. Needs scripts/setup.sh's model and tools. Extra arguments go to
# env/python/examples/trl_grpo.py (e.g. --steps 5); figures land in runs/trl-e2e/grpo/summary.json.
set -euo pipefail
cd "$(dirname "$0")/.."
REQUIREMENTS=(torch==2.15.0 transformers==5.24.0 trl==1.16.0 datasets==5.2.0 accelerate==1.15.0)
if [ "$(cat .venv-trl/requirements 2>/dev/null)" != "${REQUIREMENTS[*]}" ]; then
    python3 -m venv .venv-trl
    .venv-trl/bin/pip install --quiet --disable-pip-version-check "${REQUIREMENTS[@]}"
    echo "${REQUIREMENTS[*]}" > .venv-trl/requirements
fi
model=models/SmolLM2-135M-Instruct.Q4_1.gguf
[ -f "$model" ] || { echo "trl-e2e: $model is missing: run scripts/setup.sh first" >&2; exit 1; }
cargo build --locked --release -p toolenv-python -p trainer
out=runs/trl-e2e
mkdir -p "$out"
# The model as a Hugging Face directory: `trainer sft` with zero steps exports it as loaded. Its
# config is env/config.toml with absolute paths and the export inside $out.
repo=$PWD
sed -e "s#\"\.\./#\"$repo/#g" -e "s#^out = \"$repo/runs/sft\"#out = \"$repo/$out/sft\"#" env/config.toml > "$out/env.toml"
grep -q "^out = \"$repo/$out/sft\"" "$out/env.toml" || { echo "trl-e2e: no [sft] out in env/config.toml" >&2; exit 1; }
rm -rf "$out/sft/model"
target/release/trainer sft --env "$out/env.toml" --steps 0
# The package with its own copy of the extension: a rebuild that rewrites the one beside the
# sources (scripts/python.sh) would otherwise pull a mapped library from under the run (SIGBUS).
rm -rf "$out/site" && mkdir -p "$out/site"
cp -r env/python/python/toolenv "$out/site/"
cp "target/release/lib_native.so" "$out/site/toolenv/_native.abi3.so"
export TRL_EXPERIMENTAL_SILENCE=1 PYTHONPATH="$repo/$out/site"
exec .venv-trl/bin/python env/python/examples/trl_grpo.py --model "$out/sft/model" --steps 3 \
    --warm-start-steps 8 --out "$out/grpo" "$@"
