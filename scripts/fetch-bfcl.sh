#!/usr/bin/env bash
# BFCL (the Berkeley Function Calling Leaderboard) as bfcl-eval ships it, pinned: the wheel is
# downloaded without its dependencies and unpacked into the git-ignored `.bfcl/`. The datasets
# `bfcl-*` read its `bfcl_eval/data/`; the checker's reference script imports its
# `bfcl_eval/eval_checker/`; the multi-turn backends are built from its `func_source_code/`.
# Nothing of it is committed. Idempotent: a matching `.bfcl/VERSION` means it is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
BFCL_EVAL_VERSION=2026.3.23
if [ "$(cat .bfcl/VERSION 2>/dev/null)" = "$BFCL_EVAL_VERSION" ]; then
    exit 0
fi
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
echo "fetch-bfcl: downloading bfcl-eval $BFCL_EVAL_VERSION (~2 MB) with pip" >&2
python3 -m pip download --quiet --disable-pip-version-check --no-deps \
    "bfcl-eval==$BFCL_EVAL_VERSION" -d "$tmp"
rm -rf .bfcl.partial
mkdir .bfcl.partial
python3 -m zipfile -e "$tmp"/bfcl_eval-"$BFCL_EVAL_VERSION"-*.whl .bfcl.partial
echo "$BFCL_EVAL_VERSION" > .bfcl.partial/VERSION
rm -rf .bfcl
mv .bfcl.partial .bfcl
echo "fetch-bfcl: unpacked into .bfcl/ ($(ls .bfcl/bfcl_eval/data/BFCL_v4_*.json | wc -l) question files)" >&2
