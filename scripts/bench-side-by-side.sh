#!/usr/bin/env bash
# chatops next to Slack's Bolt for JavaScript, in one go, printing one table (issue 13).
#
#   scripts/bench-side-by-side.sh
#   RATES="1000 2000" BOTS="sqlite-full bolt" DURATION=5 scripts/bench-side-by-side.sh
#
# For each bot (BOTS, default: chatops `serve` with SQLite durability full, with durability
# normal, on NATS JetStream, and the Bolt for JavaScript 5.1 app of ../shared/bench/bolt-js):
#
# 1. Closed model, an independent tool: wrk (Debian's `wrk`), 1 thread, CONNS connections
#    (default 32), WRK_SECS (default 10) s, each request uniquely signed beforehand (a
#    distinct user and response_url per request, so nothing is a duplicate or rate-limited),
#    the answers counted by `chatops mock-slack` (a separate process playing response_url).
#    "Fully answered per second" = commands acked with 200 *and* all their answers (two for
#    chatops' /echo, one for Bolt's) received, divided by the run time.
# 2. Open model: `chatops loadtest` at each of RATES (default 1000 2000 4000 8000 10000) for
#    DURATION (default 10) s, latency from each request's scheduled send time.
#
# Bot CPU per command is the bot process's user + system time during the run divided by the
# commands sent. Installs wrk and Bolt (npm, into target/bench-side-by-side/bolt-js) when
# missing. Loopback only; every run is bounded in time. Takes about 10 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."

BOTS=${BOTS:-"sqlite-full sqlite-normal nats bolt"}
RATES=${RATES:-"1000 2000 4000 8000 10000"}
DURATION=${DURATION:-10}
WRK_SECS=${WRK_SECS:-10}
CONNS=${CONNS:-32}
DRAIN=${DRAIN:-15s}
OUT=${OUT:-target/bench-side-by-side}
SHARED_BENCH=${SHARED_BENCH:-../shared/bench}
mkdir -p "$OUT"

if ! command -v wrk >/dev/null; then
  echo "bench-side-by-side: installing wrk from Debian's packages"
  sudo_cmd=(); [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get install -y -qq wrk >/dev/null || { "${sudo_cmd[@]}" apt-get update -qq && "${sudo_cmd[@]}" apt-get install -y -qq wrk >/dev/null; }
fi
BOLT_DIR=$OUT/bolt-js
if [[ " $BOTS " == *" bolt "* ]] && [ ! -d "$BOLT_DIR/node_modules/@slack/bolt" ]; then
  echo "bench-side-by-side: installing @slack/bolt with npm into $BOLT_DIR"
  mkdir -p "$BOLT_DIR"
  cp "$SHARED_BENCH/bolt-js/app.js" "$SHARED_BENCH/bolt-js/package.json" "$BOLT_DIR/"
  (cd "$BOLT_DIR" && npm install --no-audit --no-fund --loglevel=error >/dev/null)
fi

cargo build --release -q -p chatops
BIN=target/release/chatops
SECRET=bench-secret-$RANDOM$RANDOM
# shellcheck source=scripts/bench-lib.sh
. scripts/bench-lib.sh

start() { # bot name → a running bot (BOT_URL, BOT_PATH, BOT_ANSWERS, BOT_PID)
  case $1 in
    sqlite-full) start_chatops full ;;
    sqlite-normal) start_chatops normal ;;
    nats) start_nats; start_chatops full "$NATS_URL" ;;
    bolt) start_bolt ;;
    *) echo "unknown bot $1" >&2; exit 2 ;;
  esac
}

# Requests for wrk: N uniquely signed /echo commands whose response_url is mock-slack's
# /hook/<id> (the format of ../shared/bench/signed-requests.py, with our receiver's path).
sign_requests() { # n hook_port out
  python3 - "$1" "$2" "$SECRET" "$3" <<'PY'
import hmac, hashlib, sys, time, urllib.parse
n, hook, secret, out = int(sys.argv[1]), sys.argv[2], sys.argv[3].encode(), sys.argv[4]
ts = str(int(time.time()))
with open(out, "w") as f:
    for i in range(n):
        body = urllib.parse.urlencode({
            "token": "x", "team_id": "T1", "team_domain": "t", "channel_id": "C1",
            "channel_name": "general", "user_id": f"U{i}", "user_name": "u",
            "command": "/echo", "text": f"hello {i}",
            "response_url": f"http://127.0.0.1:{hook}/hook/w-{i}", "trigger_id": f"1.2.{i}"})
        sig = "v0=" + hmac.new(secret, f"v0:{ts}:{body}".encode(), hashlib.sha256).hexdigest()
        f.write(f"{ts}\t{sig}\t{body}\n")
PY
}

