#!/usr/bin/env bash
# Installs the Debian packages Ivy needs, only those missing.
#   scripts/install-deps.sh build   the C libraries the package links (default)
#   scripts/install-deps.sh test    those, plus the servers and tools `make test` uses
# As root it runs apt-get (update once, then install -y); otherwise it prints the command.
set -euo pipefail
mode=${1:-build}

need=()
command -v pkg-config >/dev/null 2>&1 || need+=(pkg-config)
declare -A libraries=([openssl]=libssl-dev [hiredis]=libhiredis-dev [libcurl]=libcurl4-openssl-dev [librabbitmq]=librabbitmq-dev [libmicrohttpd]=libmicrohttpd-dev)
for module in "${!libraries[@]}"; do
  if ! command -v pkg-config >/dev/null 2>&1 || ! pkg-config --exists "$module"; then need+=("${libraries[$module]}"); fi
done
if [ "$mode" = test ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  command -v redis-cli >/dev/null 2>&1 || need+=(redis-tools)
  command -v python3 >/dev/null 2>&1 || need+=(python3)   # scripts/chaos.sh's helpers
  # scripts/reference-client-test.sh: Debian's redis client for Python, no PyPI needed
  { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import redis' >/dev/null 2>&1; } || need+=(python3-redis)
  # scripts/metrics-test.sh: Prometheus's own text-format parser, from Debian
  { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import prometheus_client.parser' >/dev/null 2>&1; } ||
    need+=(python3-prometheus-client)
  # scripts/dashboard-test.sh: a real browser, headless
  command -v chromium >/dev/null 2>&1 || need+=(chromium)
  # scripts/ironmq-emulator-test.sh: a virtualenv for Iron.io's own client, iron-mq from PyPI
  { [ -x /usr/bin/python3 ] && /usr/bin/python3 -c 'import venv, ensurepip' >/dev/null 2>&1; } || need+=(python3-venv)
  # scripts/services.sh's private RabbitMQ node runs the package's own scripts (not in PATH)
  [ -x /usr/lib/rabbitmq/bin/rabbitmq-server ] || need+=(rabbitmq-server)
  # and openssl makes its TLS listener's throwaway CA and certificate
  command -v openssl >/dev/null 2>&1 || need+=(openssl)
fi
[ ${#need[@]} -eq 0 ] && exit 0

# One package list, whatever order the names were found in.
mapfile -t need < <(printf '%s\n' "${need[@]}" | sort -u)
if [ "$(id -u)" -ne 0 ]; then
  echo "missing Debian packages: ${need[*]}" >&2
  echo "install them with: sudo apt-get update && sudo apt-get install -y ${need[*]}" >&2
  exit 1
fi
echo "installing: ${need[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# Our servers run on private ports (scripts/services.sh); a distro-started one does not collide
# (rabbitmq-server's starts rabbit@HOST on 5672 and 25672, epmd on 4369, where a policy allows it).
apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
