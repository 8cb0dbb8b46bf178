#!/usr/bin/env bash
# Regression test (issue 12, "Bounds"): a transaction left open must not make
# every alert batch read every event committed since it began.  0.1.0's batch
# query took "txid >= xmin of the last snapshot", and an open transaction
# holds that xmin back; the batch now reads the txids from the last
# snapshot's xmax, plus those of its in-progress list that have committed
# since (PgQ's way).
#
# The batches are run by hand (_process_alerts) in one session that holds
# alert_state's row lock in a transaction of its own, so that the worker
# waits meanwhile; before and after a batch it reads how many entries the
# scans of the activity partitions' txid indexes returned in its transaction
# (pg_stat_get_xact_tuples_returned: only the batch query reads those
# indexes).  One transaction with a matched event stays open throughout.  A
# batch of 50 new events is measured after 2,000 events have committed since
# the open transaction began, and again after 20,000 more: the second must
# read at most twice what the first read (0.1.0: ten times).  When the open
# transaction commits, its event is processed, once; every event gave
# exactly one alert.
set -euo pipefail
db=am_bounds_open_xact
. "$AM_ROOT/test/lib/shell.sh"
holder=""
cleanup() {
	[ -n "$holder" ] && kill "$holder" 2>/dev/null || true
	[ -n "${M_PID:-}" ] && kill "$M_PID" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id serial PRIMARY KEY, v int);
SELECT activity_monitor.track('t', 'game');
SELECT activity_monitor.create_rule('each', '$.action == "insert"', channel => 'am_bounds_open_xact');
CREATE TABLE flag (done boolean);
-- n transactions of per events each
CREATE PROCEDURE writes(n int, per int) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1 .. n LOOP
		INSERT INTO t (v) SELECT g FROM generate_series(1, per) g;
		COMMIT;
	END LOOP;
END $$;
-- entries the txid indexes of the activity partitions returned in this transaction
CREATE FUNCTION txid_reads() RETURNS bigint LANGUAGE sql AS $$
	SELECT coalesce(sum(pg_stat_get_xact_tuples_returned(i.indexrelid)), 0)::bigint
	FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
	WHERE c.relnamespace = 'activity_monitor'::regnamespace AND c.relname LIKE 'activity%txid_idx'
$$;
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"

# the measuring session, a coprocess: m SQL sets $out to the statement's
# output (not in a subshell: the coprocess is not there)
coproc M { psql -X -At -q -v ON_ERROR_STOP=1 -d "$db" 2>&1; }
m() {
	local line
	out=""
	printf '%s;\n\\echo __end__\n' "$1" >&"${M[1]}"
	while IFS= read -r -t 600 line <&"${M[0]}"; do
		[ "$line" = __end__ ] && return 0
		out="$out$line"
	done
	fail "the measuring session stopped (after: $1)"
}
m "BEGIN"
m "SELECT 1 FROM activity_monitor.alert_state FOR UPDATE"

# the open transaction, with a matched event, until flag says done
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "SET application_name = 'open_xact'" -c "BEGIN" \
	-c "INSERT INTO t (v) VALUES (-1)" \
	-c "DO \$\$ BEGIN WHILE NOT EXISTS (SELECT 1 FROM flag) LOOP PERFORM pg_sleep(0.05); END LOOP; END \$\$" \
	-c "COMMIT" >/dev/null &
holder=$!
am_wait_for 15 "$db" "SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE application_name = 'open_xact'
	AND backend_xid IS NOT NULL)" || fail "the open transaction did not start"

drain() {
	m "SELECT p.more FROM activity_monitor._process_alerts(100000) p"
	while [ "$out" = t ]; do m "SELECT p.more FROM activity_monitor._process_alerts(100000) p"; done
}
measure() {	# events committed since the open transaction began; sets $out
	q "CALL writes($(($1 / 10)), 10)" >/dev/null
	drain
	q "CALL writes(5, 10)" >/dev/null
	m "SELECT txid_reads()"
	m "SELECT format('%s %s', p.events, txid_reads() - $out) FROM activity_monitor._process_alerts(100000) p"
}
measure 2000
read -r e1 r1 <<<"$out"
measure 20000
read -r e2 r2 <<<"$out"
echo "open transaction: a batch of $e1 events read $r1 txid index entries after 2,000 events, $e2 read $r2 after 22,000"
[ "$e1" = 50 ] && [ "$e2" = 50 ] || fail "the measured batches processed $e1 and $e2 events, expected 50"
[ "$r1" -gt 0 ] || fail "the measure saw no reads"
[ "$r2" -le $((2 * r1)) ] ||
	fail "with a transaction open, a batch read $r2 index entries after 22,000 events, $r1 after 2,000: it grows with them"

# the open transaction commits: its event is processed, once
q "INSERT INTO flag VALUES (true)" >/dev/null
wait "$holder" || fail "the open transaction failed"
holder=""
drain
m "COMMIT"
got=$(q "SELECT format('%s/%s/%s', count(*), count(DISTINCT event_id),
		(SELECT count(*) FROM activity_monitor.activity WHERE kind <> 'admin')) FROM activity_monitor.alerts")
[ "$got" = "22101/22101/22101" ] || fail "alerts/distinct events/events: $got, expected 22101 of each"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts a JOIN activity_monitor.activity e ON e.id = a.event_id
		WHERE e.new_values ->> 'v' = '-1'")" = 1 ] || fail "the open transaction's event was not alerted once"
echo "ok"
