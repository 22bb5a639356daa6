# Sourced by scripts/test (and by hand before `cargo bench --bench sql`):
# `start_postgres LOGDIR` starts a private PostgreSQL cluster in a temporary
# folder on a free loopback port, with a read-write role (owner of the
# database nuthatch_test) and a read-only one, and exports
# NUTHATCH_TEST_PG_* for the tests; `stop_postgres` stops it and removes the
# folder. PostgreSQL refuses to run as root, so under root the cluster runs
# as the unprivileged user nuthatch-pg. The server comes from the system's
# packages, installed when missing.

start_postgres() {
  local logs=$1
  pg_initdb=$(ls /usr/lib/postgresql/*/bin/initdb 2>/dev/null | sort -V | tail -1 || true)
  if [ -z "$pg_initdb" ]; then
    sudo=()
    [ "$(id -u)" -ne 0 ] && sudo=(sudo)
    "${sudo[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq postgresql >/dev/null
    pg_initdb=$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -1)
  fi
  pg_bin=$(dirname "$pg_initdb")
  pg_as=()
  pg_data=$(mktemp -d)
  if [ "$(id -u)" -eq 0 ]; then
    id -u nuthatch-pg >/dev/null 2>&1 || useradd --system --no-create-home --shell /usr/sbin/nologin nuthatch-pg
    chown nuthatch-pg "$pg_data"
    pg_as=(runuser -u nuthatch-pg --)
  fi
  chmod 700 "$pg_data"
  pg_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
  pg_secret() { python3 -c 'import secrets; print(secrets.token_hex(12))'; }
  pg_admin_password=$(pg_secret)
  pg_writer_password=$(pg_secret)
  pg_reader_password=$(pg_secret)
  echo "$pg_admin_password" > "$pg_data/pwfile"
  [ "$(id -u)" -eq 0 ] && chown nuthatch-pg "$pg_data/pwfile"
  "${pg_as[@]}" "$pg_bin/initdb" -D "$pg_data/cluster" -U postgres --pwfile="$pg_data/pwfile" \
    --auth-local=trust --auth-host=scram-sha-256 >"$logs/initdb.log" 2>&1
  rm -f "$pg_data/pwfile"
  "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data/cluster" -l "$pg_data/server.log" -w \
    -o "-p $pg_port -k $pg_data -c listen_addresses=127.0.0.1 -c max_connections=60" start >/dev/null
  "${pg_as[@]}" "$pg_bin/psql" -h "$pg_data" -p "$pg_port" -U postgres -v ON_ERROR_STOP=1 -q \
    -v writer="$pg_writer_password" -v reader="$pg_reader_password" <<'SQL'
CREATE ROLE nuthatch_writer LOGIN PASSWORD :'writer';
CREATE ROLE nuthatch_reader LOGIN PASSWORD :'reader';
CREATE DATABASE nuthatch_test OWNER nuthatch_writer;
\c nuthatch_test
GRANT USAGE ON SCHEMA public TO nuthatch_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE nuthatch_writer GRANT USAGE ON SCHEMAS TO nuthatch_reader;
ALTER DEFAULT PRIVILEGES FOR ROLE nuthatch_writer GRANT SELECT ON TABLES TO nuthatch_reader;
SQL
  export NUTHATCH_TEST_PG_HOST=127.0.0.1 NUTHATCH_TEST_PG_PORT="$pg_port" NUTHATCH_TEST_PG_DATABASE=nuthatch_test
  export NUTHATCH_TEST_PG_WRITER=nuthatch_writer NUTHATCH_TEST_PG_WRITER_PASSWORD="$pg_writer_password"
  export NUTHATCH_TEST_PG_READER=nuthatch_reader NUTHATCH_TEST_PG_READER_PASSWORD="$pg_reader_password"
  export NUTHATCH_TEST_PG_ADMIN=postgres NUTHATCH_TEST_PG_ADMIN_PASSWORD="$pg_admin_password"
  echo "PostgreSQL test server on 127.0.0.1:$pg_port ($("$pg_bin/postgres" --version))"
}

stop_postgres() {
  if [ -n "${pg_data:-}" ]; then
    "${pg_as[@]}" "$pg_bin/pg_ctl" -D "$pg_data/cluster" -m immediate stop >/dev/null 2>&1 || true
    rm -rf "$pg_data"
    pg_data=
  fi
}
