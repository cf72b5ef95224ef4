#!/usr/bin/env bash
# A million queued ops in the journal: start-up time to /readyz, RSS, and `fieldsync check`,
# after a clean stop and after a crash (bench/README.md, "A million ops").
#   bash bench/million.sh            (env: OPS=1000000 DIR=<reuse a loaded data dir>)
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${OPS:-1000000}
cargo build --release -q
BIN=target/release/fieldsync
W=$(mktemp -d); chmod 700 "$W"
DIR=${DIR:-}
if [ -z "$DIR" ]; then
  DIR=$W/data
  /usr/bin/time -f "load: %e s, peak RSS %M KiB" "$BIN" load --data-dir "$DIR" --ops "$OPS" --batch 100 --routes 1000
  du -sh "$DIR"
fi
PORT=${PORT:-18555}

# One start: time to /readyz, RSS then and 10 s later, how the op counts were had. $1: how
# to stop it (TERM: a clean stop; KILL: a crash). Replay off, so the backlog stays as it is.
start() {
  local t0 pid ready rss rss10
  t0=$(date +%s.%N)
  FIELDSYNC__REPLAY__ENABLED=false RUST_LOG=info \
    "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR" 2>"$W/serve.log" & pid=$!
  until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do
    kill -0 $pid 2>/dev/null || { echo "serve exited:"; tail -3 "$W/serve.log"; exit 1; }
    sleep 0.05
  done
  ready=$(echo "$(date +%s.%N) - $t0" | bc)
  rss=$(awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status)
  sleep 10
  rss10=$(awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status)
  kill -"$1" $pid; wait $pid 2>/dev/null || true
  printf '%-28s readyz %5.2f s   RSS %4d MiB, 10 s later %4d MiB   (%s)\n' \
    "$2" "$ready" "$rss" "$rss10" "$(grep -o 'counted=[A-Za-z]*' "$W/serve.log")"
}

start TERM "start after load"
start TERM "start after a clean stop"
start KILL "start after a clean stop"
start TERM "start after a crash"
# A load of another day's ops killed mid-way: the journal has records past the last
# checkpoint (load checkpoints as the service does, at 20,000 waiting index keys), which the
# start applies again.
timeout -s KILL "${TAIL_SECS:-4}" "$BIN" load --data-dir "$DIR" --ops 200000 --batch 100 \
  --routes 1000 --date 2020-01-01 >/dev/null 2>&1 || true
# A killed process's file lock can outlive it for a moment, and the start would be refused.
sleep 2
start TERM "start after a killed load"
/usr/bin/time -f "check: %e s, peak RSS %M KiB" "$BIN" check --data-dir "$DIR" | tail -1
[ -n "${KEEP:-}" ] || rm -rf "$W"
