#!/usr/bin/env bash
# The `cuda` feature on a machine with an NVIDIA GPU, as is, without registry access:
# builds `ugr` with `--features cuda` from vendored crates, trains the same few SFT steps on
# the CPU and on the GPU (same seed, dropout 0, built-in data) and compares the losses.
#
# Before copying the repository there, on a machine with registry access:
#   cargo vendor --locked vendor        # vendor/ is ignored by git; copy it along
# There: the CUDA toolkit's nvcc on PATH (or CUDA_ROOT), then `bash scripts/gpu-check.sh`.
# CUDA_COMPUTE_CAP is read from nvidia-smi by candle's build when unset. STEPS (default 50).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -d vendor ] || { echo "vendor/ is missing: run 'cargo vendor --locked vendor' where crates.io is reachable" >&2; exit 2; }
offline=(--offline --locked
  --config 'source.crates-io.replace-with="vendored-sources"'
  --config 'source.vendored-sources.directory="vendor"')
cargo build --release -p ugr-train --features cuda "${offline[@]}"
STEPS=${STEPS:-50}
for dev in cpu cuda; do
  target/release/ugr train sft --out "target/gpu-check-$dev" --overwrite --device "$dev" \
    --epochs 1 --max-steps "$STEPS" --dropout 0 --seed 7 --eval-rows 100 2>&1 | tee "target/gpu-check-$dev.log" | grep '^epoch'
done
python3 - target/gpu-check-cpu.log target/gpu-check-cuda.log <<'PY'
import re, sys
loss = [float(re.search(r"^epoch +1 +loss ([0-9.]+)", open(p).read(), re.M).group(1)) for p in sys.argv[1:3]]
rel = abs(loss[0] - loss[1]) / loss[0]
print(f"loss after the same steps: cpu {loss[0]:.4f}, cuda {loss[1]:.4f} (relative difference {rel:.2e})")
sys.exit(0 if rel < 1e-2 else f"cpu and cuda losses differ by {rel:.2%} (> 1%)")
PY
