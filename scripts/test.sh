#!/usr/bin/env bash
# The whole test suite: install, start a throwaway PostGIS, lint, run every test. Used by .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

# shellcheck source=scripts/setup_env.sh
source scripts/setup_env.sh test

# the browser tests drive Debian's chromium through Playwright (no `playwright install`: no downloads here)
[ -x /usr/bin/chromium ] || need_apt chromium
PGBIN=/usr/lib/postgresql/15/bin
if [ -z "${MULTIPLAN_TEST_DATABASE_URL:-}" ]; then
    if [ ! -f /usr/share/postgresql/15/extension/postgis.control ] || [ ! -x "$PGBIN/initdb" ]; then
        need_apt postgresql-15-postgis-3
    fi
    PGDIR=$(mktemp -d /tmp/multiplan-pg.XXXXXX)
    PGPORT=${MULTIPLAN_TEST_PGPORT:-55432}
    while (echo > /dev/tcp/127.0.0.1/$PGPORT) 2>/dev/null; do PGPORT=$((PGPORT + 1)); done
    as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
    [ "$(id -u)" = 0 ] && chown postgres "$PGDIR"
    as_pg "$PGBIN/initdb" -D "$PGDIR/data" -U postgres -A trust >"$PGDIR/initdb.log"
    as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -o "-p $PGPORT -k /tmp -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=100" \
        -l "$PGDIR/server.log" -w start >/dev/null
    trap 'as_pg "$PGBIN/pg_ctl" -D "$PGDIR/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$PGDIR"' EXIT
    psql -h 127.0.0.1 -p "$PGPORT" -U postgres -qc "CREATE DATABASE multiplan_test" >/dev/null
    psql -h 127.0.0.1 -p "$PGPORT" -U postgres -d multiplan_test -qc "CREATE EXTENSION postgis" >/dev/null
    export MULTIPLAN_TEST_DATABASE_URL="postgresql://postgres@127.0.0.1:$PGPORT/multiplan_test"
fi
export MULTIPLAN_REQUIRE_POSTGIS=1

echo "== ruff"
"$VENV/bin/ruff" check multiplan web tests scripts benchmarks
echo "== pytest"
mkdir -p test-artifacts
"$VENV/bin/python" -m pytest -p no:cacheprovider "$@"
