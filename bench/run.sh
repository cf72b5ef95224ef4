#!/usr/bin/env bash
# bench/run.sh - fieldsync benchmarks side by side with their references, on 127.0.0.1.
#   bash bench/run.sh [routes|ingest|push|replay|upload|console|all]   (env: SECS=10 RUNS=3)
#   PERF=1 with push: a call-graph profile of the service per run (bench/README.md).
# Installs nginx-light, wrk and PostgreSQL from Debian if missing, builds the release binary,
# and prints RESULT lines. See bench/README.md for what each figure means and the targets.
set -euo pipefail
cd "$(dirname "$0")/.."
WHAT=${1:-all}; SECS=${SECS:-10}; RUNS=${RUNS:-3}
W=/tmp/fieldsync-bench; SIM_PORT=18090; APP_PORT=18081; NGX_PORT=18082; PG_PORT=15433
[ "$(type -P nginx wrk pg_config | wc -l)" = 3 ] || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nginx-light wrk postgresql postgresql-contrib; }
cargo build --release -q
cargo bench --bench load --no-run -q 2>/dev/null
LOAD=$(ls -t target/release/deps/load-* | grep -v '\.d$' | head -1)
# BIN=/path/to/another/fieldsync runs the same recipe against another build (A/B in one session).
BIN=${BIN:-target/release/fieldsync}

PIDS=()
cleanup() { for p in "${PIDS[@]:-}"; do [ -n "$p" ] && kill "$p" 2>/dev/null || true; done
  [ -s "$W/nginx.pid" ] && kill -QUIT "$(cat "$W/nginx.pid")" 2>/dev/null || true
  [ -s "$W/pg/postmaster.pid" ] && runuser -u postgres -- "$(pg_config --bindir)/pg_ctl" -D "$W/pg" -m fast stop >/dev/null 2>&1 || true; }
trap cleanup EXIT
rm -rf "$W"; mkdir -p "$W/www" "$W/tmp"
stats() { sort -g | awk '{a[NR]=$1} END{printf "%s (min %s max %s)", a[int((NR+1)/2)], a[1], a[NR]}'; }
wait_http() { for _ in $(seq 200); do curl -sf -o /dev/null "$1" && return 0; sleep 0.1; done; echo "no answer from $1" >&2; return 1; }

