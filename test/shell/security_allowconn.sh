#!/usr/bin/env bash
# A database owner's ALLOW_CONNECTIONS and the worker:
#   1. ALLOW_CONNECTIONS false across a server restart, then true: the
#      worker starts when that commits (0.2.0's first cut: none until the
#      next restart), and alerts;
#   2. the usual way of copying a database: connections disallowed, the
#      worker terminated (it is restarted 5 s later, connects only to leave
#      for good), CREATE DATABASE ... TEMPLATE succeeds; connections allowed
#      again, the worker is back;
#   3. toggles in one transaction, and in a loop of transactions (a shell
#      loop, and a procedure that commits between toggles), leave one
#      worker, register one at a time (no slot taken but by the running
#      ones: a new database with the extension gets its worker at once);
#   4. a start that finds no free background worker slot (parallel query
#      holds them all) is retried by the launcher once a slot is free.
# A cluster of our own (it is restarted).
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
(
	unset AM_PORT
	dir="$AM_TMP/allowconn"
	am_cluster_start "$dir" "activity_monitor.naptime = 1" "max_worker_processes = 12" \
		"max_parallel_workers = 16" >/dev/null
	trap am_cluster_stop EXIT
	db=am_allowconn
	q() { psql -X -At -v ON_ERROR_STOP=1 -d "${2:-$db}" -c "$1"; }
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE ROLE am_owner LOGIN" \
		-c "CREATE DATABASE $db OWNER am_owner" >/dev/null
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE pay (id int PRIMARY KEY, amount numeric);
SELECT activity_monitor.track('pay', 'payment');
SELECT activity_monitor.create_rule('any', '$.action == "insert"');
SQL
	workers="SELECT count(*) FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = '$db'"
	am_wait_for 20 postgres "SELECT ($workers) = 1" || fail "no worker"
	n=0
	alerted() {
		n=$((n + 1))
		q "INSERT INTO pay VALUES ($n, 1)" >/dev/null
		am_wait_for 30 "$db" "SELECT EXISTS (SELECT 1 FROM activity_monitor.alerts a JOIN activity_monitor.activity e
			ON e.id = a.event_id WHERE e.new_values ->> 'id' = '$n')" || fail "write $n was not alerted"
	}
	alerted
	owner() { psql -X -q -v ON_ERROR_STOP=1 -d postgres -U am_owner "$@" >/dev/null; }

	echo "# 1. ALLOW_CONNECTIONS false across a restart, then true"
	owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS false"
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -w -m fast restart -l "$dir/server.log" >/dev/null
	sleep 3
	[ "$(q "$workers" postgres)" = 0 ] || fail "a worker in a database that does not allow connections"
	owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS true"
	am_wait_for 20 postgres "SELECT ($workers) = 1" || fail "ALLOW_CONNECTIONS true did not start the worker"
	alerted
	echo "  the worker started at the commit of ALLOW_CONNECTIONS true, and alerts"

	echo "# 2. copying the database: connections disallowed, sessions ended"
	owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS false"
	q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '$db'" postgres >/dev/null
	sleep 7	# the worker's restart time (5 s): it connects, and leaves for good
	[ "$(q "$workers" postgres)" = 0 ] || fail "the restarted worker stayed in a database that does not allow connections"
	grep -q "stops: the database does not allow connections" "$dir/server.log" ||
		fail "the restarted worker did not say why it left"
	q "CREATE DATABASE ${db}_copy TEMPLATE $db" postgres >/dev/null || fail "the copy failed"
	owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS true"
	am_wait_for 20 postgres "SELECT ($workers) = 1" || fail "no worker after connections were allowed again"
	alerted
	echo "  copied; the worker back when connections were allowed again"

	echo "# 3. toggles"
	owner -c "BEGIN" -c "ALTER DATABASE $db ALLOW_CONNECTIONS false" -c "ALTER DATABASE $db ALLOW_CONNECTIONS true" \
		-c "ALTER DATABASE $db ALLOW_CONNECTIONS false" -c "COMMIT"
	owner -c "BEGIN" -c "ALTER DATABASE $db ALLOW_CONNECTIONS true" -c "ALTER DATABASE $db ALLOW_CONNECTIONS false" \
		-c "COMMIT"
	mark=$(wc -l <"$dir/server.log")
	for _ in $(seq 1 20); do
		owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS true"
		owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS false"
	done
	owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS true"
	sleep 8	# longer than a restart
	[ "$(q "$workers" postgres)" = 1 ] || fail "$(q "$workers" postgres) workers after the toggles"
	# nothing left registered that fails to connect and is restarted every 5 s
	if tail -n +"$mark" "$dir/server.log" | grep -q "is not currently accepting connections"; then
		fail "workers that cannot connect, restarted"
	fi
	# the procedure toggles another database of the owner, without the
	# extension: no worker runs there, so each true would start one
	psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "GRANT CREATE ON SCHEMA public TO am_owner" \
		-c "CREATE DATABASE ${db}_plain OWNER am_owner" >/dev/null
	owner -c "CREATE PROCEDURE toggle(n int) LANGUAGE plpgsql AS \$\$ BEGIN
		FOR i IN 1..n LOOP
			EXECUTE 'ALTER DATABASE ${db}_plain ALLOW_CONNECTIONS false'; COMMIT;
			EXECUTE 'ALTER DATABASE ${db}_plain ALLOW_CONNECTIONS true'; COMMIT;
		END LOOP; END \$\$"
	mark=$(wc -l <"$dir/server.log")
	owner -c "CALL toggle(200)"
	q "CREATE DATABASE ${db}_new" postgres >/dev/null
	q "CREATE EXTENSION activity_monitor" "${db}_new" >/dev/null
	am_wait_for 20 postgres "SELECT count(*) = 1 FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker'
		AND datname = '${db}_new'" || fail "a new database got no worker after a loop of toggles"
	warnings=$(tail -n +"$mark" "$dir/server.log" | grep -c "could not start the activity_monitor worker" || true)
	[ "$warnings" = 0 ] || fail "$warnings starts found no free slot during a loop of toggles"
	sleep 6
	[ "$(q "$workers" postgres)" = 1 ] || fail "$(q "$workers" postgres) workers after the procedure's toggles"
	alerted
	echo "  one worker; starts one at a time, no slot taken"

	echo "# 4. a start that finds no free slot is retried"
	owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS false"
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -w -m fast restart -l "$dir/server.log" >/dev/null
	q "CREATE TABLE IF NOT EXISTS wide AS SELECT g FROM generate_series(1, 100000) g" postgres >/dev/null
	q "ALTER TABLE wide SET (parallel_workers = 8)" postgres >/dev/null
	hogs=()
	for _ in 1 2; do
		psql -X -q -d postgres -c "SET max_parallel_workers_per_gather = 8" -c "SET parallel_setup_cost = 0" \
			-c "SET parallel_tuple_cost = 0" -c "SET min_parallel_table_scan_size = 0" \
			-c "SELECT count(*) FROM wide WHERE pg_sleep(0.01) IS NOT NULL" >/dev/null 2>&1 &
		hogs+=($!)
	done
	am_wait_for 20 postgres "SELECT count(*) >= 8 FROM pg_stat_activity WHERE backend_type = 'parallel worker'" ||
		fail "parallel query did not take the free slots"
	out=$(psql -X -q -d postgres -U am_owner -c "ALTER DATABASE $db ALLOW_CONNECTIONS true" 2>&1)
	grep -q "could not start the activity_monitor worker" <<<"$out" ||
		fail "the start found a free slot (the test needs none): $out"
	psql -X -q -d postgres -c "SELECT pg_cancel_backend(pid) FROM pg_stat_activity WHERE query LIKE '%FROM wide%'
		AND pid <> pg_backend_pid() AND backend_type = 'client backend'" >/dev/null
	for h in "${hogs[@]}"; do wait "$h" 2>/dev/null || true; done
	am_wait_for 20 postgres "SELECT ($workers) = 1" || fail "the start was not retried once slots were free"
	alerted
	echo "ok"
)
