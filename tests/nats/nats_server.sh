#!/usr/bin/env bash
# nats_server.sh: the nats_server ctest fixture: one nats-server with JetStream for the NATS tests.
#   nats_server.sh start NATS_SERVER DIR   starts it on 127.0.0.1, a free port, a store under DIR;
#                                          writes DIR/url (nats://127.0.0.1:PORT) and DIR/pid
#   nats_server.sh start-config NATS_SERVER CONFIG DIR
#                                          starts one configured by CONFIG (which must listen on
#                                          127.0.0.1:-1, and may have `http: 127.0.0.1:-1`); writes
#                                          DIR/url (nats:// or tls://), DIR/monitor (http://, when
#                                          monitored) and DIR/pid (nats_secure.sh uses this)
#   nats_server.sh stop DIR                stops it by its PID, removes DIR
# The server must never outlive the test run: ctest runs `stop` as the fixture's cleanup even when
# tests fail, and a watchdog started here kills the server within a second of ctest itself going
# away (killed, or interrupted before the cleanup ran). The watchdog watches $PUSHSTAGE_NATS_OWNER
# (a PID; default: the caller of this script, which is ctest when ctest runs it).
set -euo pipefail

# True while process $1 runs (a zombie, killed but not yet reaped, counts as gone).
alive() {
  local stat
  stat=$(cat "/proc/$1/stat" 2>/dev/null) || return 1
  stat=${stat##*) }
  [[ "${stat%% *}" != Z ]]
}

# Removes what an earlier, interrupted run left in DIR (its server too).
fresh() {
  local dir=$1
  if [[ -f "$dir/pid" ]] && kill -0 "$(cat "$dir/pid")" 2>/dev/null; then
    kill "$(cat "$dir/pid")" 2>/dev/null || true  # a leftover from an interrupted run
  fi
  rm -rf "$dir"
  mkdir -p "$dir/store" "$dir/ports"
}

start() {
  local server=$1 dir=$2
  fresh "$dir"
  # -p -1: the server picks a free port and writes it to the ports file (no race with a port we
  # probed and released).
  "$server" -a 127.0.0.1 -p -1 -js -sd "$dir/store" --ports_file_dir "$dir/ports" \
    -l "$dir/server.log" </dev/null >/dev/null 2>&1 &
  watch_and_wait "$!" "$dir"
}

start_config() {
  local server=$1 config=$2 dir=$3
  mkdir -p "$dir/ports"
  "$server" -c "$config" --ports_file_dir "$dir/ports" -l "$dir/server.log" \
    </dev/null >/dev/null 2>&1 &
  watch_and_wait "$!" "$dir"
}

# Records the server's PID, starts its watchdog and waits for the ports file.
watch_and_wait() {
  local pid=$1 dir=$2
  echo "$pid" >"$dir/pid"
  local ctest_pid=${PUSHSTAGE_NATS_OWNER:-$PPID}
  # The watchdog: detached from ctest's pipes (or ctest would wait for it), dies with the server.
  (
    trap '' HUP
    while alive "$pid"; do
      if ! alive "$ctest_pid"; then
        kill "$pid" 2>/dev/null || true
        sleep 2
        kill -9 "$pid" 2>/dev/null || true
        break
      fi
      sleep 1
    done
  ) </dev/null >/dev/null 2>&1 &
  echo $! >"$dir/watchdog.pid"
  for _ in $(seq 1 500); do
    local ports
    ports=$(cat "$dir"/ports/*.ports 2>/dev/null || true)
    if [[ "$ports" =~ ((nats|tls)://127\.0\.0\.1:[0-9]+) ]]; then
      echo "${BASH_REMATCH[1]}" >"$dir/url"
      if [[ "$ports" =~ (http://127\.0\.0\.1:[0-9]+) ]]; then
        echo "${BASH_REMATCH[1]}" >"$dir/monitor"
      fi
      echo "nats-server $pid (store $dir/store) listening on $(cat "$dir/url")"
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "nats-server exited at start; its log:" >&2
      cat "$dir/server.log" >&2 || true
      exit 1
    fi
    sleep 0.02
  done
  echo "nats-server did not report its port within 10 s; its log:" >&2
  cat "$dir/server.log" >&2 || true
  kill "$pid" 2>/dev/null || true
  exit 1
}

stop() {
  local dir=$1
  [[ -f "$dir/pid" ]] || { echo "no server to stop in $dir"; return 0; }
  local pid
  pid=$(cat "$dir/pid")
  if kill "$pid" 2>/dev/null; then
    # alive(), not kill -0: the server is not our child, and a zombie nobody has reaped yet
    # (init may take its time) has exited.
    for _ in $(seq 1 100); do
      alive "$pid" || break
      sleep 0.05
    done
    if alive "$pid"; then
      kill -9 "$pid" 2>/dev/null || true
      echo "nats-server $pid did not stop on SIGTERM within 5 s; killed" >&2
    fi
  fi
  [[ -f "$dir/watchdog.pid" ]] && kill "$(cat "$dir/watchdog.pid")" 2>/dev/null || true
  echo "nats-server $pid stopped"
  rm -rf "$dir"
}

case "${1:-}" in
  start) start "$2" "$3" ;;
  start-config) start_config "$2" "$3" "$4" ;;
  stop) stop "$2" ;;
  *)
    echo "usage: nats_server.sh start NATS_SERVER DIR | start-config NATS_SERVER CONFIG DIR |" \
      "stop DIR" >&2
    exit 2
    ;;
esac
