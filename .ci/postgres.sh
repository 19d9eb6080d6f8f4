# PostgreSQL for the ledger's PostgreSQL tests (tests/service/test_postgres.py); sourced by .ci/run.
#
# pg_start: when no PostgreSQL server binaries are installed and apt-get works, install Debian's
# `postgresql` package; then create a throwaway cluster (initdb in a temporary directory owned by a
# non-root user: `postgres` when it exists, else `nobody`; the current user when not root), start it
# on a unix socket in that directory only (no TCP port), and export CERTUNLEARN_TEST_POSTGRES_URL.
# pg_stop: stop that cluster and remove its directory (call it at exit).
# Every failure is printed and returns 1: the caller carries on and those tests skip with the reason.
#
# On its own:  source .ci/postgres.sh && pg_start && echo "$CERTUNLEARN_TEST_POSTGRES_URL"; ...; pg_stop

pg_dir=""
pg_bin=""
pg_user=""

pg_as() {  # run a command as the cluster's owner
  if [ "$(id -u)" -ne 0 ]; then
    "$@"
  elif command -v runuser >/dev/null 2>&1; then
    runuser -u "$pg_user" -- "$@"
  else
    su -s /bin/sh "$pg_user" -c "$(printf '%q ' "$@")"
  fi
}

pg_find_bin() {  # the newest installed server's bin directory (Debian's layout first, then PATH)
  pg_bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
  if [ -z "$pg_bin" ] && command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    pg_bin=$(dirname "$(command -v initdb)")
  fi
  [ -n "$pg_bin" ] && [ -x "$pg_bin/initdb" ] && [ -x "$pg_bin/pg_ctl" ]
}

pg_start() {
  if ! pg_find_bin; then
    if ! command -v apt-get >/dev/null 2>&1; then
      echo "PostgreSQL: not installed and no apt-get to install it"; return 1
    fi
    echo "PostgreSQL: installing Debian's postgresql package"
    (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null) \
      || { echo "PostgreSQL: apt-get install postgresql failed"; return 1; }
    pg_find_bin || { echo "PostgreSQL: installed, but no initdb/pg_ctl under /usr/lib/postgresql/*/bin"; return 1; }
  fi
  if [ "$(id -u)" -eq 0 ]; then
    if id postgres >/dev/null 2>&1; then pg_user=postgres; else pg_user=nobody; fi
  else
    pg_user=$(id -un)
  fi
  # in /tmp (not $TMPDIR): reachable by the cluster's owner, and a short unix socket path
  pg_dir=$(mktemp -d /tmp/certunlearn-pg.XXXXXX) || { echo "PostgreSQL: mktemp failed"; return 1; }
  if [ "$(id -u)" -eq 0 ]; then
    chown "$pg_user" "$pg_dir" || { echo "PostgreSQL: cannot give $pg_dir to $pg_user"; return 1; }
  fi
  if ! pg_as "$pg_bin/initdb" -D "$pg_dir/data" -U certunlearn -A trust -E UTF8 --no-sync >"$pg_dir/initdb.log" 2>&1; then
    echo "PostgreSQL: initdb as $pg_user failed:"; tail -n 5 "$pg_dir/initdb.log"; return 1
  fi
  if ! pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -l "$pg_dir/server.log" -w -t 60 \
      -o "-c listen_addresses='' -k $pg_dir -p 5432" start >/dev/null 2>&1; then
    echo "PostgreSQL: pg_ctl start failed:"; tail -n 5 "$pg_dir/server.log" 2>/dev/null; return 1
  fi
  export CERTUNLEARN_TEST_POSTGRES_URL="postgresql:///postgres?host=$pg_dir&port=5432&user=certunlearn"
  echo "PostgreSQL: $("$pg_bin/postgres" --version) running as $pg_user; CERTUNLEARN_TEST_POSTGRES_URL=$CERTUNLEARN_TEST_POSTGRES_URL"
}

pg_stop() {
  if [ -n "$pg_dir" ]; then
    if [ -f "$pg_dir/data/postmaster.pid" ]; then
      pg_as "$pg_bin/pg_ctl" -D "$pg_dir/data" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$pg_dir"
    pg_dir=""
  fi
}
