#!/usr/bin/env bash
# `ivy dashboard` from outside: the built binary on Redis with a worker and a bench, its JSON
# API and /metrics over HTTP (read with Prometheus's own parser), and its page in headless
# Chromium (Debian's `chromium`): login, counts changing while the bench runs, requeue and
# delete by clicking, lookup by id, logout. Tools/dashboard-check/check_dashboard.py holds the
# checks; Tools/dashboard-check/cdp.py drives the browser. Uses a database of its own (12),
# which it empties first.
#
# Saves .build/dashboard/dashboard.png, taken while the bench runs; with
# IVY_UPDATE_README_SCREENSHOT=1 it becomes the README's picture (docs/dashboard.png) too.
#
# Environment: IVY_BINARY (default .build/debug/ivy), IVY_REDIS_URL (default
# redis://127.0.0.1:6390, as scripts/services.sh starts it), IVY_DASHBOARD_PYTHON (default
# /usr/bin/python3), IVY_CHROMIUM (default: chromium on PATH).
set -euo pipefail
cd "$(dirname "$0")/.."
ivy=$(realpath "${IVY_BINARY:-.build/debug/ivy}")
url=${IVY_REDIS_URL:-redis://127.0.0.1:6390}/12
python=${IVY_DASHBOARD_PYTHON:-/usr/bin/python3}
export PYTHONDONTWRITEBYTECODE=1
say() { echo "dashboard-test: $*"; }

if ! command -v "${IVY_CHROMIUM:-chromium}" >/dev/null 2>&1; then
  say "FAIL: headless Chromium is needed: apt-get install chromium (or scripts/install-deps.sh test)"
  exit 1
fi
if ! "$python" -c 'import prometheus_client.parser' >/dev/null 2>&1; then
  say "FAIL: Prometheus's parser is needed: apt-get install python3-prometheus-client"
  exit 1
fi
mkdir -p .build/dashboard
readme=()
[ "${IVY_UPDATE_README_SCREENSHOT:-}" = 1 ] && readme=("$PWD/docs/dashboard.png")
cd Tools/dashboard-check
"$python" check_dashboard.py "$ivy" "$url" "$OLDPWD/.build/dashboard" "${readme[@]}"
say "passed; screenshot in .build/dashboard/dashboard.png"
