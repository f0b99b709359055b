#!/usr/bin/env bash
# End-to-end benchmark of the bot: `chatops serve` (release build) in its own process,
# `chatops loadtest` (release build) against it, sending signed /echo commands whose two
# answers come back to the generator's receiver. Loopback only; every run is bounded.
#
#   scripts/bench-bot.sh                          # embedded SQLite queue, durability full
#   ENGINE=nats scripts/bench-bot.sh              # NATS JetStream (a fresh nats-server -js)
#   DURABILITY=normal RATES="2000 4000" scripts/bench-bot.sh
#
# Part 1: a fixed rate (FIXED_RATE, default 1000/s) for DURATION seconds: ack and E2E
# percentiles. Part 2: a sweep over RATES, reporting two highest rates: "answered", every
# command acknowledged with 200 and both answers arrived (none lost, achieved rate within
# 2 % of the target); and "kept up", answered with the first answer's E2E p99 under
# 100 ms, i.e. no backlog growing during the run. Knobs: ENGINE, DURABILITY, FIXED_RATE, RATES, DURATION (s per
# run, default 20), GEN_THREADS (default 1), OUT (default target/bench-bot).
set -euo pipefail
cd "$(dirname "$0")/.."

ENGINE=${ENGINE:-sqlite}
DURABILITY=${DURABILITY:-full}
FIXED_RATE=${FIXED_RATE:-1000}
RATES=${RATES:-"1000 2000 3000 4000 5000 6000 8000"}
DURATION=${DURATION:-20}
GEN_THREADS=${GEN_THREADS:-1}
OUT=${OUT:-target/bench-bot}
mkdir -p "$OUT"

cargo build --release -q -p chatops
BIN=target/release/chatops
SECRET=bench-secret-$RANDOM$RANDOM
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

QUEUE_ARGS=()
if [ "$ENGINE" = nats ]; then
  NATS_PORT=$(free_port)
  NATS_DIR=$(mktemp -d)
  nats-server -js -a 127.0.0.1 -p "$NATS_PORT" -sd "$NATS_DIR" >"$OUT/nats.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 100); do (echo >/dev/tcp/127.0.0.1/"$NATS_PORT") 2>/dev/null && break; sleep 0.1; done
  QUEUE_ARGS=(--queue "nats://127.0.0.1:$NATS_PORT")
fi

cat >"$OUT/bot.toml" <<TOML
[limits]
per_user_per_minute = 0
max_concurrent_requests = 20000
[queue]
max_depth = 1000000
TOML

start_bot() { # → sets BOT_URL
  local data; data=$(mktemp -d)
  local port; port=$(free_port)
  rm -f "$OUT/bot.log"
  SLACK_SIGNING_SECRET=$SECRET CHATOPS_CONFIG="$OUT/bot.toml" "$BIN" serve --quiet \
    --listen "127.0.0.1:$port" --data-dir "$data" --durability "$DURABILITY" \
    --allow-response-host 127.0.0.1 --log-file "$OUT/bot.log" "${QUEUE_ARGS[@]}" &
  BOT_PID=$!
  PIDS+=("$BOT_PID")
  for _ in $(seq 100); do curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.1; done
  BOT_URL="http://127.0.0.1:$port"
}

stop_bot() { kill "$BOT_PID" 2>/dev/null || true; wait "$BOT_PID" 2>/dev/null || true; }

bot_ticks() { awk '{print $14 + $15}' "/proc/$BOT_PID/stat"; }

run() { # rate → results file
  local rate=$1
  cat >"$OUT/p-$rate.yml" <<YAML
config:
  target: "$BOT_URL"
  phases:
    - duration: $DURATION
      arrivalRate: $rate
      name: bench
scenarios:
  - name: echo
    flow:
      - post:
          url: /slack/commands
          beforeRequest: generateSlackSignature
YAML
  local before; before=$(bot_ticks)
  "$BIN" loadtest --profile "$OUT/p-$rate.yml" --signing-secret "$SECRET" --threads "$GEN_THREADS" \
    --quiet --drain-timeout 20s -o "$OUT/r-$ENGINE-$DURABILITY-$rate.json" >/dev/null 2>&1 || true
  local after; after=$(bot_ticks)
  echo "$(( (after - before) ))" >"$OUT/r-$ENGINE-$DURABILITY-$rate.ticks"
  echo "$OUT/r-$ENGINE-$DURABILITY-$rate.json"
}

summarize() { # results file, rate → one line; exit status 0 when the run held
  python3 - "$1" "$2" "$DURATION" "$(cat "${1%.json}.ticks")" "$(getconf CLK_TCK)" <<'PY'
import json, sys
path, rate, secs, ticks, hz = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
r = json.load(open(path))
c, s = r["counters"], r["summaries"]
sent, ok = c["requests"], c["acks"].get("200", 0)
errors = sum(c["errors"].values())
achieved = sent / secs
held = ok == c["scheduled"] and c["lost"] == 0 and c["dropped"] == 0 and errors == 0 \
    and c["responses"] == 2 * sent and abs(achieved - rate) <= 0.02 * rate
cpu = ticks / hz / secs * 100
kept_up = held and s["firstResponse"]["p99"] < 100.0
print(f"{rate:>7.0f}/s  achieved {achieved:>8.1f}/s  acked {ok}/{c['scheduled']}  lost {c['lost']}  errors {errors}  "
      f"ack p50/p99 {s['ack']['p50']:.2f}/{s['ack']['p99']:.2f} ms  service p99 {s['serviceTime']['p99']:.2f} ms  "
      f"E2E first p50/p99 {s['firstResponse']['p50']:.2f}/{s['firstResponse']['p99']:.2f} ms  "
      f"last p99 {s['lastResponse']['p99']:.2f} ms  bot CPU {cpu:.0f}%  "
      f"{'KEPT UP' if kept_up else 'ANSWERED' if held else 'not held'}")
sys.exit(0 if kept_up else 3 if held else 1)
PY
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); engine $ENGINE, durability $DURABILITY"
echo "== part 1: fixed rate $FIXED_RATE/s for ${DURATION}s"
start_bot
summarize "$(run "$FIXED_RATE")" "$FIXED_RATE" || true
stop_bot

echo "== part 2: sweep"
answered=0
kept=0
for rate in $RATES; do
  start_bot
  status=0
  summarize "$(run "$rate")" "$rate" || status=$?
  [ "$status" -eq 0 ] && kept=$rate
  { [ "$status" -eq 0 ] || [ "$status" -eq 3 ]; } && answered=$rate
  stop_bot
done
echo "highest rate answered: $answered/s; kept up (E2E p99 < 100 ms): $kept/s ($ENGINE, durability $DURABILITY)"