# One simulator and one service, on a tenant of 1000 technicians with 25 stops each.
start_stack() { # $1 = replay enabled (true|false)
  "$LOAD" seed --resources 1000 --stops 25 > "$W/seed.json"
  "$BIN" ofsc-sim --listen 127.0.0.1:$SIM_PORT --seed "$W/seed.json" --workers 1 2>"$W/sim.log" & PIDS+=($!)
  wait_http "http://127.0.0.1:$SIM_PORT/__sim/ledger"
  rm -rf "$W/data"
  echo bench-pass | "$BIN" users --data-dir "$W/data" add --username bench --name Bench --role supervisor --parent bench-org >/dev/null
  # The load clients read every route of the tenant up front (one supervisor, 1000 routes in
  # seconds): exactly what the per-user budget of OFSC reads refuses, so it is off here.
  FIELDSYNC__CACHE__FETCHES_PER_MINUTE=0 \
  FIELDSYNC__REPLAY__ENABLED=$1 FIELDSYNC__REPLAY__MAX_LANES=64 FIELDSYNC__AUTH__ACCESS_TTL_SECS=7200 RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:$APP_PORT --data-dir "$W/data" --ofsc-url http://127.0.0.1:$SIM_PORT 2>"$W/app.log" & APP=$!; PIDS+=($APP)
  wait_http "http://127.0.0.1:$APP_PORT/readyz"
  TOKEN=$(curl -sf -H 'content-type: application/json' -d '{"username":"bench","password":"bench-pass","deviceId":"bench"}' \
    http://127.0.0.1:$APP_PORT/sessions | python3 -c 'import json,sys; print(json.load(sys.stdin)["accessToken"])')
  DATE=$(TZ=America/New_York date +%F)
}
stop_stack() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; wait 2>/dev/null || true; PIDS=(); }
rss_mib() { awk '/VmRSS/{printf "%.1f", $2/1024}' "/proc/$1/status"; }
wrk_once() { # $1 = url, rest = wrk args ; prints "rps p99_ms"
  wrk -t2 -c64 -d"${SECS}s" --latency "${@:2}" "$1" | awk '
    function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +99%/ {p99=ms($2)} /^Requests\/sec/ {rps=$2} /Non-2xx/ {bad=1}
    END {printf "%.0f %.3f%s\n", rps, p99, (bad ? " NON2XX" : "")}'; }

bench_routes() {
  start_stack false
  "$LOAD" warm --url http://127.0.0.1:$APP_PORT --token "$TOKEN" --date "$DATE" --resources 1000
  echo "RESULT fieldsync_rss_after_1000_cached_routes_mib=$(rss_mib "$APP")"
  URL="http://127.0.0.1:$APP_PORT/routes/$DATE?resourceId=b0007"
  curl -sf -H "Authorization: Bearer $TOKEN" "$URL" > "$W/www/route.json"
  echo "# route body: $(wc -c < "$W/www/route.json") bytes, $(python3 -c 'import json,sys; print(len(json.load(open(sys.argv[1]))["stops"]))' "$W/www/route.json") stops"
  cat > "$W/nginx.conf" <<NGX
worker_processes 1; pid $W/nginx.pid; error_log $W/nginx-error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_requests 1000000;
  default_type application/json; client_body_temp_path $W/tmp/b; proxy_temp_path $W/tmp/p; fastcgi_temp_path $W/tmp/f;
  uwsgi_temp_path $W/tmp/u; scgi_temp_path $W/tmp/s;
  server { listen 127.0.0.1:$NGX_PORT; root $W/www; } }
NGX
  nginx -e "$W/nginx-error.log" -p "$W" -c "$W/nginx.conf"
  wrk -t2 -c64 -d2s "http://127.0.0.1:$NGX_PORT/route.json" > /dev/null
  wrk -t2 -c64 -d2s -H "Authorization: Bearer $TOKEN" "$URL" > /dev/null
  : > "$W/ngx.runs"; : > "$W/app.runs"
  for _ in $(seq "$RUNS"); do
    wrk_once "http://127.0.0.1:$NGX_PORT/route.json" >> "$W/ngx.runs"
    wrk_once "$URL" -H "Authorization: Bearer $TOKEN" >> "$W/app.runs"
  done
  echo "RESULT nginx_static_route c=64: req/s=$(cut -d' ' -f1 "$W/ngx.runs" | stats) p99_ms=$(cut -d' ' -f2 "$W/ngx.runs" | stats)"
  echo "RESULT fieldsync_get_route c=64: req/s=$(cut -d' ' -f1 "$W/app.runs" | stats) p99_ms=$(cut -d' ' -f2 "$W/app.runs" | stats) $(grep -c NON2XX "$W/app.runs" || true) runs_with_non2xx"
  echo "RESULT fieldsync_rss_after_wrk_mib=$(rss_mib "$APP")"
  kill -QUIT "$(cat "$W/nginx.pid")"; rm -f "$W/nginx.pid"
  stop_stack
}

