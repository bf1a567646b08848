#!/usr/bin/env bash
# Set up a CUDA 13.0 build toolkit from PyPI wheels, so that `cargo build -p trainer --features
# cuda` works on a machine with no GPU and no system CUDA toolkit.
#
# What it does (idempotent; re-running only redoes what is missing):
#   1. `pip install --no-deps --target` the pinned NVIDIA wheels below into .cuda/pkgs at the
#      repository root (git-ignored). They all unpack into one tree, nvidia/cu13/{bin,include,lib,
#      nvvm}, which .cuda/root points at.
#   2. Makes that tree look like a CUDA_ROOT to candle-kernels (cudaforge runs `nvcc`) and cudarc
#      (links -lcuda -lnvrtc -lcublas -lcublasLt -lcurand, candle-kernels adds -lcudart):
#      lib64 -> lib, targets/x86_64-linux/{include,lib} (where nvcc.profile looks) and the
#      unversioned lib*.so link-time symlinks.
#   3. If no real linkable libcuda.so is installed, builds a stub one (soname libcuda.so.1, every
#      cu* driver entry point returns CUDA_ERROR_NO_DEVICE) into .cuda/root/lib/stubs, like the
#      stub the full CUDA toolkit ships. Binaries link against it and use the real driver at run
#      time on a GPU machine.
#   4. Prints the `export` lines for the build on stdout (progress goes to stderr). Usage:
#        eval "$(bash trainer/scripts/cuda-toolkit.sh)"
#        cargo build --release -p trainer --features cuda
# Needs python3 with pip, gcc, and network access to the Python package index (first run only).
# Env: PYTHON (default python3), CUDA_COMPUTE_CAP (default 90, i.e. H100/H200).
set -euo pipefail

repo_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cuda_dir="$repo_root/.cuda"
pkgs="$cuda_dir/pkgs"
root="$cuda_dir/root"
compute_cap="${CUDA_COMPUTE_CAP:-90}"

# CUDA 13.0 (update 2) components. nvidia-nvvm (cicc, libdevice) is a dependency of
# nvidia-cuda-nvcc, and cudarc links libnvrtc, hence nvidia-cuda-nvrtc.
wheels=(
    nvidia-cuda-nvcc==13.0.88
    nvidia-nvvm==13.0.88
    nvidia-cuda-crt==13.0.88
    nvidia-cuda-runtime==13.0.96
    nvidia-cuda-cccl==13.0.85
    nvidia-cuda-nvrtc==13.0.88
    nvidia-cublas==13.0.2.14
    nvidia-curand==10.4.0.35
)

log() { echo "cuda-toolkit: $*" >&2; }
die() { echo "cuda-toolkit: error: $*" >&2; exit 1; }

# --- 1. wheels -----------------------------------------------------------------------------------
stamp="$pkgs/.installed"
if [[ -x "$pkgs/nvidia/cu13/bin/nvcc" && -f "$stamp" ]] \
        && [[ "$(cat "$stamp")" == "${wheels[*]}" ]]; then
    log "wheels already installed in $pkgs"
else
    python="${PYTHON:-python3}"
    command -v "$python" >/dev/null 2>&1 || die "$python not found (need Python 3 with pip)"
    "$python" -m pip --version >/dev/null 2>&1 \
        || die "pip is not available for $python (try: $python -m ensurepip, or apt-get install python3-pip)"
    tmp="$cuda_dir/pkgs.tmp"
    rm -rf "$tmp"
    mkdir -p "$cuda_dir"
    log "installing ${wheels[*]} (about 900 MB download, 1.2 GB unpacked) into $pkgs"
    if ! "$python" -m pip install --disable-pip-version-check --no-deps --only-binary=:all: \
            --target "$tmp" "${wheels[@]}" >"$cuda_dir/pip.log" 2>&1; then
        tail -n 15 "$cuda_dir/pip.log" >&2
        rm -rf "$tmp"
        die "pip could not install the CUDA wheels (no network access to the Python package index?). Full log: $cuda_dir/pip.log"
    fi
    [[ -x "$tmp/nvidia/cu13/bin/nvcc" ]] || die "no nvidia/cu13/bin/nvcc after pip install; see $cuda_dir/pip.log"
    printf '%s' "${wheels[*]}" >"$tmp/.installed"
    rm -rf "$pkgs"
    mv "$tmp" "$pkgs"
fi

