#!/usr/bin/env bash
# Runs every test of the workspace. The README's test command.
#
# Some tests drive real programs from Debian's packages: `nats-server` (the NATS engine's
# tests start their own broker) and `chromium` (the HTML report's browser test), and the
# loadtest's TLS tests need the system's root certificates (`ca-certificates`). This
# script installs whichever is missing, and says so, so that it also passes on a fresh
# Debian machine. Set CHATOPS_NO_INSTALL=1 to skip installing (the tests that need a
# missing program then fail with a message saying how to install it).
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v nats-server >/dev/null 2>&1 || [ -x /usr/sbin/nats-server ] || need+=(nats-server)
command -v chromium >/dev/null 2>&1 || [ -x /usr/bin/chromium ] || need+=(chromium)
# loadtest's https tests verify certificates against the system's roots.
[ -s /etc/ssl/certs/ca-certificates.crt ] || need+=(ca-certificates)

if [ ${#need[@]} -gt 0 ] && [ -z "${CHATOPS_NO_INSTALL:-}" ]; then
  echo "scripts/test.sh: installing missing test programs from Debian's packages: ${need[*]}"
  sudo_cmd=()
  [ "$(id -u)" -ne 0 ] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${need[@]}"
fi

# Integration tests start servers and child processes; a few threads per test binary
# keeps this 2-core machine responsive without serialising everything.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
cargo test --workspace --locked "$@"

# Load tests with latency bounds (marked #[ignore]) need the machine to themselves: one at a
# time, after everything else.
cargo test --locked -p chatops --test it -- --ignored --test-threads=1
