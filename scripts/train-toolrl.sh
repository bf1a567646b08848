#!/usr/bin/env bash
# GRPO on the ToolRL data (env/toolrl.toml: one turn per sample, the paper's rubric) with the
# paper's reward ablation at small scale: the fine-grained reward (the paper's default), the
# coarse one (anything short of exactly the expected calls gets the lowest correctness) and the
# dynamic one (`schedule`: format's range shrinks while correctness's grows, its 150 steps
# compressed onto the run's by `[reward] schedule_steps`), each from the same SFT warm start with
# the same seed and budget. Every run evaluates all 80 test samples at the start, at step 4 and
# at the end, always with the paper's default rubric (accuracy = calls fully right), and prints
# its before/after table; then the runs are drawn side by side into docs/reward-ablation.png.
#
#   scripts/train-toolrl.sh                 # all three, seed 0 (~1 h on a 2-core CPU)
#   VARIANTS="default" SEED=1 scripts/train-toolrl.sh
set -euo pipefail
cd "$(dirname "$0")/.."

variants=(${VARIANTS:-default coarse schedule})
seed=${SEED:-0}
cargo build --release -p trainer
bin=target/release/trainer
if [[ ! -f runs/sft/model/model.safetensors ]]; then
  "$bin" sft --env env/config.toml
fi

runs=()
for v in "${variants[@]}"; do
  out=runs/toolrl-$v-s$seed
  rm -rf "$out"
  start=$(date +%s)
  "$bin" grpo --env env/toolrl.toml --set "reward.variant=$v" --set "train.seed=$seed" --out "$out"
  echo "toolrl $v seed $seed: $(($(date +%s) - start)) s"
  label=$v
  case $v in default) label="fine (default)" ;; schedule) label="dynamic (schedule)" ;; esac
  runs+=(--run "$label=$out")
done
"$bin" plot "${runs[@]}" --out "docs/reward-ablation-s$seed.png"
