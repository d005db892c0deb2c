#!/usr/bin/env bash
# examples/c/recommend.c against libugr (native backend, release) on x86_64 and, cross-built,
# on aarch64 under qemu-aarch64: both must print the same top-10 items in the same order for
# every history, with scores and confidences within 1e-4. Expects both libugr builds:
#   cargo build --release -p ugr-ffi --no-default-features [--target aarch64-unknown-linux-gnu]
set -euo pipefail
cd "$(dirname "$0")/../.."
MODEL=tests/data/tiny-model.ugr
HISTORIES=(1,2,3 5 40,41,42,43,44,45,46,47 7,7,7 0)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for arch in x86_64 aarch64; do
  mkdir -p "$work/$arch"
  if [ "$arch" = x86_64 ]; then
    cc=gcc lib=target/release/libugr.so run=()
  else
    cc=aarch64-linux-gnu-gcc lib=target/aarch64-unknown-linux-gnu/release/libugr.so
    run=(qemu-aarch64 -L /usr/aarch64-linux-gnu)
  fi
  cp "$lib" "$work/$arch/libugr.so"
  ln -sf libugr.so "$work/$arch/libugr.so.0.1"
  "$cc" -std=c11 -Wall -Wextra -Werror -Iinclude examples/c/recommend.c -L"$work/$arch" -lugr -o "$work/$arch/recommend"
  LD_LIBRARY_PATH="$work/$arch" "${run[@]}" "$work/$arch/recommend" "$MODEL" "${HISTORIES[@]}" > "$work/$arch.txt"
done
python3 - "$work/x86_64.txt" "$work/aarch64.txt" <<'PY'
import sys
a, b = (open(p).read().split("\n") for p in sys.argv[1:3])
assert a[0] == b[0] == "backend native", (a[0], b[0])
rows = lambda lines: [l.split() for l in lines[1:] if l]
ra, rb = rows(a), rows(b)
assert len(ra) == len(rb) > 0, (len(ra), len(rb))
gap = 0.0
for x, y in zip(ra, rb):
    assert x[:3] == y[:3], f"x86_64 {x} vs aarch64 {y}"
    gap = max(gap, abs(float(x[3]) - float(y[3])), abs(float(x[4]) - float(y[4])))
assert gap <= 1e-4, gap
print(f"C example: {len(ra)} ranked items identical on x86_64 and aarch64 (qemu); max score/confidence gap {gap:.1e}")
PY
