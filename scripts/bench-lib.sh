# Shared pieces of the end-to-end benchmark scripts (bench-bot.sh, bench-side-by-side.sh).
# Sourced, not run. Everything listens on 127.0.0.1 only; callers bound every run in time.
#
# Needs: OUT (a folder for files), BIN (the release `chatops`), SECRET (the signing secret).

PIDS=()
bench_cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap bench_cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

wait_port() { for _ in $(seq 200); do (echo >/dev/tcp/127.0.0.1/"$1") 2>/dev/null && return 0; sleep 0.05; done; return 1; }

# CPU time (user + system) of a process so far, in clock ticks.
proc_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }

# A fresh nats-server -js on a free port with its own store → NATS_URL.
start_nats() {
  local port; port=$(free_port)
  local dir; dir=$(mktemp -d)
  nats-server -js -a 127.0.0.1 -p "$port" -sd "$dir" >"$OUT/nats.log" 2>&1 &
  PIDS+=($!)
  wait_port "$port"
  NATS_URL="nats://127.0.0.1:$port"
}

# The bot's settings for benchmarks: no per-user rate limit, no concurrency cap in the way,
# a deep queue (a backlog must show as latency, not as refusals).
write_bench_config() {
  cat >"$OUT/bot.toml" <<TOML
[limits]
per_user_per_minute = 0
max_concurrent_requests = 20000
[queue]
max_depth = 1000000
TOML
}

# start_chatops DURABILITY [QUEUE_URL] → BOT_URL, BOT_PID, BOT_PATH, BOT_ANSWERS
start_chatops() {
  local durability=$1 queue=${2:-}
  local data; data=$(mktemp -d)
  local port; port=$(free_port)
  local queue_args=()
  [ -n "$queue" ] && queue_args=(--queue "$queue")
  write_bench_config
  rm -f "$OUT/bot.log"
  SLACK_SIGNING_SECRET=$SECRET CHATOPS_CONFIG="$OUT/bot.toml" "$BIN" serve --quiet \
    --listen "127.0.0.1:$port" --metrics-listen 127.0.0.1:0 --data-dir "$data" --durability "$durability" \
    --allow-response-host 127.0.0.1 --log-file "$OUT/bot.log" "${queue_args[@]}" &
  BOT_PID=$!
  PIDS+=("$BOT_PID")
  for _ in $(seq 200); do curl -fs "127.0.0.1:$port/readyz" >/dev/null 2>&1 && break; sleep 0.05; done
  BOT_URL="http://127.0.0.1:$port" BOT_PATH=/slack/commands BOT_ANSWERS=2
}

# start_bolt → the same variables for the Bolt for JavaScript app (one answer per /echo).
start_bolt() {
  local port; port=$(free_port)
  PORT=$port SLACK_SIGNING_SECRET=$SECRET node "$BOLT_DIR/app.js" >"$OUT/bolt.log" 2>&1 &
  BOT_PID=$!
  PIDS+=("$BOT_PID")
  wait_port "$port"
  BOT_URL="http://127.0.0.1:$port" BOT_PATH=/slack/events BOT_ANSWERS=1
}

stop_bot() { kill "$BOT_PID" 2>/dev/null || true; wait "$BOT_PID" 2>/dev/null || true; }

# open_run NAME RATE → runs `chatops loadtest` at RATE/s for DURATION s against BOT_URL;
# writes $OUT/NAME-RATE.json and .ticks (the bot's CPU ticks during the run); prints the path.
open_run() {
  local name=$1 rate=$2
  local file="$OUT/$name-$rate"
  cat >"$file.yml" <<YAML
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
          url: $BOT_PATH
          beforeRequest: generateSlackSignature
          expectAnswers: $BOT_ANSWERS
YAML
  local before; before=$(proc_ticks "$BOT_PID")
  "$BIN" loadtest "$file.yml" --signing-secret "$SECRET" --threads "${GEN_THREADS:-1}" \
    --quiet --drain-timeout "${DRAIN:-20s}" -o "$file.json" >/dev/null 2>&1 || true
  local after; after=$(proc_ticks "$BOT_PID")
  echo "$(( after - before ))" >"$file.ticks"
  echo "$file.json"
}
