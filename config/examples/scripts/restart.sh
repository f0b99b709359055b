#!/usr/bin/env bash
# Example runbook: restart SERVICE in ENV. Replace the sleeps with your real steps; lines
# starting with ::progress:: are posted to Slack as progress. CHATOPS_RUN_LOG, when set,
# gets one line per run (the tests count runs with it).
set -euo pipefail
service=$1 env=$2
[ -n "${CHATOPS_RUN_LOG:-}" ] && echo "run $service $env" >> "$CHATOPS_RUN_LOG"
echo "::progress::draining $service in $env"
sleep "${RESTART_STEP_SECS:-1}"
echo "::progress::restarting $service"
sleep "${RESTART_STEP_SECS:-1}"
echo "$service restarted in $env (requested by ${REQUESTED_BY:-?})"
