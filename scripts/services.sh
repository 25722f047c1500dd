#!/usr/bin/env bash
# Starts or stops the servers the integration tests talk to, on loopback and private ports,
# with their data in .services/ (git-ignored).
#   scripts/services.sh up | down | env | run COMMAND... | ctl RABBITMQCTL-ARGUMENTS...
#                       | rabbitmq-up | rabbitmq-down | redis-cluster-up | redis-cluster-down
# Ports: IVY_REDIS_PORT (default 6390), IVY_IRONMQ_PORT (default 8690: the local IronMQ v3
# server, Tools/ironmq-emulator, project `ivytest`, token `ivy-test-token`, reservations from 1 s),
# IVY_REDISS_PORT (default 6392: a Redis with TLS only, no plaintext listener, client certificate
# optional; ACL user `ivy` password `ivy-tls-password` with all permissions beside the passwordless
# default), IVY_REDISS_CERT_PORT (default 6393: the same but a client certificate required), their
# files in .services/redis-tls/tls/: ca.pem (a throwaway CA made with openssl), server.pem and
# server-key.pem (signed by it, for IP:127.0.0.1 and DNS:localhost), client.pem and client-key.pem
# (a client's, signed by it), wrong-ca.pem (another CA, which signed nothing); made once, kept
# while the directory lives. IVY_REDIS_CLUSTER_PORTS (default 6401, or 6401-6406 as `env` prints
# it: the first of six): a Redis Cluster of six nodes, three masters with a replica each, cluster
# bus ports 10000 above (16401-16406), made anew by each `up` or `redis-cluster-up` when it is not
# running and ok on all six, and `redis-cluster-down` (and `down`) removes it whole;
# IVY_REDIS_CLUSTER_TIMEOUT (default 60 s) bounds its wait for cluster_state:ok.
# IVY_AMQP_PORT (default 5690: a private RabbitMQ node `ivytest@127.0.0.1` of the Debian package
# rabbitmq-server, vhost `ivytest`, user `ivy` password `ivy-test-password` with all permissions
# there; `guest` as RabbitMQ makes it, loopback only; no plugins), with a TLS listener on
# IVY_AMQPS_PORT (default 5691) whose certificate, for IP:127.0.0.1 only, is signed by a throwaway
# CA made with openssl in the node's directory (tls/ca.pem; tls/wrong-ca.pem is another CA, which
# signed nothing; made once, kept while the directory lives). That node's Erlang distribution
# port is IVY_RABBITMQ_DIST_PORT (default 25690), its epmd's IVY_RABBITMQ_EPMD_PORT (default 4390),
# rabbitmqctl's IVY_RABBITMQ_CTL_PORTS (default 35690-35699), all on 127.0.0.1, with an Erlang cookie
# of its own: nothing of a system RabbitMQ (5672, 25672, 15672, epmd 4369, /var/lib/rabbitmq) is
# used or touched. As root the node runs as the `rabbitmq` user. IVY_RABBITMQ_START_TIMEOUT
# (default 120 s) bounds its start. rabbitmqctl by hand: `scripts/services.sh ctl list_queues -p ivytest`
# (with the same IVY_AMQP_PORT and IVY_RABBITMQ_* variables as `up`); see rabbitmq_env and rabbitmqctl_node.
# `env` prints the servers' URLs (IVY_REDIS_URL, IVY_IRONMQ_URL, IVY_REDISS_URL,
# IVY_REDISS_PASSWORD_URL as `ivy`, IVY_REDISS_CERT_URL of the certificate-requiring server without
# a certificate in it, IVY_REDIS_CLUSTER_URL of three nodes, IVY_AMQP_URL, IVY_AMQPS_URL), the Redis
# TLS files (IVY_REDISS_CA, IVY_REDISS_WRONG_CA, IVY_REDISS_CLIENT_CERT, IVY_REDISS_CLIENT_KEY),
# IVY_REDIS_CLUSTER_PORTS (all six, FIRST-LAST) and IVY_AMQPS_WRONG_CA, one VARIABLE=VALUE a line;
# `run COMMAND...` runs a command with them exported (in the checkout's root, as every command here).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD/.services
redis_port=${IVY_REDIS_PORT:-6390}
rediss_port=${IVY_REDISS_PORT:-6392}
rediss_cert_port=${IVY_REDISS_CERT_PORT:-6393}
rediss_user=ivy
rediss_password=ivy-tls-password
redis_tls_dir=$root/redis-tls/tls
redis_cluster_ports=${IVY_REDIS_CLUSTER_PORTS:-6401}
redis_cluster_first=${redis_cluster_ports%-*}
redis_cluster_last=$((redis_cluster_first + 5))
if [[ ! $redis_cluster_first =~ ^[0-9]+$ ]] ||
  { [[ $redis_cluster_ports == *-* ]] && [ "${redis_cluster_ports#*-}" != "$redis_cluster_last" ]; }; then
  echo "services: IVY_REDIS_CLUSTER_PORTS is the first of six ports, or FIRST-LAST of six; not $redis_cluster_ports" >&2
  exit 2
