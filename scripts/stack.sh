#!/usr/bin/env bash
# Local stack for usage-tracker without Docker: Tansu (Kafka-compatible broker), the schema
# registry stand-in (dev/test only) and a Postgres database. Idempotent.
#
#   scripts/stack.sh up|down|status
#
# Settings (environment):
#   STACK_KAFKA_PORT     broker port                          (default 9092)
#   STACK_REGISTRY_PORT  registry stand-in port               (default 8081)
#   STACK_BROKER_STORAGE sqlite | memory                      (default sqlite: see the broker note below)
#   STACK_PG_HOST/PORT   Postgres host and port               (default 127.0.0.1 / 5432)
#   STACK_PG_USER        Postgres user                        (default postgres)
#   STACK_DB             database created for the service     (default usage_tracker)
# Writes target/stack/env with KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL and DATABASE_URL.
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
dir="$root/target/stack"
kafka_port=${STACK_KAFKA_PORT:-9092}
registry_port=${STACK_REGISTRY_PORT:-8081}
storage=${STACK_BROKER_STORAGE:-sqlite}
pg_host=${STACK_PG_HOST:-127.0.0.1}
pg_port=${STACK_PG_PORT:-5432}
pg_user=${STACK_PG_USER:-postgres}
db=${STACK_DB:-usage_tracker}
tansu_version=0.6.0

log() { printf 'stack: %s\n' "$*" >&2; }

alive() { [ -f "$dir/$1.pid" ] && kill -0 "$(cat "$dir/$1.pid")" 2>/dev/null; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_port() { # name port seconds
  for _ in $(seq 1 $(($3 * 10))); do
    port_open "$2" && return 0
    alive "$1" || { log "$1 exited; last log lines:"; tail -20 "$dir/$1.log" >&2; return 1; }
    sleep 0.1
  done
  log "$1 did not open port $2 within $3 s"; return 1
}

ensure_tansu() {
  if command -v tansu >/dev/null 2>&1 && tansu --version 2>/dev/null | grep -q "$tansu_version"; then
    return
  fi
  log "installing tansu $tansu_version (first time only; tens of minutes on two cores)"
  cargo install tansu --version "$tansu_version" --locked --features dynostore,libsql
}

start_postgres() {
  if ! pg_isready -q -h "$pg_host" -p "$pg_port"; then
    log "starting the Postgres cluster"
    pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | sort -V | tail -1)" main start
    for _ in $(seq 1 50); do pg_isready -q -h "$pg_host" -p "$pg_port" && break; sleep 0.2; done
  fi
  if ! psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -tAc "select 1 from pg_database where datname='$db'" | grep -q 1; then
    log "creating database $db"
    psql -h "$pg_host" -p "$pg_port" -U "$pg_user" -d postgres -qc "create database \"$db\""
  fi
}

start_broker() {
  alive tansu && return
  if port_open "$kafka_port"; then
    log "port $kafka_port is already served (a broker started elsewhere?); using it"
    return
  fi
  # Broker quirk (Tansu 0.6, memory:// engine only): a fetch at an offset inside a record batch
  # answers from the *next* batch, so a consumer resuming inside a batch silently skips the rest
  # of it. The sqlite:// engine honours the fetch contract (tests/broker_contract.rs probes it),
  # so it is the default; memory:// stays selectable for experiments only.
  # Tansu resolves a sqlite:// path relative to its working directory (even after ///), so it
  # runs in $dir with a relative file name.
  local engine=memory://tansu/
  [ "$storage" = sqlite ] && engine="sqlite://tansu.db"
  log "starting tansu on 127.0.0.1:$kafka_port ($engine in $dir)"
  (cd "$dir" && exec nohup tansu broker \
    --listener-url "tcp://127.0.0.1:$kafka_port" \
    --advertised-listener-url "tcp://127.0.0.1:$kafka_port" \
    --storage-engine "$engine" >"$dir/tansu.log" 2>&1) &
  echo $! >"$dir/tansu.pid"
  wait_port tansu "$kafka_port" 30
}

start_registry() {
  alive registry && return
  if port_open "$registry_port"; then
    log "port $registry_port is already served (a registry started elsewhere?); using it"
    return
  fi
  cargo build --quiet -p registry-standin
  log "starting the schema registry stand-in on 127.0.0.1:$registry_port"
  nohup "$root/target/debug/registry-standin" --listen "127.0.0.1:$registry_port" >"$dir/registry.log" 2>&1 &
  echo $! >"$dir/registry.pid"
  wait_port registry "$registry_port" 30
}

write_env() {
  # Producers batch as real agents do (librdkafka defaults, linger 20 ms in the tracker's own).
  cat >"$dir/usage-tracker.toml" <<TOML
[kafka.consumer_properties]
"session.timeout.ms" = "6000"

[pipeline]
checkpoint_interval = "2s"
TOML
  cat >"$dir/env" <<ENV
export USAGE_TRACKER_CONFIG=$dir/usage-tracker.toml
export KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:$kafka_port
export SCHEMA_REGISTRY_URL=http://127.0.0.1:$registry_port
export DATABASE_URL=postgres://$pg_user@$pg_host:$pg_port/$db
ENV
}

up() {
  mkdir -p "$dir"
  ensure_tansu
  start_postgres
  start_broker
  start_registry
  write_env
  log "up; load the settings with: . target/stack/env"
}

down() {
  for name in registry tansu; do
    if alive "$name"; then
      log "stopping $name"
      kill "$(cat "$dir/$name.pid")" 2>/dev/null || true
    fi
    rm -f "$dir/$name.pid"
  done
}

status() {
  local rc=0
  for name in tansu registry; do
    if alive "$name"; then log "$name running (pid $(cat "$dir/$name.pid"))"; else log "$name stopped"; rc=1; fi
  done
  if pg_isready -q -h "$pg_host" -p "$pg_port"; then log "postgres ready"; else log "postgres down"; rc=1; fi
  return $rc
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  *) echo "usage: $0 up|down|status" >&2; exit 64 ;;
esac
