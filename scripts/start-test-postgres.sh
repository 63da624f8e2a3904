#!/usr/bin/env bash
# Start a throwaway PostgreSQL cluster on 127.0.0.1 (a free port, trust auth, fsync off) under a temp dir
# and print its URL, e.g. `export AARLAB_TEST_PG_URL=$(bash scripts/start-test-postgres.sh)`.
# initdb refuses to run as root, so as root the cluster runs as the `postgres` user.
# scripts/stop-test-postgres.sh stops it and removes the directory.
set -euo pipefail
state="${TMPDIR:-/tmp}/aarlab-test-postgres.state"
bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do bindir="$d"; break; done
if [ -z "$bindir" ]; then
  bindir="$(dirname "$(command -v initdb 2>/dev/null || true)")"
fi
if [ -z "$bindir" ] || [ ! -x "$bindir/initdb" ] || [ ! -x "$bindir/pg_ctl" ]; then
  echo "start-test-postgres: initdb/pg_ctl not found (apt-get install postgresql)" >&2
  exit 1
fi
if [ -f "$state" ]; then
  # A cluster from an earlier start: reuse it while it runs, forget it when it is gone.
  old_dir="$(sed -n 1p "$state")"; old_port="$(sed -n 3p "$state")"
  if [ -f "$old_dir/data/postmaster.pid" ] && "$bindir/pg_isready" -q -h 127.0.0.1 -p "$old_port" 2>/dev/null; then
    echo "postgresql://postgres@127.0.0.1:$old_port/postgres"
    exit 0
  fi
  rm -f "$state"
fi
dir="$(mktemp -d "${TMPDIR:-/tmp}/aarlab-pg.XXXXXX")"
port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
as_db_user() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}
if [ "$(id -u)" = 0 ]; then chown postgres: "$dir"; fi
chmod 700 "$dir"
as_db_user "$bindir/initdb" -D "$dir/data" -U postgres -A trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 || {
  echo "start-test-postgres: initdb failed, see $dir/initdb.log" >&2; exit 1; }
as_db_user "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-h 127.0.0.1 -p $port -k $dir -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=300" \
  start >/dev/null || { echo "start-test-postgres: server did not start, see $dir/server.log" >&2; exit 1; }
printf '%s\n%s\n%s\n' "$dir" "$bindir" "$port" >"$state"
echo "postgresql://postgres@127.0.0.1:$port/postgres"