fi
redis_cluster_timeout=${IVY_REDIS_CLUSTER_TIMEOUT:-60}
ironmq_port=${IVY_IRONMQ_PORT:-8690}
ironmq_token=ivy-test-token
ironmq_project=ivytest
amqp_port=${IVY_AMQP_PORT:-5690}
amqps_port=${IVY_AMQPS_PORT:-5691}
rabbitmq_dist_port=${IVY_RABBITMQ_DIST_PORT:-25690}
rabbitmq_epmd_port=${IVY_RABBITMQ_EPMD_PORT:-4390}
rabbitmq_ctl_ports=${IVY_RABBITMQ_CTL_PORTS:-35690-35699}
rabbitmq_start_timeout=${IVY_RABBITMQ_START_TIMEOUT:-120}
# Another node beside it (a cluster's, scripts/amqp-cluster-test.sh): IVY_RABBITMQ_NAME names it
# (its directory .services/rabbitmq-NAME) and IVY_RABBITMQ_COOKIE gives the cluster's cookie.
rabbitmq_name=${IVY_RABBITMQ_NAME:-ivytest}
rabbitmq_node=$rabbitmq_name@127.0.0.1
rabbitmq_link=$root/rabbitmq
[ "$rabbitmq_name" = ivytest ] || rabbitmq_link=$root/rabbitmq-$rabbitmq_name
rabbitmq_vhost=ivytest
rabbitmq_user=ivy
rabbitmq_password=ivy-test-password
rabbitmq_bin=/usr/lib/rabbitmq/bin   # the package's own scripts, not /usr/sbin's wrappers

wait_for() {  # wait_for DESCRIPTION COMMAND...: readiness check, bounded to 30 s
  local description=$1; shift
  for _ in $(seq 1 300); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.1
  done
  echo "services: $description did not become ready" >&2
  return 1
}

tls_openssl() {  # tls_openssl ARGUMENTS...: openssl, whose chatter shows only when it fails
  local output
  if ! output=$(openssl "$@" 2>&1); then
    echo "services: openssl $1 failed: $output" >&2
    return 1
  fi
}

tls_ca() {  # tls_ca DIR NAME SUBJECT: a self-signed CA, DIR/NAME.pem and DIR/NAME.key
  tls_openssl req -x509 -config "$1/openssl.cnf" -extensions ca -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
    -nodes -keyout "$1/$2.key.new" -out "$1/$2.pem.new" -days 3650 -subj "$3"
  mv "$1/$2.key.new" "$1/$2.key"
  mv "$1/$2.pem.new" "$1/$2.pem"
}

tls_signed() {  # tls_signed DIR NAME KEY EXTENSIONS CN: DIR/NAME.pem signed by DIR/ca.pem, its key DIR/KEY
  local serial
  serial=0x$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
  tls_openssl req -new -config "$1/openssl.cnf" -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$1/$3" -out "$1/$2.csr" -subj "/O=Ivy for Swift tests/CN=$5"
  tls_openssl x509 -req -in "$1/$2.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" -set_serial "$serial" \
    -days 3650 -extfile "$1/openssl.cnf" -extensions "$4" -out "$1/$2.pem"
  rm -f "$1/$2.csr"
}

# tls_throwaway DIR SAN SERVER-KEY [CLIENT-KEY]: in DIR, made once and kept while DIR lives, a
# throwaway CA (ca.pem, ca.key), the server's certificate for SAN (an openssl subjectAltName, e.g.
# IP:127.0.0.1,DNS:localhost) signed by it (server.pem, its key SERVER-KEY), with CLIENT-KEY a
# client's signed by it too (client.pem, its key CLIENT-KEY), and wrong-ca.pem, another CA, which
# signed nothing. Keys for the caller alone, certificates readable by all.
tls_throwaway() {
  local dir=$1 san=$2 server_key=$3 client_key=${4:-}
  mkdir -p "$dir"
  # A configuration of our own: nothing from the system's openssl.cnf.
  cat >"$dir/openssl.cnf" <<CNF
[req]
distinguished_name = name
prompt = no
[name]
[ca]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
[server]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = $san
[client]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
CNF
  (
    umask 077  # the keys; the certificates are made readable below
    if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
      rm -f "$dir/server.pem" "$dir/$server_key" "$dir/client.pem"
      [ -z "$client_key" ] || rm -f "$dir/$client_key"
      tls_ca "$dir" ca "/O=Ivy for Swift tests/CN=Ivy throwaway test CA"
    fi
    if [ ! -s "$dir/$server_key" ] ||
      ! openssl verify -CAfile "$dir/ca.pem" -verify_ip 127.0.0.1 "$dir/server.pem" >/dev/null 2>&1; then
      tls_signed "$dir" server "$server_key" server 127.0.0.1
    fi
    if [ -n "$client_key" ] && { [ ! -s "$dir/$client_key" ] ||
      ! openssl verify -CAfile "$dir/ca.pem" -purpose sslclient "$dir/client.pem" >/dev/null 2>&1; }; then
      tls_signed "$dir" client "$client_key" client "Ivy test client"
    fi
    if [ ! -s "$dir/wrong-ca.pem" ]; then  # for the tests: a CA that signed nothing of ours
      tls_ca "$dir" wrong-ca "/O=Ivy for Swift tests/CN=Ivy throwaway wrong CA"
      rm -f "$dir/wrong-ca.key"
    fi
  )
  chmod 644 "$dir/ca.pem" "$dir/server.pem" "$dir/wrong-ca.pem"
  [ -z "$client_key" ] || chmod 644 "$dir/client.pem"
}

