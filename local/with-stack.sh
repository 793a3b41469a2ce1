#!/usr/bin/env bash
# Runs a command with the local stack up. If the stack was not already running,
# it is started first and stopped afterwards (only what this script started);
# a stack started by `make up` is used and left running.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
started=""
# Read the whole status first: `status | grep -q` under pipefail fails
# whenever grep exits before status has written its last line (SIGPIPE),
# which made this script stop a stack it had not started.
status=$("$root/local/stack.sh" status)
if ! grep -q '^keycloak: running' <<<"$status"; then
  started=yes
fi
cleanup() { [ -n "$started" ] && "$root/local/stack.sh" down; }
trap cleanup EXIT
"$root/local/stack.sh" up || exit 1
"$@"
