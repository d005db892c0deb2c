#!/usr/bin/env bash
# The `cuda` feature compiled on a machine without a GPU or a CUDA install (CI runs this).
#
# The toolkit comes from NVIDIA's CUDA 13 PyPI wheels (nvcc, nvvm, the runtime's and CCCL's
# headers: about 105 MB), unpacked once under target/cuda-wheels/. The CUDA 12 wheels carry only
# `ptxas`, not the `nvcc` driver candle's kernel build calls.
#
# What it checks: `cargo check --workspace --lib --features ugr-train/cuda`. Every CUDA kernel
# of candle-kernels goes through nvcc (the crate's build script compiles them in check mode
# too), and cudarc, candle-core/candle-nn with `cuda` and ugr-train are type-checked by rustc.
# What it does not do: generate the Rust code and link `ugr`. Linking needs libcuda.so, which
# ships with the NVIDIA driver, not with the toolkit or the wheels (a stub built from cudarc's
# symbol list links, and proves nothing more), and code generation would recompile tract:
# the feature's build-only dependencies (cudaforge's serde with `derive`) change the features
# of the build scripts' serde, so tract-linalg's build script, then every tract crate, is
# built again (measured here: more than 20 minutes on 2 busy cores before it was stopped).
# `--workspace` keeps the test build's feature resolution for everything else (`-p ugr-train`
# alone resolves features differently and rebuilds more). Code generation, linking and
# running are the GPU machine's job: `bash scripts/gpu-check.sh` builds the binary at candle's
# own nvcc flags there, trains on CPU and GPU and compares the losses.
#
# CI-only economy: NVCC_APPEND_FLAGS turns nvcc's device optimisers off (cicc and ptxas at -O0):
# measured here on one GGUF kernel file, 68 s -> 36 s of CPU. The kernels still go through the
# whole of nvcc (front end, NVVM, ptxas); they are never run from this build.
#
# Usage: bash scripts/cuda-compile.sh [COMMAND...]. With no command it runs the check above;
# with one, it runs that command in the same environment instead. CI passes its clippy command
# (`cargo clippy --workspace --all-targets --features ugr-train/ort,ugr-train/cuda ...`), which
# type-checks everything the check above does, lints the CUDA paths too, and saves CI a second
# pass over every dependency under the cuda feature set (measured on 2 cores, cold: clippy
# 443 s + this check 322 s apart, against 627 s for the one clippy with both features).
#
# Environment: UGR_CUDA_ROOT (an existing toolkit to use instead of the wheels),
# CUDA_COMPUTE_CAP (default 80).
set -euo pipefail
cd "$(dirname "$0")/.."

root=${UGR_CUDA_ROOT:-}
if [ -z "$root" ]; then
  wheels=target/cuda-wheels
  root=$wheels/nvidia/cu13
  if [ ! -x "$root/bin/nvcc" ]; then
    python3 -m pip install --quiet --disable-pip-version-check --no-deps --only-binary=:all: \
      --target "$wheels" \
      nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-runtime==13.0.96 \
      nvidia-cuda-cccl==13.0.85 nvidia-cuda-crt==13.0.88
  fi
fi
root=$(cd "$root" && pwd)
"$root/bin/nvcc" --version | tail -1

cmd=("$@")
[ ${#cmd[@]} -gt 0 ] || cmd=(cargo check --workspace --lib --features ugr-train/cuda --locked)
CUDA_ROOT=$root PATH="$root/bin:$PATH" \
  CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-80} \
  CUDAFORGE_THREADS=$(nproc) \
  NVCC_APPEND_FLAGS="-Xcicc -O0 -Xptxas -O0" \
  "${cmd[@]}"
