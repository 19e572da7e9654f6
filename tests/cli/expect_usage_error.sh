#!/usr/bin/env bash
# expect_usage_error.sh BINARY PATTERN ARGS...: runs BINARY ARGS and passes when it rejects them
# as bad input: exit status 2, exactly one line on stderr that matches the extended regular
# expression PATTERN, nothing on stdout (nothing was run).
set -u
bin=$1
pattern=$2
shift 2
out=$(mktemp)
err=$(mktemp)
trap 'rm -f "$out" "$err"' EXIT
"$bin" "$@" >"$out" 2>"$err"
status=$?
fail() {
  echo "FAIL: $bin $*" >&2
  echo "  $1" >&2
  echo "  status $status; stderr: $(cat "$err"); stdout: $(head -c 300 "$out")" >&2
  exit 1
}
[ "$status" -eq 2 ] || fail "expected exit status 2" "$@"
[ "$(wc -l <"$err")" -eq 1 ] || fail "expected exactly one line on stderr" "$@"
grep -Eq -- "$pattern" "$err" || fail "stderr does not match: $pattern" "$@"
[ ! -s "$out" ] || fail "expected nothing on stdout (nothing run)" "$@"
echo "ok: $(cat "$err")"