redis_alive() {  # redis_alive PID: still a redis-server, not a recycled pid nor a zombie yet to be reaped
  local state
  state=$(ps -o stat=,comm= -p "$1" 2>/dev/null) || return 1
  [[ $state != Z* && $state == *redis-server ]]
}

redis_stop() {  # redis_stop DIR REDIS-CLI-ARGUMENTS...: the redis-server of DIR/redis.pid, gone in 10 s
  local dir=$1 pid
  shift
  [ -f "$dir/redis.pid" ] || return 0
  pid=$(cat "$dir/redis.pid")
  redis-cli "$@" shutdown nosave >/dev/null 2>&1 || true
  for _ in $(seq 1 100); do
    redis_alive "$pid" || break
    sleep 0.1
  done
  if redis_alive "$pid"; then
    echo "services: redis-server $pid of $dir did not stop in 10 s; killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$dir/redis.pid"
}

redis_log_tail() {  # redis_log_tail DIR: the end of DIR/redis.log, after a failure
  echo "services: the end of $1/redis.log:" >&2
  tail -n 20 "$1/redis.log" 2>/dev/null | sed 's/^/  /' >&2 || true
}

redis_up() {
  mkdir -p "$root/redis"
  if redis-cli -h 127.0.0.1 -p "$redis_port" ping >/dev/null 2>&1; then
    echo "services: redis already answers on 127.0.0.1:$redis_port" >&2
    return 0
  fi
  redis-server --bind 127.0.0.1 --port "$redis_port" --dir "$root/redis" --appendonly yes \
    --daemonize yes --pidfile "$root/redis/redis.pid" --logfile "$root/redis/redis.log" --save "" \
    --protected-mode yes
  wait_for "redis on 127.0.0.1:$redis_port" redis-cli -h 127.0.0.1 -p "$redis_port" ping
  echo "services: redis on 127.0.0.1:$redis_port" >&2
}

redis_down() {
  redis_stop "$root/redis" -h 127.0.0.1 -p "$redis_port"
}

# The TLS Redis servers: $rediss_port with a client certificate optional, $rediss_cert_port with
# one required; both with the certificates of $redis_tls_dir, TLS only (--port 0).
redis_tls_cli() {  # redis_tls_cli PORT REDIS-CLI-ARGUMENTS...: redis-cli over TLS, with the client certificate
  local port=$1
  shift
  redis-cli --tls --cacert "$redis_tls_dir/ca.pem" --cert "$redis_tls_dir/client.pem" \
    --key "$redis_tls_dir/client-key.pem" -h 127.0.0.1 -p "$port" "$@"
}

redis_tls_server() {  # redis_tls_server DIR PORT AUTH-CLIENTS ARGUMENTS...: one, unless it answers
  local dir=$1 port=$2 auth_clients=$3
  shift 3
  mkdir -p "$dir"
  if redis_tls_cli "$port" ping >/dev/null 2>&1; then
    echo "services: TLS redis already answers on 127.0.0.1:$port" >&2
    return 0
  fi
  rm -f "$dir/redis.pid"
  redis-server --bind 127.0.0.1 --port 0 --tls-port "$port" --tls-cert-file "$redis_tls_dir/server.pem" \
    --tls-key-file "$redis_tls_dir/server-key.pem" --tls-ca-cert-file "$redis_tls_dir/ca.pem" \
    --tls-auth-clients "$auth_clients" --dir "$dir" --appendonly yes --daemonize yes \
    --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --save "" --protected-mode yes "$@" ||
    { redis_log_tail "$dir"; return 1; }
  if ! wait_for "TLS redis on 127.0.0.1:$port" redis_tls_cli "$port" ping; then
    redis_log_tail "$dir"
    return 1
  fi
  echo "services: TLS redis on 127.0.0.1:$port (client certificate: $auth_clients)" >&2
}

