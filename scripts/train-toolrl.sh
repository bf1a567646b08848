#!/usr/bin/env bash
# GRPO on the ToolRL data (env/toolrl.toml: one turn per sample, the paper's reward) and its
# before/after on ToolRL's test split (80 samples), all measured with `trainer eval` (greedy, the
# paper's scoring): the base model, the SFT warm start the run begins from (runs/sft/model, made
# by `trainer sft --env env/config.toml` or scripts/train-default.sh), and the GRPO result.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p trainer
bin=target/release/trainer
eval_args=(--dataset toolrl --max-new-tokens 128 --concurrency 16)
if [[ ! -f runs/sft/model/model.safetensors ]]; then
  "$bin" sft --env env/config.toml
fi

rm -rf runs/grpo-toolrl runs/eval-toolrl-{base,sft,grpo}
"$bin" eval --model models/SmolLM2-135M-Instruct.Q4_1.gguf "${eval_args[@]}" --out runs/eval-toolrl-base
"$bin" eval --model runs/sft/model "${eval_args[@]}" --out runs/eval-toolrl-sft
start=$(date +%s)
"$bin" grpo --env env/toolrl.toml
end=$(date +%s)
"$bin" eval --model runs/grpo-toolrl/model "${eval_args[@]}" --out runs/eval-toolrl-grpo

echo "GRPO: $((end - start)) s"
for run in base sft grpo; do
  python3 - "$run" <<'PY'
import json, sys
run = sys.argv[1]
s = json.load(open(f"runs/eval-toolrl-{run}/summary.json"))
rows = [json.loads(l) for l in open(f"runs/eval-toolrl-{run}/results.jsonl")]
# Exact: right format and every call right (the default variant's correctness maximum, 3).
exact = sum(r["rewards"].get("format") == 1.0 and r["rewards"].get("correctness") == 3.0 for r in rows)
print(f"{run}: exact {100 * exact / len(rows):.2f}% | " + json.dumps({k: s.get(k) for k in ("samples", "failed", "rewards")}))
PY
done
