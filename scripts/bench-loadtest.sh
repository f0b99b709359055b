#!/usr/bin/env bash
# Benchmark of the load generator (crates/chatops-loadtest) against a trivial local HTTP
# server: finds the highest open-model rate it sustains within 2 %, with its CPU and memory
# (/usr/bin/time -v), and the latency it adds. Loopback only; every run is bounded.
#
#   scripts/bench-loadtest.sh                         # default sweep
#   RATES="20000 40000 60000" DURATION=10 scripts/bench-loadtest.sh
#
# Knobs (environment): RATES (arrivals/s to try, ascending), DURATION (s per run, default
# 10), GEN_THREADS (generator threads, default 2), SERVER_THREADS (default 1), WINDOW
# (--response-window, default 30s as in real runs), LONG_SECS (if set, one extra run of that
# many seconds at LONG_RATE to watch memory over time), LOW_RATES (rates run after the sweep
# for the generator's send lag and CPU when it is mostly idle, default "100 1000"), BIN (a
# folder holding already built `loadtest` and `trivial_server`, e.g. a copy of an older
# build to compare against; skips the build). Every request is signed and its
# response_url rewritten for the receiver; the trivial server never answers through it, so
# every command is counted lost, as expected here.
set -euo pipefail
cd "$(dirname "$0")/.."

RATES=${RATES:-"5000 10000 20000 30000 40000 50000 60000 70000 80000"}
DURATION=${DURATION:-10}
GEN_THREADS=${GEN_THREADS:-2}
SERVER_THREADS=${SERVER_THREADS:-1}
WINDOW=${WINDOW:-30s}
OUT=${OUT:-target/bench-loadtest}
mkdir -p "$OUT"

if [ -z "${BIN:-}" ]; then
  cargo build --release -q -p chatops-loadtest --examples
  BIN=${CARGO_TARGET_DIR:-target}/release/examples
fi
[ -x /usr/bin/time ] || { echo "needs /usr/bin/time (apt-get install time)" >&2; exit 2; }

"$BIN/trivial_server" 127.0.0.1:0 "$SERVER_THREADS" >"$OUT/server.addr" &
SERVER_PID=$!
trap 'kill "$SERVER_PID" 2>/dev/null || true' EXIT
for _ in $(seq 50); do [ -s "$OUT/server.addr" ] && break; sleep 0.1; done
ADDR=$(head -1 "$OUT/server.addr")
[ -n "$ADDR" ] || { echo "trivial_server did not report its address in 5 s" >&2; exit 2; }

profile() { # rate duration → file
  cat >"$OUT/p-$1.yml" <<YAML
config:
  target: "http://$ADDR"
  phases:
    - duration: $2
      arrivalRate: $1
      name: bench
scenarios:
  - name: echo
    flow:
      - post:
          url: /slack/commands
          beforeRequest: generateSlackSignature
YAML
  echo "$OUT/p-$1.yml"
}

server_ticks() { awk '{print $14 + $15}' "/proc/$SERVER_PID/stat"; }

run() { # rate duration → prints one summary line
  local rate=$1 secs=$2
  local p; p=$(profile "$rate" "$secs")
  local before; before=$(server_ticks)
  local load; load=$(cut -d' ' -f1 /proc/loadavg)
  /usr/bin/time -v "$BIN/loadtest" --threads "$GEN_THREADS" --profile "$p" --signing-secret bench-secret \
    --quiet --drain-timeout 1s --response-window "$WINDOW" -o "$OUT/r-$rate-$secs.json" 2>"$OUT/time-$rate-$secs.txt" || true
  local server_cpu; server_cpu=$(( $(server_ticks) - before ))
  python3 - "$rate" "$secs" "$OUT/r-$rate-$secs.json" "$OUT/time-$rate-$secs.txt" "$server_cpu" "$(getconf CLK_TCK)" "$load" <<'PY'
import json, re, sys
rate, secs, rpath, tpath = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3], sys.argv[4]
server_cpu = int(sys.argv[5]) / int(sys.argv[6]) / secs * 100
r = json.load(open(rpath)); t = open(tpath).read()
c, s = r["counters"], r["summaries"]
pts = r["timeSeries"]["points"]
achieved = sum(p["requests"] for p in pts) / secs       # sent inside the test window
errors = sum(c["errors"].values())
ok = abs(achieved - rate) / rate <= 0.02 and c["dropped"] == 0 and errors == 0
num = lambda k: float(re.search(k + r": *([0-9.:]+)", t).group(1))
cpu = int(re.search(r"Percent of CPU this job got: (\d+)%", t).group(1))
user, sys_ = num("User time \\(seconds\\)"), num("System time \\(seconds\\)")
rss = num(r"Maximum resident set size \(kbytes\)") / 1024
us = (user + sys_) / max(c["requests"], 1) * 1e6
print(f"{int(rate):>7} {achieved:>10.0f} {'yes' if ok else 'NO':>4} {c['dropped']:>8} {errors:>6} {cpu:>4}% {server_cpu:>5.0f}% {us:>6.1f} {rss:>7.1f}"
      f" {s['ack']['p50']:>7.2f} {s['ack']['p99']:>8.2f} {s['sendLag']['p50']:>7.3f} {s['sendLag']['p99']:>8.3f} {s['sendLag']['max']:>7.2f}"
      f" {s['serviceTime']['p50']:>7.2f} {s['serviceTime']['p99']:>8.2f} {sys.argv[7]:>5}")
open(rpath + ".ok", "w").write("1" if ok else "0")
PY
}

echo "machine: $(nproc) CPUs, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load avg $(cut -d' ' -f1-3 /proc/loadavg)"
echo "times in ms; cpu = generator CPU (all threads, % of one core), srv = target server CPU"
echo "generator threads $GEN_THREADS, server threads $SERVER_THREADS, ${DURATION}s per rate, signing and receiver on"
echo "   rate   achieved  ok?  dropped errors  cpu   srv  us/req  rss_MB ack_p50  ack_p99 lag_p50  lag_p99 lag_max svc_p50  svc_p99  load"
best=0
for rate in $RATES; do
  run "$rate" "$DURATION"
  if [ "$(cat "$OUT/r-$rate-$DURATION.json.ok")" = 1 ]; then best=$rate; fi
done
echo "highest rate sustained within 2%: $best/s (load avg $(cut -d' ' -f1-3 /proc/loadavg))"
echo "low rates: the send lag the generator adds (from the scheduled time) and its CPU when mostly idle"
for rate in ${LOW_RATES:-100 1000}; do
  run "$rate" "$DURATION"
done
if [ -n "${LONG_SECS:-}" ]; then
  echo "long run: ${LONG_SECS}s at ${LONG_RATE:-20000}/s (memory stays bounded by rate x response window)"
  run "${LONG_RATE:-20000}" "$LONG_SECS"
fi
