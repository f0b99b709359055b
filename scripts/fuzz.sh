#!/usr/bin/env bash
# Fuzzes the parsers that take untrusted input, with cargo-fuzz (libFuzzer).
#
#   scripts/fuzz.sh                 every target for 60 s (what CI runs)
#   scripts/fuzz.sh ingress 3600    one target for an hour (the longer documented run)
#
# Targets: ingress (signature + form + response_url), args (a command's text → typed
# arguments: quoting rules and checks), profile (load-test YAML and
# templates), log_line (the analyzer's line parser). Seeds live in fuzz/seeds/<target>;
# what a run discovers goes to fuzz/corpus/<target> (not committed); a crash is saved in
# fuzz/artifacts/<target> and fails the script. cargo-fuzz is installed from crates.io
# when missing. It needs nightly features; RUSTC_BOOTSTRAP=1 unlocks them on the stable
# toolchain. No sanitizer: our crates forbid unsafe code, and libFuzzer's own checks
# (panics, timeouts, memory limit) are what we are after.
set -euo pipefail
cd "$(dirname "$0")/.."

targets=(ingress args profile log_line)
seconds="${2:-60}"
if [ $# -ge 1 ] && [ "$1" != "all" ]; then targets=("$1"); fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "scripts/fuzz.sh: installing cargo-fuzz from crates.io"
  cargo install cargo-fuzz --locked --quiet
fi

export RUSTC_BOOTSTRAP=1
cd fuzz
for t in "${targets[@]}"; do
  cargo fuzz build --sanitizer none -O "$t"
done
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  echo "scripts/fuzz.sh: fuzzing $t for ${seconds}s"
  set +e
  cargo fuzz run --sanitizer none -O "$t" "corpus/$t" "seeds/$t" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 \
    >"corpus/$t.log" 2>&1
  status=$?
  set -e
  grep -E "^(stat::number_of_executed_units|stat::peak_rss_mb)|panicked|SUMMARY" "corpus/$t.log" || true
  if [ "$status" -ne 0 ]; then
    echo "scripts/fuzz.sh: $t failed; the input is in fuzz/artifacts/$t and the log in fuzz/corpus/$t.log" >&2
    exit 1
  fi
done
echo "scripts/fuzz.sh: no failures"
