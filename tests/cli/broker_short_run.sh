#!/usr/bin/env bash
# broker_short_run.sh BINARY URL_FILE: pushstage-bench --broker against the nats_server fixture.
# Every event must reach some process (lost 0; duplicates are allowed by at-least-once and only
# counted), each case prints its per-process table and fairness line, --json has what it promises,
# and the exit status is 0. Asserts counts and structure only, never speed.
set -eu
bin=$1
url=$(cat "$2")
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT

"$bin" --broker "$url" --processes 1,2 --events 300 --consumers 2 --max-demand 2 \
  --work const:100us --json "$dir/b.json" >"$dir/out.txt"
cat "$dir/out.txt"
[ "$(grep -c 'lost 0, duplicates' "$dir/out.txt")" -eq 2 ]
grep -q '^2 processes x 2 consumers (max_demand 2)' "$dir/out.txt"
[ "$(grep -cE '^  [12] +[0-9]+ ' "$dir/out.txt")" -eq 3 ]   # one row per process: 1 + 2
grep -q 'scale-out' "$dir/out.txt"
! grep -q FAILED "$dir/out.txt"
grep -q '"checks_passed": true' "$dir/b.json"
grep -q '"mode": "broker"' "$dir/b.json"
[ "$(grep -c '"jain_events_per_process"' "$dir/b.json")" -eq 2 ]

# Open loop at a fixed rate.
"$bin" --broker "$url" --processes 2 --events 200 --rate 2000 --work const:0 >"$dir/rate.txt"
grep -q 'published at' "$dir/rate.txt"
grep -q 'lost 0' "$dir/rate.txt"
echo ok
