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
if grep -q FAILED "$dir/out.txt"; then exit 1; fi  # (`! grep` would not stop set -e)
grep -q '"checks_passed": true' "$dir/b.json"
grep -q '"mode": "broker"' "$dir/b.json"
[ "$(grep -c '"jain_events_per_process"' "$dir/b.json")" -eq 2 ]

# Credentials in the URL (the fixture's server takes any): the password is never printed, neither
# on the console nor in --json (nor handed to the workers' command lines).
cred_url=$(echo "$url" | sed 's#nats://#nats://bench:pl4nted-pw@#')
# One consumer working 3 ms per event: the worker runs for about a second, long enough to be seen.
"$bin" --broker "$cred_url" --processes 1 --consumers 1 --events 300 --work const:3ms \
  --json "$dir/c.json" >"$dir/cred.txt" 2>&1 &
bench=$!
workers_seen=0
while kill -0 "$bench" 2>/dev/null; do  # the workers' command lines, while they run
  for cmdline in /proc/[0-9]*/cmdline; do
    args=$(tr '\0' ' ' <"$cmdline" 2>/dev/null) || continue
    case "$args" in
      *--broker-worker*pl4nted-pw*) echo "a worker's command line holds the password" >&2; exit 1 ;;
      *--broker-worker*) workers_seen=$((workers_seen + 1)) ;;
    esac
  done
  sleep 0.02
done
wait "$bench"
[ "$workers_seen" -gt 0 ]
grep -q 'lost 0' "$dir/cred.txt"
if grep -q 'pl4nted-pw' "$dir/cred.txt" "$dir/c.json"; then echo "the password leaked" >&2; exit 1; fi
grep -q '"broker": "nats://bench:\*\*\*@127.0.0.1:' "$dir/c.json"
grep -q -- '--broker nats://bench:\*\*\*@127.0.0.1:' "$dir/c.json"

# Open loop at a fixed rate.
"$bin" --broker "$url" --processes 2 --events 200 --rate 2000 --work const:0 >"$dir/rate.txt"
grep -q 'published at' "$dir/rate.txt"
grep -q 'lost 0' "$dir/rate.txt"
echo ok
