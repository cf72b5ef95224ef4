#!/usr/bin/env bash
# History retention with a million ops of history, twice: the store's disk and the service's
# RSS after `fieldsync prune`, and after `fieldsync rewrite` (bench/README.md, "History
# retention").
#   bash bench/history.sh            (env: OPS=1000000 KEEP=1)
set -euo pipefail
cd "$(dirname "$0")/.."
OPS=${OPS:-1000000}
cargo build --release -q
BIN=target/release/fieldsync
W=$(mktemp -d); chmod 700 "$W"
DIR=$W/data
PORT=${PORT:-18556}

# RSS of a start at /readyz (replay off), stopped cleanly.
rss_at_start() {
  local pid
  FIELDSYNC__REPLAY__ENABLED=false "$BIN" serve --listen 127.0.0.1:$PORT --data-dir "$DIR" 2>"$W/serve.log" & pid=$!
  until curl -sf http://127.0.0.1:$PORT/readyz >/dev/null; do
    kill -0 $pid 2>/dev/null || { echo "serve exited:"; tail -3 "$W/serve.log"; exit 1; }
    sleep 0.05
  done
  awk '/VmRSS/{print int($2/1024)}' /proc/$pid/status
  kill -TERM $pid; wait $pid 2>/dev/null || true
}

for round in 1 2; do
  /usr/bin/time -f "round $round load: %e s" "$BIN" load --data-dir "$DIR" --ops "$OPS" --batch 100 \
    --routes 1000 --date "2026-0$round-01" --applied
  echo "round $round: $(du -sh "$DIR" | cut -f1) on disk, RSS at /readyz $(rss_at_start) MiB (history kept)"
  /usr/bin/time -f "round $round prune: %e s, peak RSS %M KiB" "$BIN" prune --data-dir "$DIR" --older-than-days 0
  echo "round $round: $(du -sh "$DIR" | cut -f1) on disk, RSS at /readyz $(rss_at_start) MiB (pruned)"
  # sled 0.34 keeps the space of removed records; a rewrite leaves it behind.
  /usr/bin/time -f "round $round rewrite: %e s, peak RSS %M KiB" "$BIN" rewrite --data-dir "$DIR" --to "$DIR.new"
  rm -rf "$DIR"; mv "$DIR.new" "$DIR"
  echo "round $round: $(du -sh "$DIR" | cut -f1) on disk, RSS at /readyz $(rss_at_start) MiB (rewritten)"
done
"$BIN" check --data-dir "$DIR" | tail -1
[ -n "${KEEP:-}" ] || rm -rf "$W"
