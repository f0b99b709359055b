#!/usr/bin/env bash
# End-to-end throughput of `chatops analyze FILE` on a generated ~1 GB log of realistic bot
# lines (router and worker metric lines about 50/50, 1 % other lines, 2 % failures,
# log-normal latencies, the service's field order), single-threaded (--threads 1) and on
# every core. The log is generated once into $BENCH_ANALYZE_DIR and reused.
#
#   scripts/bench-analyze.sh            # 1 GiB, 3 runs each
#   SIZE_MB=256 RUNS=5 scripts/bench-analyze.sh
#
# Needs a release build (built here if missing): cargo build --release -p chatops.
# Prints the load average before each run: the figures mean little on a busy machine.
set -euo pipefail

cd "$(dirname "$0")/.."
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-3}
DIR=${BENCH_ANALYZE_DIR:-${TMPDIR:-/tmp}/chatops-bench-analyze}
LOG="$DIR/bot-${SIZE_MB}m.log"
BIN=${CHATOPS_BIN:-${CARGO_TARGET_DIR:-target}/release/chatops}

mkdir -p "$DIR"
if [[ ! -s "$LOG" ]]; then
  echo "generating $LOG (${SIZE_MB} MiB)..." >&2
  python3 - "$LOG.tmp" "$SIZE_MB" <<'PY'
import math, random, sys
from datetime import datetime, timezone

path, size_mb = sys.argv[1], int(sys.argv[2])
limit = size_mb << 20
rng = random.Random(0x2545F4914F6CDD1D)
commands = [("/echo", "sr-worker", "short-read"), ("/scale", "sw-worker", "short-write"),
            ("/report", "lr-worker", "long-read"), ("/deploy", "lw-worker", "long-write")]
t0_ms = 1_764_331_200_000

def ln(median):
    # log-normal, sigma 0.6: real latencies are skewed, and a realistic spread matters to histograms
    return median * math.exp(0.6 * rng.gauss(0.0, 1.0))

written, i = 0, 0
with open(path, "w", buffering=1 << 22) as out:
    while written < limit:
        ts_us = (t0_ms + i) * 1000 + rng.randrange(1000)
        ts = datetime.fromtimestamp(ts_us // 1_000_000, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S") + ".%06dZ" % (ts_us % 1_000_000)
        cmd, component, quadrant = commands[rng.randrange(4)]
        cid = "0193a1b2-c3d4-7e5f-8a9b-%012x" % (i // 2)
        ok = rng.random() >= 0.02
        r = rng.random()
        if r < 0.01:
            line = ('{"timestamp":"%s","level":"INFO","message":"slash command received","correlationId":"%s",'
                    '"command":"%s","target":"chatops_service::ingress"}' % (ts, cid, cmd))
        elif r < 0.505:
            err = "" if ok else ',"errorType":"QueueFull"'
            line = ('{"timestamp":"%s","level":"INFO","message":"Router performance metrics","correlationId":"%s",'
                    '"command":"%s","statusCode":%d,"duration":%.3f,"success":%s,"enqueueMs":%.3f,"quadrant":"%s"%s,'
                    '"target":"chatops_service::ingress","span":{"correlation_id":"%s","name":"request"}}'
                    % (ts, cid, cmd, 200 if ok else 503, ln(2.0), "true" if ok else "false", ln(0.8), quadrant, err, cid))
        else:
            err = "" if ok else ',"errorType":"Timeout","errorMessage":"handler timed out"'
            attempt = 1 if rng.random() >= 0.01 else 2
            line = ('{"timestamp":"%s","level":"INFO","message":"Performance metrics","correlationId":"%s",'
                    '"command":"%s","component":"%s","quadrant":"%s","totalE2eMs":%.3f,"workerDurationMs":%.3f,'
                    '"queueWaitMs":%.3f,"syncResponseMs":%.3f,"asyncResponseMs":%.3f,"success":%s%s,"attempt":%d,'
                    '"routerMs":%.3f,"enqueueMs":%.3f,"handlerMs":%.3f,"firstResponseE2eMs":%.3f,'
                    '"lastResponseE2eMs":%.3f,"responses":2,"target":"chatops_service::worker"}'
                    % (ts, cid, cmd, component, quadrant, ln(40.0), ln(25.0), ln(8.0), ln(3.0), ln(4.0),
                       "true" if ok else "false", err, attempt, ln(0.5), ln(0.8), ln(20.0), ln(30.0), ln(38.0)))
        out.write(line)
        out.write("\n")
        written += len(line) + 1
        i += 1
PY
  mv "$LOG.tmp" "$LOG"
fi

if [[ ! -x "$BIN" ]]; then
  cargo build --release -p chatops
fi

# Warm the page cache: the figure is the analyzer's, not the disk's.
cat "$LOG" > /dev/null
LINES=$(wc -l < "$LOG")
BYTES=$(stat -c %s "$LOG")
echo "log: $LOG, $BYTES bytes, $LINES lines; binary: $BIN"

run() {
  local label=$1; shift
  local best="" all=""
  for _ in $(seq "$RUNS"); do
    local load start end secs
    load=$(cut -d' ' -f1 /proc/loadavg)
    start=$(date +%s.%N)
    "$BIN" analyze "$LOG" "$@" > /dev/null
    end=$(date +%s.%N)
    secs=$(echo "$end - $start" | bc -l)
    all+=" $(printf '%.3f' "$secs")s(load $load)"
    if [[ -z "$best" ]] || (( $(echo "$secs < $best" | bc -l) )); then best=$secs; fi
  done
  printf '%-34s best %.3f s = %.2f M lines/s = %.0f MB/s;  runs:%s\n' "$label" "$best" \
    "$(echo "$LINES / $best / 1000000" | bc -l)" "$(echo "$BYTES / $best / 1000000" | bc -l)" "$all"
}

echo "load before: $(cat /proc/loadavg)"
run "analyze FILE --threads 1" --threads 1
run "analyze FILE (all cores)"
run "analyze FILE --bin 10s (all cores)" --bin 10s
echo "load after: $(cat /proc/loadavg)"
