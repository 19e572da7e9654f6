#!/usr/bin/env bash
# browser_test.sh: the dashboard in a real browser. Starts pushstage-dashboard-demo on a free
# loopback port with its Batcher named "<script>alert(1)</script>", loads "/" twice in headless
# Chromium (the page fetches /topology.json and draws itself), and checks the DOM with
# check_dom.py: every component of /topology.json is a card, the hostile name is shown as text
# (no element came from it), and counts move between the two loads. Saves a screenshot.
# Usage: browser_test.sh DEMO CHROMIUM OUT_DIR
set -euo pipefail
demo=$1 chromium=$2 out=$3
here=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$out"
rm -f "$out"/dom1.html "$out"/dom2.html "$out"/topology.json "$out"/dashboard.png

"$demo" --port 0 --seconds 120 --stage-name '<script>alert(1)</script>' >"$out/demo.out" 2>&1 &
demo_pid=$!
trap 'kill "$demo_pid" 2>/dev/null || true; wait "$demo_pid" 2>/dev/null || true' EXIT

port=
for _ in $(seq 1 200); do  # a guard against a demo that never starts, not a timing
  port=$(grep -o 'http://127.0.0.1:[0-9]*' "$out/demo.out" | cut -d: -f3 || true)
  [[ -n "$port" ]] && break
  kill -0 "$demo_pid" 2>/dev/null || { cat "$out/demo.out" >&2; exit 1; }
  sleep 0.1
done
[[ -n "$port" ]] || { echo "browser_test: the demo printed no port" >&2; exit 1; }
url="http://127.0.0.1:$port/"

browse() {
  # --no-sandbox: CI containers run as root; the profile is a scratch one.
  timeout 120 "$chromium" --headless --no-sandbox --disable-gpu --disable-dev-shm-usage \
    --no-first-run --user-data-dir="$out/profile" --virtual-time-budget=3000 "$@" "$url" \
    2>>"$out/chromium.log"
}
browse --dump-dom >"$out/dom1.html"
browse --dump-dom >"$out/dom2.html"
browse --window-size=1640,600 --screenshot="$out/dashboard.png" >/dev/null
python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1]).read().decode())' \
  "${url}topology.json" >"$out/topology.json"
python3 "$here/check_dom.py" "$out/topology.json" "$out/dom1.html" "$out/dom2.html" \
  '<script>alert(1)</script>'
[[ -s "$out/dashboard.png" ]] || { echo "browser_test: no screenshot" >&2; exit 1; }
echo "browser_test: passed; screenshot in $out/dashboard.png"
