#!/usr/bin/env bash
# Memory of the bot over a long run: `chatops serve` (release, SQLite, durability full) under
# `chatops loadtest` at RATE/s (default 1000) for DURATION s (default 600), its RSS printed
# every 30 s, then the run's figures. Loopback only; bounded by DURATION.
#
#   scripts/bench-memory.sh
#   RATE=2000 DURATION=120 scripts/bench-memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."

RATE=${RATE:-1000}
DURATION=${DURATION:-600}
OUT=${OUT:-target/bench-memory}
DRAIN=${DRAIN:-20s}
mkdir -p "$OUT"

cargo build --release -q -p chatops
BIN=target/release/chatops
SECRET=bench-secret-$RANDOM$RANDOM
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

start_chatops full
open_run memory "$RATE" >"$OUT/path" &
GEN=$!
for t in $(seq 0 30 "$DURATION"); do
  echo "t=${t}s rss=$(awk '/VmRSS/{print $2}' "/proc/$BOT_PID/status") kB"
  sleep 30
done
wait "$GEN" || true
echo "after the run: rss=$(awk '/VmRSS/{print $2}' "/proc/$BOT_PID/status") kB"
stop_bot
python3 - "$(cat "$OUT/path")" "$DURATION" "$(cat "$OUT/memory-$RATE.ticks")" "$(getconf CLK_TCK)" <<'PY'
import json, sys
r = json.load(open(sys.argv[1])); secs, ticks, hz = float(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
c, s = r["counters"], r["summaries"]
print(f"sent {c['requests']}  lost {c['lost']}  errors {sum(c['errors'].values())}  "
      f"ack p50/p99 {s['ack']['p50']:.2f}/{s['ack']['p99']:.2f} ms  "
      f"E2E first p50/p99 {s['firstResponse']['p50']:.2f}/{s['firstResponse']['p99']:.2f} ms  "
      f"bot CPU {ticks / hz / secs * 100:.0f}% ({ticks / hz * 1e6 / max(c['requests'], 1):.0f} µs/command)")
PY
