#!/usr/bin/env bash
# short_run.sh BINARY: short pushstage-bench runs of every implementation that must pass their
# invariants (each event handled exactly once; a batch within Graham's bound) and write what they
# promise. Asserts counts and structure only, never speed.
set -eu
bin=$1
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
impls=pushstage,pushstage-lifo,moodycamel-blocking,mutex,tbb,moodycamel-spin,moodycamel-notoken

# Open loop, skewed producers, JSON and SVG.
"$bin" --impl "$impls" --events 400 --producers 3 --producer-weights 4,1,1 --consumers 2 \
  --work exp:50us --work-mode sleep --rate 4000 --reps 2 --json "$dir/r.json" --svg "$dir/r.svg" \
  >"$dir/out.txt"
grep -q '"checks_passed": true' "$dir/r.json"
[ "$(grep -c '"impl": "' "$dir/r.json")" -ge 7 ]
grep -q '<svg' "$dir/r.svg" && grep -q '</svg>' "$dir/r.svg"
grep -q 'exactly once' "$dir/out.txt"
! grep -q FAILED "$dir/out.txt"

# A batch: makespan against the bound. Sleep work of milliseconds, so that the bound's slack (5% of
# about 200 ms, plus 2 ms) absorbs a consumer descheduled between events on a busy machine.
"$bin" --impl "$impls" --batch --events 200 --consumers 2 --work uniform:1ms:3ms \
  --work-mode sleep --reps 1 >"$dir/batch.txt"
grep -q 'makespan / Graham bound' "$dir/batch.txt"

# Closed loop with max-demand > 1.
"$bin" --impl "$impls" --rate 0 --events 5000 --producers 2 --consumers 3 --max-demand 8 \
  --work const:0 --work-mode spin --reps 1 >/dev/null

# pushstage's pipelines, dispatch modes and Pipeline front through the same harness (a broadcast:
# every consumer handles every event once; the front: every message acknowledged as handled once),
# closed loop and batch (with the batch's slack, as above; the partition's makespan is not held to
# Graham's bound: it is not work-conserving).
modes=pushstage-pipeline2,pushstage-pipeline3,pushstage-partition,pushstage-keyed,pushstage-broadcast
modes=$modes,pushstage-pipeline-front
"$bin" --impl "$modes" --rate 0 --events 3000 --consumers 2 --max-demand 4 --work const:0 \
  --work-mode spin --reps 1 >"$dir/modes.txt"
# One table per case of the default scenario: seed (pinned) and seed-unpinned.
[ "$(grep -c '^exactly once *ok *ok *ok *ok *ok *ok *$' "$dir/modes.txt")" -eq 2 ]
"$bin" --impl "$modes" --batch --events 200 --consumers 2 --work uniform:1ms:3ms \
  --work-mode sleep --reps 1 >/dev/null

# --trace: one line per handled event, each event exactly once per implementation.
"$bin" --impl pushstage,mutex --events 50 --consumers 2 --work const:10us --rate 20000 \
  --work-mode spin --reps 1 --no-pin --trace >"$dir/trace.txt"
[ "$(grep -c '^\[pushstage rep 1\] consumer [0-9]* received event' "$dir/trace.txt")" -eq 50 ]
[ "$(grep -c '^\[mutex rep 1\] consumer [0-9]* received event' "$dir/trace.txt")" -eq 50 ]
[ "$(grep '^\[pushstage rep 1\]' "$dir/trace.txt" | sed 's/.*received event \([0-9]*\) .*/\1/' |
  sort -u | wc -l)" -eq 50 ]
# The default scenario runs pinned and unpinned, --no-pin keeps the unpinned case only, and
# --pin-to cache-domain says so in the pinned case's line and JSON.
"$bin" --impl mutex --events 40 --reps 1 --pin-to cache-domain --json "$dir/pin.json" >"$dir/pin.txt"
grep -q '^== seed: 3 consumers (pinned to cache domains)' "$dir/pin.txt"
grep -q '^== seed-unpinned: 3 consumers (unpinned)' "$dir/pin.txt"
grep -q '"pin_to": "cache-domain"' "$dir/pin.json" && grep -q '"pin_to": "none"' "$dir/pin.json"
"$bin" --impl mutex --events 40 --reps 1 --no-pin >"$dir/nopin.txt"
[ "$(grep -c '^== seed' "$dir/nopin.txt")" -eq 1 ] && grep -q '^== seed-unpinned' "$dir/nopin.txt"
! "$bin" --pin-to core >/dev/null 2>"$dir/err.txt"
grep -q -- "--pin-to: expects cpu or cache-domain; got 'core'" "$dir/err.txt"
echo ok
