#!/usr/bin/env bash
# Runs every fuzz target for a fixed time from the committed seeds (fuzz/corpus/<target>);
# new inputs go to a scratch corpus, so the committed one stays small. A crash, a timeout
# (one input over 10 s) or an RSS over 2 GB fails the run and leaves the input under
# fuzz/artifacts/<target>/. Usage: bash fuzz/run.sh [seconds per target] [target...]
set -euo pipefail
cd "$(dirname "$0")"
SECONDS_PER_TARGET=${1:-40}
shift || true
TARGETS=("$@")
[ ${#TARGETS[@]} -gt 0 ] || mapfile -t TARGETS < <(cargo +nightly fuzz list)
cargo +nightly fuzz build
for t in "${TARGETS[@]}"; do
  scratch=$(mktemp -d)
  echo "== $t (${SECONDS_PER_TARGET}s)"
  log="$scratch.log"
  rc=0
  cargo +nightly fuzz run "$t" "$scratch" "corpus/$t" -- \
    -max_total_time="$SECONDS_PER_TARGET" -max_len=4096 -len_control=0 -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 > "$log" 2>&1 || rc=$?
  grep -E '^(#[0-9]+[[:space:]]+DONE|stat::number_of_executed_units|stat::peak_rss_mb|==[0-9]+==|SUMMARY|thread .* panicked)' "$log" || true
  [ "$rc" = 0 ] || tail -n 40 "$log" >&2
  rm -f "$log"
  rm -rf "$scratch"
  if [ "$rc" != 0 ]; then
    echo "fuzz target $t failed (exit $rc); the input is under fuzz/artifacts/$t/" >&2
    exit 1
  fi
done