closed_run() { # bot name → $OUT/closed-NAME.json
  local name=$1
  local hook; hook=$(free_port)
  "$BIN" mock-slack --listen "127.0.0.1:$hook" >"$OUT/posts-$name.txt" 2>/dev/null &
  local mock=$!
  PIDS+=("$mock")
  wait_port "$hook"
  sign_requests $((WRK_SECS * 40000)) "$hook" "$OUT/reqs-$name.tsv"
  local before; before=$(proc_ticks "$BOT_PID")
  REQS="$OUT/reqs-$name.tsv" PATHX=$BOT_PATH wrk -t1 -c"$CONNS" -d"${WRK_SECS}s" -s "$SHARED_BENCH/wrk-signed.lua" \
    "$BOT_URL" >"$OUT/wrk-$name.txt" 2>&1 || true
  local after; after=$(proc_ticks "$BOT_PID")
  # Answers still on their way when wrk stops count; then the count is final.
  local last=-1 now
  for _ in $(seq 60); do
    now=$(wc -l <"$OUT/posts-$name.txt")
    [ "$now" = "$last" ] && break
    last=$now; sleep 0.5
  done
  kill "$mock" 2>/dev/null || true; wait "$mock" 2>/dev/null || true
  python3 - "$OUT/wrk-$name.txt" "$last" "$BOT_ANSWERS" "$((after - before))" "$(getconf CLK_TCK)" "$WRK_SECS" >"$OUT/closed-$name.json" <<'PY'
import json, sys
wrk, posts, answers, ticks, hz, secs = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), float(sys.argv[6])
line = next((l for l in open(wrk) if l.startswith("JSON ")), None)
w = json.loads(line[5:]) if line else {"requests": 0, "c200": 0, "p50_ms": 0, "p99_ms": 0}
answered = min(w["c200"], posts // answers)
print(json.dumps({"wrk": w, "posts": posts, "answered_per_s": answered / secs,
                  "cpu_pct": ticks / hz / secs * 100, "cpu_us_per_cmd": ticks / hz * 1e6 / max(w["requests"], 1)}))
PY
}

for bot in $BOTS; do
  echo "== $bot: closed model (wrk, $CONNS connections, ${WRK_SECS}s)"
  start "$bot"; closed_run "$bot"; stop_bot
  cat "$OUT/closed-$bot.json"
  for rate in $RATES; do
    echo "== $bot: open model $rate/s for ${DURATION}s"
    start "$bot"; open_run "open-$bot" "$rate" >/dev/null; stop_bot
  done
done

python3 - "$OUT" "$DURATION" "$(getconf CLK_TCK)" "$BOTS" "$RATES" <<'PY'
import json, os, sys
out, secs, hz, bots, rates = sys.argv[1], float(sys.argv[2]), int(sys.argv[3]), sys.argv[4].split(), sys.argv[5].split()
names = {"sqlite-full": "chatops SQLite full", "sqlite-normal": "chatops SQLite normal",
         "nats": "chatops NATS", "bolt": "Bolt for JavaScript 5.1"}
answers = {b: 1 if b == "bolt" else 2 for b in bots}
def cell(bot, rate):
    path = f"{out}/open-{bot}-{rate}.json"
    if not os.path.exists(path):
        return "—"
    r = json.load(open(path)); c, s = r["counters"], r["summaries"]
    ticks = int(open(path[:-5] + ".ticks").read())
    sent = max(c["requests"], 1)
    errors = sum(c["errors"].values())
    held = c["acks"].get("200", 0) == c["scheduled"] and c["lost"] == 0 and c["dropped"] == 0 and errors == 0 \
        and c["responses"] >= answers[bot] * c["requests"] and abs(c["requests"] / secs - float(rate)) <= 0.02 * float(rate)
    kept = held and s["firstResponse"]["p99"] < 100.0
    verdict = "kept up" if kept else "answered, backlog" if held else f"NOT held (lost {c['lost']}, errors {errors}, dropped {c['dropped']})"
    return (f"{verdict}: ack p50/p99 {s['ack']['p50']:.1f}/{s['ack']['p99']:.1f} ms, "
            f"E2E p99 {s['firstResponse']['p99']:.1f} ms, {ticks / hz * 1e6 / sent:.0f} µs CPU/cmd")
print()
print("| | " + " | ".join(names.get(b, b) for b in bots) + " |")
print("|---|" + "---|" * len(bots))
row = []
for b in bots:
    c = json.load(open(f"{out}/closed-{b}.json"))
    row.append(f"{c['answered_per_s']:,.0f}/s (bot CPU {c['cpu_pct']:.0f} %, {c['cpu_us_per_cmd']:.0f} µs/cmd; "
               f"ack p50/p99 {c['wrk']['p50_ms']:.1f}/{c['wrk']['p99_ms']:.1f} ms)")
print("| closed model (wrk), fully answered | " + " | ".join(row) + " |")
for rate in rates:
    print(f"| open model {int(rate):,}/s | " + " | ".join(cell(b, rate) for b in bots) + " |")
PY
