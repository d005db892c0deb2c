#!/usr/bin/env bash
# The engine in a browser: builds ugr-wasm (size profile) for wasm32-unknown-unknown, serves
# the repository, opens examples/web/index.html in headless Chromium for several histories
# and checks its top-10 against the native engine's (`ugr recommend --json`): the same items
# in the same order, scores within 1e-4. Prints the .wasm size (raw, gzip) and Chromium's
# latency (p50/p99 over 200 requests). Needs chromium, python3 and a built `ugr`
# (UGR_BIN, default target/debug/ugr). MODEL= picks another artifact (default: the test model).
set -euo pipefail
cd "$(dirname "$0")/../.."
UGR_BIN=${UGR_BIN:-target/debug/ugr}
MODEL=${MODEL:-tests/data/tiny-model.ugr}
HISTORIES=${HISTORIES:-"1,2,3 5 40,41,42,43,44,45,46,47 7,7,7"}
CHROMIUM=$(command -v chromium || command -v chromium-browser || command -v google-chrome)

cargo build --profile size -p ugr-wasm --target wasm32-unknown-unknown --locked
WASM=target/wasm32-unknown-unknown/size/ugr_wasm.wasm
echo "ugr_wasm.wasm: $(stat -c %s "$WASM") bytes, $(gzip -9 -c "$WASM" | wc -c) gzip -9"

PORT=$((20000 + RANDOM % 20000))
python3 -m http.server "$PORT" --bind 127.0.0.1 > /dev/null 2>&1 &
SERVER=$!
trap 'kill $SERVER 2> /dev/null || true' EXIT
for _ in $(seq 50); do
  python3 -c "import urllib.request; urllib.request.urlopen('http://127.0.0.1:$PORT/')" 2> /dev/null && break
  sleep 0.1
done

# The last case carries business rules (a denylist and a SID prefix) through the page's URL.
RULES_DENY=${RULES_DENY:-3,177}
RULES_PREFIX=${RULES_PREFIX:-<a_5>}
echo "$RULES_DENY" | tr ',' ' ' > target/web-deny.txt
for h in $HISTORIES rules:1,2,3; do
  rules=() query=""
  if [ "${h#rules:}" != "$h" ]; then
    h=${h#rules:}
    rules=(--deny target/web-deny.txt --prefix "$RULES_PREFIX")
    query="&deny=$RULES_DENY&prefix=$(python3 -c 'import sys, urllib.parse; print(urllib.parse.quote(sys.argv[1]))' "$RULES_PREFIX")"
  fi
  url="http://127.0.0.1:$PORT/examples/web/index.html?test=1&history=$h&model=../../$MODEL$query"
  page=$(timeout 120 "$CHROMIUM" --headless --no-sandbox --disable-gpu --dump-dom "$url" 2> /dev/null)
  browser=$(printf '%s' "$page" | python3 -c 'import re,sys; m=re.search(r"<pre id=\"result\">(.*?)</pre>", sys.stdin.read(), re.S); print(m.group(1) if m else "{}")')
  native=$("$UGR_BIN" recommend --model "$MODEL" --history "$h" --k 10 --beam 20 --json "${rules[@]}")
  python3 - "$h${query:+ (deny $RULES_DENY, prefix $RULES_PREFIX)}" "$browser" "$native" <<'PY'
import json, sys
history, browser, native = sys.argv[1], json.loads(sys.argv[2]), json.loads(sys.argv[3])
if "items" not in browser:
    sys.exit(f"history {history}: the page gave no result: {browser}")
b = [(r["item"], r["score"]) for r in browser["items"]]
n = [(r["item"], r["score"]) for r in native["items"]]
if [i for i, _ in b] != [i for i, _ in n]:
    sys.exit(f"history {history}: browser {b} != native {n}")
gap = max(abs(x - y) for (_, x), (_, y) in zip(b, n))
if gap > 1e-4:
    sys.exit(f"history {history}: scores differ by {gap}")
print(f"history {history}: top-10 identical to the native engine (max score gap {gap:.2e}); "
      f"Chromium p50 {browser['p50_ms']:.3f} ms, p99 {browser['p99_ms']:.3f} ms over {browser['requests']} requests")
PY
done