# --- 2. CUDA_ROOT layout -------------------------------------------------------------------------
ln -sfn pkgs/nvidia/cu13 "$root"
ln -sfn lib "$root/lib64"
mkdir -p "$root/targets/x86_64-linux" "$root/lib/stubs"
ln -sfn ../../include "$root/targets/x86_64-linux/include"
ln -sfn ../../lib "$root/targets/x86_64-linux/lib"
# Link-time names: libfoo.so -> libfoo.so.N (the wheels ship only the versioned files).
for f in "$root"/lib/lib*.so.*; do
    base="$(basename "$f")"
    short="${base%%.so.*}.so"
    [[ "$base" == *alt.so* ]] && continue
    [[ -e "$root/lib/$short" ]] || ln -s "$base" "$root/lib/$short"
done
"$root/bin/nvcc" --version >/dev/null 2>&1 || die "$root/bin/nvcc does not run"

# --- 3. stub libcuda.so --------------------------------------------------------------------------
real_libcuda=""
for d in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/lib /usr/local/nvidia/lib64 /usr/lib/wsl/lib; do
    if [[ -e "$d/libcuda.so" ]]; then real_libcuda="$d/libcuda.so"; break; fi
done
has_driver=0
if [[ -n "$real_libcuda" ]] || ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1 '; then
    has_driver=1
fi
stub="$root/lib/stubs/libcuda.so"
if [[ -n "$real_libcuda" ]]; then
    log "using the installed driver library $real_libcuda (no stub needed)"
    rm -f "$stub" "$stub.1"
elif [[ -s "$stub" && "$stub" -nt "$root/include/cuda.h" && "$stub" -nt "${BASH_SOURCE[0]}" ]]; then
    log "stub $stub already built"
else
    command -v gcc >/dev/null 2>&1 || die "gcc is needed to build the stub libcuda.so"
    log "building stub $stub"
    src="$cuda_dir/libcuda-stub.c"
    headers=()
    for h in cuda.h cudaProfiler.h cudaGL.h cudaEGL.h cudaVDPAU.h; do
        [[ -f "$root/include/$h" ]] && headers+=("$root/include/$h")
    done
    {
        echo '/* Generated by trainer/scripts/cuda-toolkit.sh: link-time stub of libcuda.so.1. */'
        echo 'static const char no_dev_name[] = "CUDA_ERROR_NO_DEVICE";'
        echo 'static const char no_dev_str[] = "no CUDA-capable device is detected (stub libcuda.so: no NVIDIA driver here)";'
        echo 'int cuGetErrorName(int e, const char **s) { (void)e; *s = no_dev_name; return 0; }'
        echo 'int cuGetErrorString(int e, const char **s) { (void)e; *s = no_dev_str; return 0; }'
        # Every driver entry point named in the headers (plain and _v2/_v3... names): a
        # function returning CUDA_ERROR_NO_DEVICE (100).
        grep -ohE '\bcu[A-Z][A-Za-z0-9_]*\b' "${headers[@]}" | sort -u \
            | grep -vxE 'cuGetErrorName|cuGetErrorString' \
            | sed 's/.*/int &(void) { return 100; }/'
    } >"$src"
    gcc -shared -fPIC -O1 -Wl,-soname,libcuda.so.1 -o "$stub.tmp" "$src"
    mv "$stub.tmp" "$stub"
    ln -sfn libcuda.so "$stub.1"
fi

# --- 4. environment ------------------------------------------------------------------------------
q() { printf '%q' "$1"; }
r="$(q "$root")"
echo "export CUDA_ROOT=$r CUDA_PATH=$r CUDA_HOME=$r"
echo "export PATH=$r/bin\${PATH:+:\$PATH}"
echo "export LIBRARY_PATH=$r/lib:$r/lib/stubs\${LIBRARY_PATH:+:\$LIBRARY_PATH}"
if [[ "$has_driver" == 1 ]]; then
    # Real driver present: never let the stub shadow it at run time.
    echo "export LD_LIBRARY_PATH=$r/lib\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
else
    # No driver: the stub lets CUDA builds start (and fail cleanly on `--device cuda`).
    echo "export LD_LIBRARY_PATH=$r/lib:$r/lib/stubs\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}"
fi
echo "export CUDA_COMPUTE_CAP=$(q "$compute_cap")"
log "ready: $("$root/bin/nvcc" --version | grep -o 'release [0-9.]*, V[0-9.]*'), CUDA_COMPUTE_CAP=$compute_cap"
