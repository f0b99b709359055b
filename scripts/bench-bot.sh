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
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

QUEUE=
if [ "$ENGINE" = nats ]; then
  start_nats
  QUEUE=$NATS_URL
fi
start_bot() { start_chatops "$DURABILITY" "$QUEUE"; }
run() { open_run "r-$ENGINE-$DURABILITY" "$1"; }

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
us_per_cmd = ticks / hz * 1e6 / max(sent, 1)
kept_up = held and s["firstResponse"]["p99"] < 100.0
print(f"{rate:>7.0f}/s  achieved {achieved:>8.1f}/s  acked {ok}/{c['scheduled']}  lost {c['lost']}  errors {errors}  "
      f"ack p50/p99 {s['ack']['p50']:.2f}/{s['ack']['p99']:.2f} ms  service p99 {s['serviceTime']['p99']:.2f} ms  "
      f"E2E first p50/p99 {s['firstResponse']['p50']:.2f}/{s['firstResponse']['p99']:.2f} ms  "
      f"last p99 {s['lastResponse']['p99']:.2f} ms  bot CPU {cpu:.0f}% ({us_per_cmd:.0f} µs/command)  "
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
