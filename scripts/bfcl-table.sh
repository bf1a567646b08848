#!/usr/bin/env bash
# BFCL for local models with `trainer eval`, as a markdown table: one column per model, a row per
# category and per aggregate (bfcl-eval's), from each run's summary.json.
#
#   scripts/bfcl-table.sh [MODEL ...]    default: the base model and the default run's result
#
# Env: PER_GROUP=N evaluates only the first N entries of each category (the whole of BFCL takes
# hours per model on a 2-core CPU); DATASET (default bfcl; e.g. bfcl-single-turn, whose entries
# take seconds each where multi-turn ones take minutes); CONCURRENCY (default 16); OUT (default
# runs/bfcl). Results resume: rerunning skips entries already done.
set -euo pipefail
cd "$(dirname "$0")/.."
models=("$@")
[ ${#models[@]} -gt 0 ] || models=(models/SmolLM2-135M-Instruct.Q4_1.gguf runs/grpo/model)
out=${OUT:-runs/bfcl}
limit=()
[ -z "${PER_GROUP:-}" ] || limit=(--limit-per-group "$PER_GROUP")

cargo build --release -p trainer >&2
dirs=()
for model in "${models[@]}"; do
    name=$(echo "$model" | tr '/' '_' | sed 's/^_*//')
    dir="$out/${DATASET:-bfcl}-${PER_GROUP:+first$PER_GROUP-}$name"
    echo "bfcl-table: $model -> $dir" >&2
    start=$(date +%s)
    target/release/trainer eval --model "$model" --dataset "${DATASET:-bfcl}" "${limit[@]}" \
        --concurrency "${CONCURRENCY:-16}" --out "$dir" >&2
    echo "bfcl-table: $model took $(( $(date +%s) - start )) s" >&2
    dirs+=("$dir")
done

python3 - "${models[@]}" -- "${dirs[@]}" <<'PY'
import json, sys
args = sys.argv[1:]
cut = args.index("--")
models, dirs = args[:cut], args[cut + 1:]
summaries = [json.load(open(f"{d}/summary.json")) for d in dirs]
# Entries per category, from the first run (every run covers the same selection).
counts = {}
for line in open(f"{dirs[0]}/results.jsonl"):
    group = json.loads(line)["group"]
    counts[group] = counts.get(group, 0) + 1
aggregates = ["simple", "non_live", "live", "irrelevance_detection", "multi_turn"]
keys = [k for k in summaries[0]["accuracy"] if k not in aggregates]
keys += [k for k in aggregates if k in summaries[0]["accuracy"]]
print("| category | entries | " + " | ".join(models) + " |")
print("| --- | ---: | " + " | ".join("---:" for _ in models) + " |")
for k in keys:
    n = counts.get(k, "")
    row = [f"{s['accuracy'].get(k, float('nan')):.2f}" for s in summaries]
    name = f"**{k}**" if k in aggregates else k
    print(f"| {name} | {n} | " + " | ".join(row) + " |")
print(f"\n{summaries[0]['samples']} entries per model" + (
    f" (the first {summaries[0]['subset']['limit_per_group']} of each category, of "
    f"{summaries[0]['subset']['of']})" if "subset" in summaries[0] else ""))
PY
