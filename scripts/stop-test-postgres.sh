#!/usr/bin/env bash
# Stop the cluster that scripts/start-test-postgres.sh started and remove its directory.
set -uo pipefail
state="${TMPDIR:-/tmp}/aarlab-test-postgres.state"
[ -f "$state" ] || { echo "stop-test-postgres: no test cluster recorded" >&2; exit 0; }
dir="$(sed -n 1p "$state")"; bindir="$(sed -n 2p "$state")"
if [ -d "$dir/data" ]; then
  if [ "$(id -u)" = 0 ]; then
    runuser -u postgres -- "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  else
    "$bindir/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  fi
fi
case "$dir" in
  */aarlab-pg.*) rm -rf -- "$dir" ;;
esac
rm -f "$state"
