#!/usr/bin/env bash
# History retention without a rewrite: rounds of "load OPS applied ops, prune everything,
# run the service idle for IDLE seconds" on one directory, printing its size on disk and the
# service's RSS each round. sled 0.34 never shrinks its file, but its cleaner (in the log
# flusher of a running service) moves the live pages out of mostly-free segments, which
# later writes then reuse (bench/README.md, "History retention while the service runs").
#   bash bench/retention.sh          (env: OPS=300000 ROUNDS=5 IDLE=300 KEEP=1)
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${OPS:-300000}; ROUNDS=${ROUNDS:-5}; IDLE=${IDLE:-300}
cargo build --release -q
BIN=target/release/fieldsync
W=$(mktemp -d); chmod 700 "$W"
DIR=$W/data
PORT=${PORT:-18557}
mib() { echo "$(( $(du -sk "$DIR" | cut -f1) / 1024 )) MiB"; }

# Serves (replay off) for IDLE seconds; prints RSS at /readyz and at the end.
serve_idle() {
  local pid r0
  FIELDSYNC__REPLAY__ENABLED=false "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR" 2>"$W/serve.log" & pid=$!
  until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do
    kill -0 $pid 2>/dev/null || { echo "serve exited:"; tail -3 "$W/serve.log"; exit 1; }
    sleep 0.05
  done
  r0=$(awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status)
  sleep "$IDLE"
  echo "RSS at /readyz $r0 MiB, after ${IDLE} s $(awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status) MiB"
  kill -TERM $pid; wait $pid 2>/dev/null || true
}

for round in $(seq 1 "$ROUNDS"); do
  before=$(du -sk "$DIR" 2>/dev/null | cut -f1 || echo 0)
  "$BIN" load --data-dir "$DIR" --ops "$OPS" --batch 100 --routes 1000 \
    --date "2026-$(printf %02d "$round")-01" --applied >/dev/null
  echo "round $round: loaded, $(mib) on disk (+$(( ($(du -sk "$DIR" | cut -f1) - ${before:-0}) / 1024 )) MiB)"
  "$BIN" prune --data-dir "$DIR" --older-than-days 0 >/dev/null
  echo "round $round: pruned, $(mib); $(serve_idle); then $(mib)"
done
"$BIN" check --data-dir "$DIR" | tail -1
[ -n "${KEEP:-}" ] || rm -rf "$W"
