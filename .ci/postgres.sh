#!/usr/bin/env bash
# A throwaway PostgreSQL server on loopback, for the tests.
#
#   eval "$(.ci/postgres.sh start)"           # prints the export lines below; installs PostgreSQL
#                                             # from Debian's packages first if initdb is missing (root)
#   .ci/postgres.sh start --no-install        # the same, but never installs (used by the test fixture)
#   .ci/postgres.sh stop "$EINSEARCH_TEST_PG_DIR"
#
# start prints, on stdout and nothing else:
#   export EINSEARCH_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:PORT/postgres
#   export EINSEARCH_TEST_PG_DIR=/tmp/einsearch-pg.XXXXXX
# The cluster trusts local connections, keeps no fsync, and lives in EINSEARCH_TEST_PG_DIR.
set -euo pipefail

find_bin() {  # Debian keeps the server binaries outside PATH, in /usr/lib/postgresql/<version>/bin
    command -v "$1" 2>/dev/null && return 0
    ls -d /usr/lib/postgresql/*/bin/"$1" 2>/dev/null | sort -V | tail -n 1
}

as_owner() {  # the server refuses to run as root: run it as the postgres user then
    if [ "$(id -u)" -eq 0 ]; then
        runuser -u postgres -- "$@"
    else
        "$@"
    fi
}

start() {
    local install=1
    [ "${1:-}" = "--no-install" ] && install=0
    local initdb
    initdb="$(find_bin initdb || true)"
    if [ -z "$initdb" ]; then
        if [ "$install" -eq 0 ] || [ "$(id -u)" -ne 0 ]; then
            echo "postgres.sh: initdb not found (install Debian's postgresql package)" >&2
            exit 3
        fi
        echo "postgres.sh: installing postgresql from Debian's packages" >&2
        apt-get update -qq >&2
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
        initdb="$(find_bin initdb)"
    fi
    local bindir pg_ctl dir port
    bindir="$(dirname "$initdb")"
    pg_ctl="$bindir/pg_ctl"
    [ -x "$pg_ctl" ] || pg_ctl="$(find_bin pg_ctl)"
    dir="$(mktemp -d /tmp/einsearch-pg.XXXXXX)"
    chmod 755 "$dir"
    [ "$(id -u)" -eq 0 ] && chown postgres: "$dir"
    port="$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
    as_owner "$initdb" -D "$dir/data" -A trust -U postgres --no-sync >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
    as_owner "$pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 30 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $dir -c fsync=off -c full_page_writes=off" start >&2 \
        || { cat "$dir/server.log" >&2; exit 1; }
    echo "export EINSEARCH_TEST_PG_URL=postgresql+psycopg://postgres@127.0.0.1:$port/postgres"
    echo "export EINSEARCH_TEST_PG_DIR=$dir"
}

stop() {
    local dir="${1:-${EINSEARCH_TEST_PG_DIR:-}}"
    [ -n "$dir" ] && [ -d "$dir/data" ] || { echo "postgres.sh: no cluster directory given" >&2; exit 2; }
    local pg_ctl
    pg_ctl="$(find_bin pg_ctl)"
    as_owner "$pg_ctl" -D "$dir/data" -m fast -w stop >&2 || true
    rm -rf "$dir"
}

case "${1:-}" in
    start) shift; start "$@" ;;
    stop) shift; stop "$@" ;;
    *) echo "usage: $0 start [--no-install] | stop DIR" >&2; exit 2 ;;
esac
