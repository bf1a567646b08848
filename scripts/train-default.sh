#!/usr/bin/env bash
# Trains the default configuration of env/config.toml end to end and measures it: held-out
# answer accuracy and mean reward of the base model, of the SFT warm start and of the GRPO
# result, all with `trainer eval` on the same held-out tasks. Writes everything under runs/.
# The training wall time (SFT + GRPO, evaluations excluded) is printed at the end.
set -euo pipefail
cd "$(dirname "$0")/.."

cargo build --release -p trainer
bin=target/release/trainer
limit=${EVAL_LIMIT:-50}
# Episodes as the training rollouts run them (`[rollout]`), as the run's own evaluations do: its
# limits, tool listing and tools (a list is joined with commas).
rollout() {
  python3 -c "import tomllib; v = tomllib.load(open('env/config.toml', 'rb'))['rollout']['$1']
print(','.join(v) if isinstance(v, list) else v)"
}
eval_args=(--dataset tasks --limit "$limit" --max-turns "$(rollout max_turns)"
  --max-new-tokens "$(rollout max_new_tokens)" --tool-listing "$(rollout tool_listing)"
  --tools "$(rollout tools)" --concurrency 16)

rm -rf runs/sft runs/grpo runs/eval-base runs/eval-sft runs/eval-grpo
"$bin" eval --model models/SmolLM2-135M-Instruct.Q4_1.gguf "${eval_args[@]}" --out runs/eval-base

start=$(date +%s)
"$bin" sft --env env/config.toml
sft_done=$(date +%s)
"$bin" grpo --env env/config.toml
end=$(date +%s)

"$bin" eval --model runs/sft/model "${eval_args[@]}" --out runs/eval-sft
"$bin" eval --model runs/grpo/model "${eval_args[@]}" --out runs/eval-grpo

echo "SFT: $((sft_done - start)) s, GRPO: $((end - sft_done)) s, training total: $((end - start)) s"
for run in base sft grpo; do
  python3 - "$run" <<'PY'
import json, sys, tomllib
run = sys.argv[1]
s = json.load(open(f"runs/eval-{run}/summary.json"))
terms = tomllib.load(open("env/config.toml", "rb"))["reward"]["terms"]
reward = sum(w * s["rewards"].get(k, 0.0) for k, w in terms.items())
print(f"{run}: accuracy {s['accuracy'].get('overall')}% | training reward {reward:.4f} | "
      + json.dumps({k: s.get(k) for k in ("rewards", "mean_turns", "mean_tool_calls", "tool_error_rate")}))
PY
done
