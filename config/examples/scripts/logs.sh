#!/usr/bin/env bash
# Example runbook: the last LINES lines of SERVICE's log. Reads /var/log/SERVICE.log if it
# exists, else prints a placeholder so the command can be tried anywhere.
set -euo pipefail
service=$1 lines=$2
log="/var/log/$service.log"
if [ -r "$log" ]; then tail -n "$lines" "$log"; else echo "no log for $service at $log (example script)"; fi