redis_tls_up() {
  if ! command -v openssl >/dev/null 2>&1; then
    echo "services: no openssl, for TLS redis's test certificates (scripts/install-deps.sh test installs it)" >&2
    return 1
  fi
  tls_throwaway "$redis_tls_dir" IP:127.0.0.1,DNS:localhost server-key.pem client-key.pem
  # The ACL user as separate arguments: redis-server quotes each one of them as a whole.
  redis_tls_server "$root/redis-tls" "$rediss_port" optional \
    --user "$rediss_user" on ">$rediss_password" '~*' '&*' '+@all'
  redis_tls_server "$root/redis-tls-cert" "$rediss_cert_port" yes
}

redis_tls_down() {
  redis_stop "$root/redis-tls" --tls --cacert "$redis_tls_dir/ca.pem" -h 127.0.0.1 -p "$rediss_port"
  redis_stop "$root/redis-tls-cert" --tls --cacert "$redis_tls_dir/ca.pem" --cert "$redis_tls_dir/client.pem" \
    --key "$redis_tls_dir/client-key.pem" -h 127.0.0.1 -p "$rediss_cert_port"
}

# The Redis Cluster: six nodes on 127.0.0.1, $redis_cluster_first to $redis_cluster_last, each in
# .services/redis-cluster/PORT; made anew whenever it is not up and ok, since the cluster's state
# in an old nodes.conf would be stale.
redis_cluster_ports() { seq "$redis_cluster_first" "$redis_cluster_last"; }

redis_cluster_node_ok() {  # redis_cluster_node_ok PORT: the node sees an ok cluster of all six,
  # and is a master with its replica attached, or a replica whose link to its master is up
  local info replication
  info=$(redis-cli -h 127.0.0.1 -p "$1" cluster info 2>/dev/null) || return 1
  grep -q '^cluster_state:ok' <<<"$info" || return 1
  grep -q '^cluster_known_nodes:6\b' <<<"$info" || return 1
  replication=$(redis-cli -h 127.0.0.1 -p "$1" info replication 2>/dev/null) || return 1
  grep -q -e '^connected_slaves:[1-9]' -e '^master_link_status:up' <<<"$replication"
}

redis_cluster_ok() {  # every node of ours agrees
  local port
  for port in $(redis_cluster_ports); do redis_cluster_node_ok "$port" || return 1; done
}

redis_cluster_up() {
  local port dir nodes=() deadline
  if redis_cluster_ok; then
    echo "services: the Redis Cluster already answers, ok, on 127.0.0.1:$redis_cluster_first-$redis_cluster_last" >&2
    return 0
  fi
  redis_cluster_down  # what is left of an earlier one, running or not
  for port in $(redis_cluster_ports); do
    if redis-cli -h 127.0.0.1 -p "$port" ping >/dev/null 2>&1; then
      echo "services: something not ours answers on 127.0.0.1:$port, a port of the Redis Cluster" >&2
      return 1
    fi
  done
  for port in $(redis_cluster_ports); do
    dir=$root/redis-cluster/$port
    mkdir -p "$dir"
    redis-server --bind 127.0.0.1 --port "$port" --cluster-enabled yes --cluster-node-timeout 2000 \
      --cluster-config-file nodes.conf --cluster-announce-ip 127.0.0.1 --dir "$dir" --appendonly yes \
      --save "" --daemonize yes --pidfile "$dir/redis.pid" --logfile "$dir/redis.log" --protected-mode yes ||
      { redis_log_tail "$dir"; redis_cluster_down; return 1; }
    nodes+=("127.0.0.1:$port")
  done
  for port in $(redis_cluster_ports); do
    if ! wait_for "Redis Cluster node 127.0.0.1:$port" redis-cli -h 127.0.0.1 -p "$port" ping; then
      redis_log_tail "$root/redis-cluster/$port"
      redis_cluster_down
      return 1
    fi
  done
  if ! redis-cli --cluster create "${nodes[@]}" --cluster-replicas 1 --cluster-yes \
    >"$root/redis-cluster/create.log" 2>&1; then
    echo "services: redis-cli --cluster create failed:" >&2
    sed 's/^/  /' "$root/redis-cluster/create.log" >&2
    redis_cluster_down
    return 1
  fi
  deadline=$((SECONDS + redis_cluster_timeout))
  until redis_cluster_ok; do
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "services: the Redis Cluster on 127.0.0.1:$redis_cluster_first-$redis_cluster_last was not ok" \
        "on all six nodes in $redis_cluster_timeout s; stopping it. Its nodes:" >&2
      for port in $(redis_cluster_ports); do
        echo "  $port: $( (redis-cli -h 127.0.0.1 -p "$port" cluster info; redis-cli -h 127.0.0.1 -p "$port" \
          info replication) 2>&1 | grep -e cluster_state -e cluster_known_nodes -e '^role' -e master_link_status \
          -e connected_slaves -e rror | tr -d '\r' | paste -sd ' ')" >&2
      done
      redis_cluster_down
      return 1
    fi
    sleep 0.2
  done
  echo "services: Redis Cluster on 127.0.0.1:$redis_cluster_first-$redis_cluster_last" \
    "(3 masters, a replica each; bus ports $((redis_cluster_first + 10000))-$((redis_cluster_last + 10000)))" >&2
}

