#!/usr/bin/env bash
# Tests Tools/ironmq-emulator, the local IronMQ v3 server, with Iron.io's official Python client
# (PyPI `iron-mq`) and with raw HTTP from Python's standard library.
#
# The client is installed once into a virtualenv by scripts/python-tools-venv.sh. If it cannot
# be installed, every raw-HTTP test still runs, and the official-client tests are reported as
# SKIPPED with the reason. The script fails when a test that ran failed, and also when the
# official client is missing if IVY_REQUIRE_OFFICIAL_CLIENT=1.
#
# Environment: IVY_REQUIRE_OFFICIAL_CLIENT=1; IVY_IRONMQ_PYTHON, the python3 that makes the
# virtualenv (default /usr/bin/python3, else python3). Extra arguments go to unittest (-k Raw, -v).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS

tests=Tools/ironmq-emulator/test_emulator.py
export PYTHONDONTWRITEBYTECODE=1 # no __pycache__ in the source tree

say() { echo "ironmq-emulator-test: $*"; }

# --- the official client, in the virtualenv --------------------------------------------------
. scripts/python-tools-venv.sh

if [ -n "$missing" ]; then
  say "SKIPPING the official-client tests: $missing"
  if [ "${IVY_REQUIRE_OFFICIAL_CLIENT:-0}" = 1 ]; then
    say "FAIL: IVY_REQUIRE_OFFICIAL_CLIENT=1 and the official client could not be installed"
    exit 1
  fi
  command -v "$python" >/dev/null 2>&1 || {
    say "FAIL: no $python to run the raw-HTTP tests with"
    exit 1
  }
fi

# --- the tests ---------------------------------------------------------------------------------
status=0
IVY_IRONMQ_CLIENT_MISSING=$missing "$python" "$tests" "$@" || status=$?

if [ -n "$missing" ]; then
  say "official-client tests were SKIPPED ($missing); the raw-HTTP tests ran"
fi
if [ "$status" -ne 0 ]; then
  say "FAIL (status $status) after $((SECONDS - started)) s"
  exit "$status"
fi
say "passed in $((SECONDS - started)) s"
