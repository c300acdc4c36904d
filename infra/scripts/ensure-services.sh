#!/usr/bin/env bash
# Make sure the servers the tests and the distributed mode need are up on this machine:
# Redis (6379), RabbitMQ (5672) and a MongoDB-wire server (27018, SecantusDB for local
# development and tests; point SPANE_TEST_MONGODB_URL at a real mongod to use that).
# Starts what is not running, installs what is missing; idempotent.
set -euo pipefail
cd "$(dirname "$0")/../.."

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && exec 3>&- 3<&-; }

wait_port() {  # name port seconds
  for _ in $(seq 1 "$3"); do port_open "$2" && return 0; sleep 1; done
  echo "ensure-services: $1 did not come up on port $2 within $3 s" >&2
  return 1
}

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then apt-get update -qq; APT_UPDATED=1; fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
}

ensure_redis() {
  port_open 6379 && return 0
  command -v redis-server >/dev/null || apt_install redis-server
  mkdir -p /var/lib/redis /var/log/redis
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" \
    --appendonly no --dir /var/lib/redis --logfile /var/log/redis/ci.log
  wait_port Redis 6379 30
}

ensure_rabbitmq() {
  port_open 5672 && return 0
  command -v rabbitmq-server >/dev/null || apt_install rabbitmq-server
  rabbitmq-server -detached
  wait_port RabbitMQ 5672 90
}

MONGO_PORT="${SPANE_MONGO_PORT:-27018}"
MONGO_VENV="${SPANE_MONGO_VENV:-.venv-mongo}"
MONGO_DATA="${SPANE_MONGO_DATA:-.data/mongo}"

ensure_mongo() {
  if [ -n "${SPANE_TEST_MONGODB_URL:-}" ]; then return 0; fi
  port_open "$MONGO_PORT" && return 0
  if [ ! -x "$MONGO_VENV/bin/secantusd-py" ]; then
    python3 -m venv "$MONGO_VENV"
    "$MONGO_VENV/bin/pip" install -q "SecantusDB==0.7.0b3"
  fi
  mkdir -p "$MONGO_DATA" .data
  nohup "$MONGO_VENV/bin/secantusd-py" --host 127.0.0.1 --port "$MONGO_PORT" \
    --storage-path "$MONGO_DATA" >.data/mongo.log 2>&1 &
  wait_port "MongoDB-compatible server (SecantusDB)" "$MONGO_PORT" 60
}

ensure_redis
ensure_rabbitmq
ensure_mongo
echo "ensure-services: redis :6379, rabbitmq :5672, mongodb ${SPANE_TEST_MONGODB_URL:-:$MONGO_PORT} are up"