redis_cluster_down() {
  local port
  for port in $(redis_cluster_ports); do
    redis_stop "$root/redis-cluster/$port" -h 127.0.0.1 -p "$port"
  done
  rm -rf "$root/redis-cluster"
}

ironmq_answers() {  # the queue list, authorised: HTTP 200
  python3 -c 'import sys, urllib.request
request = urllib.request.Request(sys.argv[1], headers={"Authorization": "OAuth " + sys.argv[2]})
urllib.request.urlopen(request, timeout=2).read()' \
    "http://127.0.0.1:$ironmq_port/3/projects/$ironmq_project/queues" "$ironmq_token"
}

ironmq_up() {
  mkdir -p "$root/ironmq"
  if ironmq_answers 2>/dev/null; then
    echo "services: IronMQ already answers on 127.0.0.1:$ironmq_port" >&2
    return 0
  fi
  nohup python3 Tools/ironmq-emulator/ironmq_emulator.py --host 127.0.0.1 --port "$ironmq_port" \
    --token "$ironmq_token" --project "$ironmq_project" --min-timeout 1 \
    >"$root/ironmq/ironmq.log" 2>&1 &
  echo $! >"$root/ironmq/ironmq.pid"
  wait_for "IronMQ on 127.0.0.1:$ironmq_port" ironmq_answers
  echo "services: IronMQ on 127.0.0.1:$ironmq_port" >&2
}

ironmq_down() {
  if [ -f "$root/ironmq/ironmq.pid" ]; then
    kill "$(cat "$root/ironmq/ironmq.pid")" 2>/dev/null || true
    rm -f "$root/ironmq/ironmq.pid"
  fi
}

# RabbitMQ. As root, /usr/sbin/rabbitmq-server and /usr/sbin/rabbitmqctl are Debian wrappers that
# `su rabbitmq`, which sets HOME=/var/lib/rabbitmq and so the system node's Erlang cookie; we run the
# package's scripts in $rabbitmq_bin ourselves instead, as `rabbitmq` (setpriv) when root, else as
# the caller, with HOME at the node's directory for a cookie of its own.
rabbitmq_as=()
[ "$(id -u)" -ne 0 ] || rabbitmq_as=(setpriv --reuid=rabbitmq --regid=rabbitmq --init-groups --)

rabbitmq_dir() {  # the node's directory: .services/rabbitmq, or the temporary one it links to
  readlink -f "$rabbitmq_link"
}

