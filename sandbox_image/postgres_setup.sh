#!/usr/bin/env bash
# Idempotent PostgreSQL set-up for the run store's tests: Debian's postgresql installed when missing, a
# cluster created when there is none and started when it is down (pg_ctlcluster, no systemd), and a test
# role and database (rlm_test, password rlm_test, on 127.0.0.1 only: a throwaway for tests, never a
# production account). Writes the URL the tests use to $URL_FILE (.build/postgres-url); `make test`
# passes it as RLM_TEST_POSTGRES_URL. Needs root the first time; silent when everything is already done.
set -euo pipefail

log() { printf '[postgres-setup] %s\n' "$*"; }
ROLE=${RLM_TEST_PG_ROLE:-rlm_test}
DB=${RLM_TEST_PG_DB:-rlm_test}
PASSWORD=${RLM_TEST_PG_PASSWORD:-rlm_test}
URL_FILE=${URL_FILE:-.build/postgres-url}

# The first cluster pg_lsclusters lists: "version name port status ...".
cluster() { pg_lsclusters --no-header 2>/dev/null | awk 'NR==1 {print $1, $2, $3, $4}'; }

url_for() { printf 'postgresql://%s:%s@127.0.0.1:%s/%s\n' "$ROLE" "$PASSWORD" "$1" "$DB"; }

usable() {  # the test role can log in over TCP with its password
  PGPASSWORD=$PASSWORD PGCONNECT_TIMEOUT=5 psql -X -q -w -h 127.0.0.1 -p "$1" -U "$ROLE" -d "$DB" \
    -c 'select 1' >/dev/null 2>&1
}

write_url() {
  mkdir -p "$(dirname "$URL_FILE")"
  local want
  want=$(url_for "$1")
  [ -f "$URL_FILE" ] && [ "$(cat "$URL_FILE")" = "$want" ] || printf '%s\n' "$want" >"$URL_FILE"
}

if [ "$(id -u)" -ne 0 ]; then
  read -r _ _ port _ <<<"$(cluster)" || true
  if [ -n "${port:-}" ] && command -v psql >/dev/null 2>&1 && usable "$port"; then
    write_url "$port"
    exit 0
  fi
  log "error: not root and no PostgreSQL cluster with the $ROLE role answers; run 'sudo make setup' once" >&2
  exit 1
fi

if ! command -v pg_ctlcluster >/dev/null 2>&1 || ! ls /usr/lib/postgresql/*/bin/postgres >/dev/null 2>&1; then
  log "installing postgresql"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  # policy-rc.d-less containers: the package's own start attempt may fail without systemd; we start below.
  apt-get install -y -q --no-install-recommends postgresql >/dev/null
fi

if [ -z "$(cluster)" ]; then
  version=$(ls /usr/lib/postgresql | sort -V | tail -n 1)
  log "creating cluster $version/main"
  pg_createcluster "$version" main >/dev/null
fi
read -r version name port status <<<"$(cluster)"

if [ "$status" != "online" ]; then
  log "starting cluster $version/$name on port $port"
  pg_ctlcluster "$version" "$name" start
fi
for _ in $(seq 1 60); do
  if pg_isready -q -h /var/run/postgresql -p "$port"; then break; fi
  sleep 0.5
done
pg_isready -q -h /var/run/postgresql -p "$port" || { log "error: cluster $version/$name did not answer within 30 s" >&2; exit 1; }

if ! usable "$port"; then
  as_postgres() { runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 -p "$port" "$@"; }
  if [ "$(as_postgres -tAc "select 1 from pg_roles where rolname = '$ROLE'")" != 1 ]; then
    log "creating role $ROLE"
    as_postgres -c "create role $ROLE login password '$PASSWORD'"
  else
    as_postgres -c "alter role $ROLE login password '$PASSWORD'"
  fi
  if [ "$(as_postgres -tAc "select 1 from pg_database where datname = '$DB'")" != 1 ]; then
    log "creating database $DB"
    as_postgres -c "create database $DB owner $ROLE"
  fi
  usable "$port" || { log "error: role $ROLE cannot log in on 127.0.0.1:$port (pg_hba.conf?)" >&2; exit 1; }
fi
write_url "$port"