bench_ingest() {
  start_stack false
  for _ in $(seq "$RUNS"); do
    "$LOAD" ingest --url http://127.0.0.1:$APP_PORT --token "$TOKEN" --date "$DATE" --clients 32 --secs "$SECS" --resources 960
  done
  stop_stack
  # PostgreSQL: a transactional outbox, one ~500-byte JSON row per transaction, synchronous_commit=on.
  PGBIN=$(pg_config --bindir); mkdir -p "$W/pg"; chown postgres: "$W" "$W/pg"
  runuser -u postgres -- "$PGBIN/initdb" -D "$W/pg" -A trust -U postgres -E UTF8 --no-sync > "$W/initdb.log"
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg" -l "$W/pg.log" -w start -o \
    "-c listen_addresses=127.0.0.1 -p $PG_PORT -c unix_socket_directories=$W -c fsync=on -c max_connections=80" > /dev/null
  export PGHOST=127.0.0.1 PGPORT=$PG_PORT PGUSER=postgres PGDATABASE=postgres PGOPTIONS="-c synchronous_commit=on"
  psql -qX -c "CREATE TABLE outbox (id bigserial PRIMARY KEY, created_at timestamptz NOT NULL DEFAULT now(), topic text NOT NULL, payload jsonb NOT NULL)"
  cat > "$W/insert.sql" <<'SQL'
\set uid random(1, 10000000)
INSERT INTO outbox (topic, payload) VALUES ('activity.status', ('{"activityId":' || :uid || ',"status":"enroute","time":"2026-11-27T12:00:00-05:00","location":{"lat":40.7,"lng":-74.3,"accuracy":8},"deviceId":"phone-1","user":"tech1","idempotencyKey":"7f3c2a9e-5b1d-4c8e-9a6f-2d4b8e1c0a77","notes":"Gate code 1234; dog in the yard, ring twice and wait for the owner please."}')::jsonb)
SQL
  for _ in $(seq "$RUNS"); do
    pgbench -n -M prepared -c 32 -j 2 -T "$SECS" -r -f "$W/insert.sql" > "$W/pgbench.out" 2>&1
    awk -v secs="$SECS" '/^tps =/{t=$3} /^latency average/{l=$4} END{printf "RESULT pg_outbox_insert synchronous_commit=on clients=32: tps=%.0f avg_latency_ms=%s\n", t, l}' "$W/pgbench.out"
  done
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$W/pg" -m fast stop > /dev/null
}

bench_push() {
  # Replay off, like ingest: what is measured is accepting durably. Then replay on, as in
  # production, where the replayer shares the 2 cores with the pushes.
  for replay in false true; do
    start_stack $replay
    echo "# sync push with replay $( [ $replay = true ] && echo on || echo off )"
    for _ in $(seq "$RUNS"); do
      # PERF=1: a call-graph profile of the service over the run's middle (bench/README.md).
      PERF_PID=
      if [ -n "${PERF:-}" ]; then
        (sleep 4; perf record -F 199 --call-graph dwarf,16384 -p "$APP" -o "$W/push-replay-$replay.perf" -- sleep $((SECS - 6)) >/dev/null 2>&1) & PERF_PID=$!
      fi
      "$LOAD" push --url http://127.0.0.1:$APP_PORT --date "$DATE" --clients 16 --batch 100 --secs "$SECS" --resources 960
      [ -z "$PERF_PID" ] || wait "$PERF_PID"
    done
    stop_stack
  done
}

bench_replay() {
  start_stack false
  "$LOAD" enqueue --url http://127.0.0.1:$APP_PORT --token "$TOKEN" --date "$DATE" --resources 200 --per-route 50
  kill "$APP"; wait "$APP" 2>/dev/null || true
  FIELDSYNC__CACHE__FETCHES_PER_MINUTE=0 \
  FIELDSYNC__REPLAY__ENABLED=true FIELDSYNC__REPLAY__MAX_LANES=64 FIELDSYNC__AUTH__ACCESS_TTL_SECS=7200 RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:$APP_PORT --data-dir "$W/data" --ofsc-url http://127.0.0.1:$SIM_PORT 2>>"$W/app.log" & APP=$!; PIDS+=($APP)
  wait_http "http://127.0.0.1:$APP_PORT/healthz"
  "$LOAD" drain --url http://127.0.0.1:$APP_PORT --token "$TOKEN"
  "$LOAD" steady --url http://127.0.0.1:$APP_PORT --token "$TOKEN" --date "$DATE" --resources 200 --offset 200 --rate 200 --secs "$SECS"
  echo "# simulator ledger entries: $(curl -sf http://127.0.0.1:$SIM_PORT/__sim/ledger | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')"
  stop_stack
}

