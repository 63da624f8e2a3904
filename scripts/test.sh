#!/usr/bin/env bash
# The full test suite as CI runs it: starts a throwaway PostgreSQL on 127.0.0.1 for the Postgres tests,
# then runs every test, slow ones included.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -z "${AARLAB_TEST_PG_URL:-}" ] && [ -x scripts/start-test-postgres.sh ]; then
  if url=$(bash scripts/start-test-postgres.sh); then export AARLAB_TEST_PG_URL="$url"; fi
fi
.venv/bin/pytest -m "" -q "$@"
rc=$?
[ -x scripts/stop-test-postgres.sh ] && bash scripts/stop-test-postgres.sh >/dev/null 2>&1
exit $rc
