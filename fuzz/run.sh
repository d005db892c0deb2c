#!/usr/bin/env bash
# Runs every fuzz target for a fixed time from the committed seeds (fuzz/corpus/<target>),
# as many at once as there are cores (UGR_FUZZ_JOBS to change it; each libFuzzer process
# uses one core). New inputs go to a scratch corpus, so the committed one stays small. A
# crash, a timeout (one input over 10 s) or an RSS over 2 GB fails the run and leaves the
# input under fuzz/artifacts/<target>/. Usage: bash fuzz/run.sh [seconds per target] [target...]
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-40}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
JOBS=${UGR_FUZZ_JOBS:-$(nproc)}
cargo +nightly fuzz build

# One target; its report is printed in one piece when it ends, so parallel runs do not interleave.
run_one() {
  local t=$1 scratch log rc=0
  scratch=$(mktemp -d)
  log="$scratch.log"
  cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -len_control=0 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1 || rc=$?
  {
    echo "== $t (${SECONDS_PER_TARGET}s)"
    grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread .* panicked)' "$log" || true
    [ "$rc" = 0 ] || tail -n 40 "$log"
    [ "$rc" = 0 ] || echo "fuzz target $t failed (exit $rc); the input is under fuzz/artifacts/$t/"
  } > "$scratch.report"
  cat "$scratch.report"
  rm -f "$log" "$scratch.report"
  rm -rf "$scratch"
  return "$rc"
}

failed=0
running=0
for t in "${TARGETS[@]}"; do
  if [ "$running" -ge "$JOBS" ]; then
    wait -n || failed=1
    running=$((running - 1))
  fi
  run_one "$t" &
  running=$((running + 1))
done
while [ "$running" -gt 0 ]; do
  wait -n || failed=1
  running=$((running - 1))
done
[ "$failed" = 0 ] || { echo "a fuzz target failed (its report is above)" >&2; exit 1; }