bench_upload() {
  # (a) the disk's ceiling: 8 writers, each writing 5 MiB files with write + fdatasync.
  cat > "$W/fsync.py" <<'PY'
import os, sys, time
d, secs, i = sys.argv[1], float(sys.argv[2]), sys.argv[3]
buf = os.urandom(5 << 20); n = 0; t0 = time.perf_counter()
while time.perf_counter() - t0 < secs:
    p = os.path.join(d, f"{i}-{n}.bin"); fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    os.write(fd, buf); os.fdatasync(fd); os.close(fd); os.unlink(p); n += 1
print(n * len(buf) / (time.perf_counter() - t0) / 1e6)
PY
  mkdir -p "$W/fsync"
  # (b) a real peer: @tus/server with its file store, from npm.
  if [ ! -d "$W/../fieldsync-tusd/node_modules/@tus/server" ]; then
    mkdir -p "$W/../fieldsync-tusd" && (cd "$W/../fieldsync-tusd" && npm install --silent @tus/server @tus/file-store >/dev/null)
  fi
  cat > "$W/../fieldsync-tusd/server.mjs" <<'JS'
import { Server } from '@tus/server'
import { FileStore } from '@tus/file-store'
const server = new Server({ path: '/files', datastore: new FileStore({ directory: process.argv[2] }) })
server.listen({ host: '127.0.0.1', port: Number(process.argv[3]) })
JS
  # Replay off: the upload path is measured, not the downscale for OFSC that follows.
  start_stack false
  echo "# fieldsync RSS before the uploads: $(rss_mib "$APP") MiB"
  for _ in $(seq "$RUNS"); do
    : > "$W/fsync.runs"
    WRITERS=()
    for i in $(seq 8); do python3 "$W/fsync.py" "$W/fsync" "$SECS" "$i" >> "$W/fsync.runs" & WRITERS+=($!); done
    wait "${WRITERS[@]}"
    echo "RESULT fdatasync_5MiB_files writers=8: MB/s=$(awk '{s+=$1} END{printf "%.1f", s}' "$W/fsync.runs")"
    "$LOAD" upload --url http://127.0.0.1:$APP_PORT --target fieldsync --token "$TOKEN" --date "$DATE" --devices 8 --secs "$SECS" --mib 5
  done
  echo "RESULT fieldsync_peak_rss_mib=$(awk '/VmHWM/{printf "%.1f", $2/1024}' "/proc/$APP/status")"
  stop_stack
  rm -rf "$W/tusfiles"; mkdir -p "$W/tusfiles"
  node "$W/../fieldsync-tusd/server.mjs" "$W/tusfiles" 18095 2>"$W/tusd.log" & PIDS+=($!)
  sleep 1
  for _ in $(seq "$RUNS"); do
    "$LOAD" upload --url http://127.0.0.1:18095 --target tus --devices 8 --secs "$SECS" --mib 5
    rm -rf "$W/tusfiles"/*
  done
  stop_stack
}

bench_console() {
  # 1,000 pending approvals, then the console's inbox (first page) and one approval page,
  # at low concurrency (latency, not throughput), beside nginx serving the same inbox bytes.
  start_stack false
  "$LOAD" approvals --url http://127.0.0.1:$APP_PORT --token "$TOKEN" --date "$DATE" --resources 1000
  COOKIE=$(curl -s -o /dev/null -D - -d 'username=bench&password=bench-pass' http://127.0.0.1:$APP_PORT/console/login \
    | tr -d '\r' | awk '/^set-cookie: fs_console=/{sub(/^set-cookie: /, ""); sub(/;.*/, ""); print}')
  INBOX="http://127.0.0.1:$APP_PORT/console/approvals"
  APR=$(curl -sf -H "Authorization: Bearer $TOKEN" "http://127.0.0.1:$APP_PORT/approvals?status=pending&limit=1" \
    | python3 -c 'import json,sys; print(json.load(sys.stdin)["items"][0]["approvalId"])')
  PAGE="http://127.0.0.1:$APP_PORT/console/approvals/$APR"
  curl -sf -H "Cookie: $COOKIE" "$INBOX" > "$W/www/inbox.html"
  echo "# inbox page: $(wc -c < "$W/www/inbox.html") bytes, pending count $(grep -o 'id="pending-count"[^>]*>[0-9]*' "$W/www/inbox.html" | grep -o '[0-9]*$')"
  cat > "$W/nginx.conf" <<NGX