rabbitmq_env() {  # exports what rabbitmq-server and rabbitmqctl both read; call it in a subshell
  local dir name
  dir=$(rabbitmq_dir)
  for name in $(compgen -e); do [[ $name != RABBITMQ_* ]] || unset "$name"; done  # only ours
  export HOME=$dir   # $HOME/.erlang.cookie, for the node and rabbitmqctl alike
  export ERL_EPMD_PORT=$rabbitmq_epmd_port ERL_EPMD_ADDRESS=127.0.0.1
  # A long name on an address: Erlang then resolves no host name, and a minimal system may
  # have no /etc/hosts to resolve "localhost" with (epmd_error nxdomain).
  export RABBITMQ_NODENAME=$rabbitmq_node RABBITMQ_USE_LONGNAME=true
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_NODE_PORT=$amqp_port
  export RABBITMQ_DIST_PORT=$rabbitmq_dist_port
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_DIST_PORT_MIN=${rabbitmq_ctl_ports%-*} RABBITMQ_CTL_DIST_PORT_MAX=${rabbitmq_ctl_ports#*-}
  # Nothing from /etc/rabbitmq: our own (empty) rabbitmq-env.conf, configuration, conf.d, plugins.
  export RABBITMQ_CONF_ENV_FILE=$dir/rabbitmq-env.conf
  export RABBITMQ_CONFIG_FILE=$dir/rabbitmq.conf RABBITMQ_CONFIG_FILES=$dir/conf.d
  export RABBITMQ_ADVANCED_CONFIG_FILE=$dir/advanced.config
  export RABBITMQ_ENABLED_PLUGINS_FILE=$dir/enabled_plugins
  export RABBITMQ_MNESIA_BASE=$dir/mnesia RABBITMQ_LOG_BASE=$dir/log
  export RABBITMQ_PID_FILE=$dir/rabbitmq.pid
}

rabbitmqctl_node() {  # rabbitmqctl_node ARGUMENTS...: rabbitmqctl against our node, never another
  (rabbitmq_env; exec "${rabbitmq_as[@]}" "$rabbitmq_bin/rabbitmqctl" -n "$rabbitmq_node" "$@")
}

rabbitmq_alive() {  # rabbitmq_alive PID: still our node's VM or launcher, not a recycled pid
  ps -o args= -p "$1" 2>/dev/null | grep -q -e beam -e rabbitmq-server
}

rabbitmq_launcher_alive() {  # rabbitmq-server's shell, the Erlang VM's parent while it runs
  local dir
  dir=$(rabbitmq_dir)
  [ -f "$dir/launcher.pid" ] && rabbitmq_alive "$(cat "$dir/launcher.pid")"
}

rabbitmq_log_tail() {
  local dir
  dir=$(rabbitmq_dir)
  echo "services: the end of RabbitMQ's logs in $dir/log:" >&2
  tail -n 30 "$dir/log/startup.log" "$dir/log/$rabbitmq_node.log" 2>/dev/null | sed 's/^/  /' >&2 || true
}

rabbitmq_tls_answers() {  # the TLS listener completes a handshake and its certificate verifies
  openssl s_client -connect "127.0.0.1:$amqps_port" -CAfile "$(rabbitmq_dir)/tls/ca.pem" \
    -verify_ip 127.0.0.1 -verify_return_error </dev/null >/dev/null 2>&1
}

rabbitmq_prepare() {  # the node's directory, cookie and configuration, owned by the node's user
  local dir
  mkdir -p "$root"
  if [ -L "$rabbitmq_link" ] && [ ! -e "$rabbitmq_link" ]; then rm "$rabbitmq_link"; fi  # /tmp emptied
  if [ ! -e "$rabbitmq_link" ]; then
    if "${rabbitmq_as[@]}" test -x "$root"; then
      mkdir "$rabbitmq_link"
    else  # a checkout `rabbitmq` cannot reach (under /root, say): a temporary directory instead
      ln -s "$(mktemp -d "${TMPDIR:-/tmp}/ivy-rabbitmq.XXXXXX")" "$rabbitmq_link"
    fi
  fi
  dir=$(rabbitmq_dir)
  mkdir -p "$dir/mnesia" "$dir/log" "$dir/conf.d"
  rm -f "$dir/launcher.pid" "$dir/rabbitmq.pid" "$dir/provisioned"   # of a node that died
  : >"$dir/rabbitmq-env.conf"
  echo '[].' >"$dir/enabled_plugins"
  # Not DNS:localhost: the TLS test expects a connection through `localhost` to fail its host name check.
  tls_throwaway "$dir/tls" IP:127.0.0.1 server.key
  # The broker asks for no client certificate (verify_none), so the tests need none.
  printf '%s\n' "listeners.tcp.default = 127.0.0.1:$amqp_port" "listeners.ssl.default = 127.0.0.1:$amqps_port" \
    "ssl_options.cacertfile = $dir/tls/ca.pem" "ssl_options.certfile = $dir/tls/server.pem" \
    "ssl_options.keyfile = $dir/tls/server.key" 'ssl_options.verify = verify_none' \
    'ssl_options.fail_if_no_peer_cert = false' 'log.console = false' >"$dir/rabbitmq.conf"
  if [ -n "${IVY_RABBITMQ_COOKIE:-}" ]; then
    [ ! -e "$dir/.erlang.cookie" ] || chmod 600 "$dir/.erlang.cookie"
    (umask 077; printf '%s' "$IVY_RABBITMQ_COOKIE" >"$dir/.erlang.cookie")
  elif [ ! -s "$dir/.erlang.cookie" ]; then
    (umask 077; od -An -N24 -tx1 /dev/urandom | tr -d ' \n' >"$dir/.erlang.cookie")
  fi
  chmod 400 "$dir/.erlang.cookie"
  [ "$(id -u)" -ne 0 ] || chown -R rabbitmq:rabbitmq "$dir"
}

rabbitmq_provision() {  # vhost, user, permissions: made, or made right, whether or not they exist
  rabbitmqctl_node -q add_vhost "$rabbitmq_vhost" >/dev/null 2>&1 ||
    rabbitmqctl_node -q list_vhosts name | grep -qx "$rabbitmq_vhost"
  rabbitmqctl_node -q add_user "$rabbitmq_user" "$rabbitmq_password" >/dev/null 2>&1 ||
    rabbitmqctl_node -q change_password "$rabbitmq_user" "$rabbitmq_password" >/dev/null
  rabbitmqctl_node -q set_permissions -p "$rabbitmq_vhost" "$rabbitmq_user" '.*' '.*' '.*' >/dev/null
  touch "$(rabbitmq_dir)/provisioned"
}

rabbitmq_wait_slice() {  # rabbitmq_wait_slice DEADLINE: seconds for one await_startup, 1 to 10
  local left=$(($1 - SECONDS))
  if [ "$left" -gt 10 ]; then echo 10; elif [ "$left" -lt 1 ]; then echo 1; else echo "$left"; fi
}

rabbitmq_up() {
  if [ ! -x "$rabbitmq_bin/rabbitmq-server" ]; then
    echo "services: no $rabbitmq_bin/rabbitmq-server (scripts/install-deps.sh test installs rabbitmq-server)" >&2
    return 1
  fi
  if ! command -v openssl >/dev/null 2>&1; then
    echo "services: no openssl, for the node's test certificates (scripts/install-deps.sh test installs it)" >&2
    return 1
  fi
  local dir deadline
  if [ -e "$rabbitmq_link" ] && rabbitmqctl_node -q -t 10 ping >/dev/null 2>&1; then
    # Ours (our epmd, our cookie), perhaps still booting: wait for it as below, then done.
    if rabbitmqctl_node -q await_startup --timeout "$rabbitmq_start_timeout" >/dev/null 2>&1; then
      [ -f "$(rabbitmq_dir)/provisioned" ] || rabbitmq_provision
      if ! rabbitmq_tls_answers; then  # a node of an older services.sh, without the TLS listener
        echo "services: RabbitMQ $rabbitmq_node runs but its TLS listener does not answer on" \
          "127.0.0.1:$amqps_port with a certificate of $(rabbitmq_dir)/tls/ca.pem; \`$0 down\` and up again" >&2
        return 1
      fi
      echo "services: RabbitMQ $rabbitmq_node already answers on 127.0.0.1:$amqp_port (TLS: $amqps_port)" >&2
      return 0
    fi
    echo "services: RabbitMQ $rabbitmq_node runs but did not finish starting; stopping it" >&2
    rabbitmq_log_tail
    rabbitmq_down
    return 1
  fi
  rabbitmq_prepare
  dir=$(rabbitmq_dir)
  # In the background rather than -detached: its launcher's pid tells a node that died.
  (rabbitmq_env; cd "$dir"; exec nohup "${rabbitmq_as[@]}" "$rabbitmq_bin/rabbitmq-server") \
    </dev/null >"$dir/log/startup.log" 2>&1 &
  echo $! >"$dir/launcher.pid"
  deadline=$((SECONDS + rabbitmq_start_timeout))
  until rabbitmqctl_node -q await_startup --timeout "$(rabbitmq_wait_slice "$deadline")" >/dev/null 2>&1; do
    if ! rabbitmq_launcher_alive; then
      echo "services: RabbitMQ $rabbitmq_node exited while starting" >&2
      rabbitmq_log_tail
      rabbitmq_down
      return 1
    fi
    if [ "$SECONDS" -ge "$deadline" ]; then
      echo "services: RabbitMQ $rabbitmq_node did not start in $rabbitmq_start_timeout s; stopping it" >&2
      rabbitmq_log_tail
      rabbitmq_down
      return 1
    fi
    sleep 1
  done
  rabbitmq_provision
  # await_startup returns once the listeners are up; this also checks the certificate chain.
  if ! wait_for "RabbitMQ's TLS listener on 127.0.0.1:$amqps_port" rabbitmq_tls_answers; then
    rabbitmq_log_tail
    rabbitmq_down
    return 1
  fi
  echo "services: RabbitMQ $rabbitmq_node on 127.0.0.1:$amqp_port (TLS: $amqps_port)" >&2
}

rabbitmq_down() {
  [ -e "$rabbitmq_link" ] || return 0
  local dir pids=() alive=
  dir=$(rabbitmq_dir)
  [ -f "$dir/rabbitmq.pid" ] && pids+=("$(cat "$dir/rabbitmq.pid")")    # the Erlang VM
  [ -f "$dir/launcher.pid" ] && pids+=("$(cat "$dir/launcher.pid")")    # its parent shell
  rabbitmqctl_node -q stop >/dev/null 2>&1 || true
  for _ in $(seq 1 300); do  # 30 s for both to exit
    alive=
    for pid in "${pids[@]}"; do if rabbitmq_alive "$pid"; then alive+=" $pid"; fi; done
    [ -z "$alive" ] && break
    sleep 0.1
  done
  if [ -n "$alive" ]; then
    echo "services: RabbitMQ $rabbitmq_node did not stop in 30 s; killing it" >&2
    for pid in $alive; do kill -KILL "$pid" 2>/dev/null || true; done
  fi
  # The epmd on our port, started by the node or rabbitmqctl; no node of ours is left to need it.
  (rabbitmq_env; epmd -kill >/dev/null 2>&1) || true
  if [ -L "$rabbitmq_link" ]; then rm -rf "$dir" "$rabbitmq_link"; fi
}

percent_encoded() {  # a path as a URL's query value: bytes other than [A-Za-z0-9/._~-] as %XX
  local LC_ALL=C text=$1 encoded= character index
  for ((index = 0; index < ${#text}; index++)); do
    character=${text:index:1}
    case $character in
      [A-Za-z0-9/._~-]) encoded+=$character ;;
      *) printf -v character '%%%02X' "'$character"; encoded+=$character ;;
    esac
  done
  printf '%s' "$encoded"
}

service_environment() {  # VARIABLE=VALUE lines: the servers' URLs, and the TLS files for the tests
  # Through the .services/rabbitmq link (when it is one): valid before `up` makes its target too.
  local tls=$rabbitmq_link/tls ca
  ca=$(percent_encoded "$redis_tls_dir/ca.pem")
  echo "IVY_REDIS_URL=redis://127.0.0.1:$redis_port"
  echo "IVY_IRONMQ_URL=ironmq+http://$ironmq_token@127.0.0.1:$ironmq_port/$ironmq_project?min_timeout=1"
  echo "IVY_REDISS_URL=rediss://127.0.0.1:$rediss_port?ca=$ca"
  echo "IVY_REDISS_PASSWORD_URL=rediss://$rediss_user:$rediss_password@127.0.0.1:$rediss_port?ca=$ca"
  echo "IVY_REDISS_CERT_URL=rediss://127.0.0.1:$rediss_cert_port?ca=$ca"
  echo "IVY_REDISS_CA=$redis_tls_dir/ca.pem"
  echo "IVY_REDISS_WRONG_CA=$redis_tls_dir/wrong-ca.pem"
  echo "IVY_REDISS_CLIENT_CERT=$redis_tls_dir/client.pem"
  echo "IVY_REDISS_CLIENT_KEY=$redis_tls_dir/client-key.pem"
  echo "IVY_REDIS_CLUSTER_URL=redis+cluster://127.0.0.1:$redis_cluster_first,127.0.0.1:$((redis_cluster_first + 1)),127.0.0.1:$((redis_cluster_first + 2))/"
  echo "IVY_REDIS_CLUSTER_PORTS=$redis_cluster_first-$redis_cluster_last"
  echo "IVY_AMQP_URL=amqp://$rabbitmq_user:$rabbitmq_password@127.0.0.1:$amqp_port/$rabbitmq_vhost"
  echo "IVY_AMQPS_URL=amqps://$rabbitmq_user:$rabbitmq_password@127.0.0.1:$amqps_port/$rabbitmq_vhost?cacertfile=$(percent_encoded "$tls/ca.pem")"
  echo "IVY_AMQPS_WRONG_CA=$tls/wrong-ca.pem"
}

case "${1:-}" in
  up) redis_up; redis_tls_up; redis_cluster_up; ironmq_up; rabbitmq_up ;;
  redis-cluster-up) redis_cluster_up ;;  # a fresh cluster, unless one is up and ok (tests restart it so)
  redis-cluster-down) redis_cluster_down ;;
  rabbitmq-up) rabbitmq_up ;;  # the RabbitMQ node alone (IVY_RABBITMQ_NAME and the ports say which)
  rabbitmq-down) rabbitmq_down; rm -rf "$(rabbitmq_dir)" "$rabbitmq_link" ;;
  down) redis_down; redis_tls_down; redis_cluster_down; ironmq_down; rabbitmq_down; rm -rf "$root" ;;
  env) service_environment ;;
  run)  # run COMMAND...: the command with the variables `env` prints exported
    shift
    [ "$#" -gt 0 ] || { echo "usage: $0 run COMMAND..." >&2; exit 2; }
    while IFS= read -r line; do export "$line"; done < <(service_environment)
    exec "$@" ;;
  ctl)  # rabbitmqctl against our node (tests close connections with it, as the broker would)
    shift
    [ -e "$rabbitmq_link" ] || { echo "services: no RabbitMQ node of ours in $root" >&2; exit 1; }
    rabbitmqctl_node "$@" ;;
  *) echo "usage: $0 up|down|env|run COMMAND...|ctl ARGUMENTS...|rabbitmq-up|rabbitmq-down|redis-cluster-up|redis-cluster-down" >&2
    exit 2 ;;
esac