worker_processes 1; pid $W/nginx.pid; error_log $W/nginx-error.log warn;
events { worker_connections 4096; }
http { access_log off; sendfile on; tcp_nodelay on; keepalive_requests 1000000; default_type text/html;
  client_body_temp_path $W/tmp/b; proxy_temp_path $W/tmp/p; fastcgi_temp_path $W/tmp/f;
  uwsgi_temp_path $W/tmp/u; scgi_temp_path $W/tmp/s;
  server { listen 127.0.0.1:$NGX_PORT; root $W/www; } }
NGX
  nginx -e "$W/nginx-error.log" -p "$W" -c "$W/nginx.conf"
  lat() { wrk -t1 -c4 -d"${SECS}s" --latency "${@:2}" "$1" | awk '
    function ms(v){ if (v ~ /us$/) return v/1000; if (v ~ /ms$/) return v+0; if (v ~ /s$/) return v*1000; return v }
    /^ +50%/ {p50=ms($2)} /^ +99%/ {p99=ms($2)} /^Requests\/sec/ {rps=$2} /Non-2xx/ {bad=1}
    END {printf "%.0f %.3f %.3f%s\n", rps, p50, p99, (bad ? " NON2XX" : "")}'; }
  wrk -t1 -c4 -d2s -H "Cookie: $COOKIE" "$INBOX" > /dev/null
  : > "$W/ngx.runs"; : > "$W/inbox.runs"; : > "$W/page.runs"
  for _ in $(seq "$RUNS"); do
    lat "http://127.0.0.1:$NGX_PORT/inbox.html" >> "$W/ngx.runs"
    lat "$INBOX" -H "Cookie: $COOKIE" >> "$W/inbox.runs"
    lat "$PAGE" -H "Cookie: $COOKIE" >> "$W/page.runs"
  done
  for f in ngx:nginx_static_inbox inbox:fieldsync_console_inbox page:fieldsync_console_approval; do
    echo "RESULT ${f#*:} c=4: req/s=$(cut -d' ' -f1 "$W/${f%%:*}.runs" | stats) p50_ms=$(cut -d' ' -f2 "$W/${f%%:*}.runs" | stats) p99_ms=$(cut -d' ' -f3 "$W/${f%%:*}.runs" | stats) $(grep -c NON2XX "$W/${f%%:*}.runs" || true) runs_with_non2xx"
  done
  kill -QUIT "$(cat "$W/nginx.pid")"; rm -f "$W/nginx.pid"
  stop_stack
}

echo "# $(date -u +%FT%TZ) $(nproc) CPUs, SECS=$SECS RUNS=$RUNS, client and servers share the machine"
case "$WHAT" in
  routes) bench_routes ;; ingest) bench_ingest ;; push) bench_push ;; replay) bench_replay ;;
  upload) bench_upload ;; console) bench_console ;;
  all) bench_routes; bench_ingest; bench_push; bench_replay; bench_upload ;;
  *) echo "usage: bash bench/run.sh [routes|ingest|push|replay|all]" >&2; exit 2 ;;
esac
