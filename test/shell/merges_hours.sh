#!/usr/bin/env bash
# Hourly partitions (partition_interval 1 hour: capture writes into an
# hour's small indexes, whatever the day holds) merge into one partition per
# UTC day once the day ended an hour ago, by the worker:
#
# 1. Hourly partitions of the last three days and of two days of a month
#    long gone, with events: the worker merges every ended day into
#    activity_dYYYYMMDD (its subject index ordered by time, the reader's
#    grant) and the old month's hours straight into activity_mYYYYMM; the
#    current day (and the previous one before 01:00 UTC) stays hourly; the
#    rows are the same (every column); account_timeline() gives the view's
#    rows over the mixed layout; verify() reports nothing.
# 2. Capture goes on into the hourly partitions during the merges.
# 3. Nothing more is due then: a day of one partition is not a merge.
# 4. An event of a past hour that has no partition (the worker away longer
#    than premake hours) lands in activity_default; the next maintenance
#    makes its hour's partition and moves it there, one range a run
#    (within merge_after: older ones, history imported by hand, stay).
# 5. A session holding a lock on a partition the merges do not touch (read
#    by name, its transaction open) does not hold up their swaps.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster), AM_ROOT, AM_TMP.  Exit 0 =
# pass.  Every wait has a deadline.
set -euo pipefail
db=am_merges_hours
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL' || fail "setup failed"
CREATE EXTENSION activity_monitor;
SELECT activity_monitor.configure(merge_interval => '0', partition_interval => '1 hour');
CREATE TABLE payments (id int PRIMARY KEY, amount numeric);
SELECT activity_monitor.track('payments', 'payment');
-- the daily partitions CREATE EXTENSION made (today and ahead: a new
-- partition_interval applies to partitions made after it) go, still empty
DO $$
DECLARE
	p	regclass;
BEGIN
	FOR p IN SELECT q.part FROM activity_monitor._partitions() q WHERE q.lower IS NOT NULL LOOP
		EXECUTE format('DROP TABLE %s', p);
	END LOOP;
END
$$;
-- hourly partitions: two days of a month long gone, and the last three days
DO $$
DECLARE
	d	timestamptz;
BEGIN
	FOR d IN SELECT g FROM generate_series(date_trunc('month', now() - interval '3 months', 'UTC'),
										   date_trunc('month', now() - interval '3 months', 'UTC') + interval '47 hours',
										   interval '1 hour') g
		UNION ALL SELECT g FROM generate_series(date_trunc('day', now() - interval '3 days', 'UTC'), now(),
												interval '1 hour') g
	LOOP
		PERFORM activity_monitor.maintain(now => d);
	END LOOP;
END
$$;
-- an event every 10 minutes wherever a partition is
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, subject_id, actor_type)
SELECT g, 'payment', 'insert', 'public.payments', (g2 % 97)::text, 'user'
FROM activity_monitor._partitions() p
CROSS JOIN LATERAL generate_series(p.lower, least(p.upper, now()) - interval '1 second', interval '10 minutes')
	WITH ORDINALITY AS s(g, g2)
WHERE p.lower IS NOT NULL;
SQL

# the hourly layout is there, the history sealed before the merges
[ "$(q "SELECT count(*) FROM activity_monitor._partitions() WHERE upper - lower = interval '1 hour'")" -ge 110 ] ||
	fail "no hourly layout: $(q "SELECT count(*) FROM activity_monitor._partitions()") partitions"
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" -c "DELETE FROM activity_monitor.seal" \
	-c "SELECT events FROM activity_monitor._seal()" -c "COMMIT" >/dev/null || fail "sealing failed"
# (a sealing round of the worker's meanwhile waits for the chain's lock this
# held, and gives up after its lock_timeout of 1 s, to be retried: recorded
# as the worker's last error, by then; see the check at the end)
resealed=$(q "SELECT clock_timestamp()")
rows() { q "SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id)) FROM activity_monitor.activity a
	WHERE row_key IS NULL AND kind <> 'admin'"; }
before=$(rows)
# the days due: ended an hour ago (before 01:00 UTC, yesterday is not)
due=$(q "SELECT string_agg('activity_d' || to_char(d, 'YYYYMMDD'), ' ' ORDER BY d)
	FROM generate_series(date_trunc('day', now() - interval '3 days', 'UTC'), now(), interval '1 day') d
	WHERE d + interval '1 day' + interval '1 hour' <= now()")
month=$(q "SELECT 'activity_m' || to_char(date_trunc('month', now() - interval '3 months', 'UTC') AT TIME ZONE 'UTC', 'YYYYMM')")

# 2. capture during the merges: 500 inserts, 10 ms apart
for i in $(seq 1 500); do echo "INSERT INTO payments VALUES ($i, $i); SELECT pg_sleep(0.01);"; done >"$AM_TMP/merges_hours_writes.sql"
psql -X -q -At -d "$db" -f "$AM_TMP/merges_hours_writes.sql" >"$AM_TMP/merges_hours_writes.out" 2>&1 &
wpid=$!

# 5. a reader of a partition the merges do not touch (an hour ahead, read
# by name, its transaction left open without a snapshot) does not hold
# them up: a swap locks its pieces and the parent, not every partition
ahead=$(q "SELECT part FROM activity_monitor._partitions() WHERE lower > now() ORDER BY lower LIMIT 1")
[ -n "$ahead" ] || fail "no partition ahead"
rm -f "$AM_TMP/merges_hours_reader.fifo"
mkfifo "$AM_TMP/merges_hours_reader.fifo"
PGAPPNAME=am_merges_reader psql -X -q -At -d "$db" <"$AM_TMP/merges_hours_reader.fifo" >"$AM_TMP/merges_hours_reader.out" 2>&1 &
rpid=$!
trap 'exec 4>&- 2>/dev/null; kill $rpid 2>/dev/null || true; am_db_drop' EXIT
exec 4>"$AM_TMP/merges_hours_reader.fifo"
echo "BEGIN; LOCK TABLE $ahead IN ACCESS SHARE MODE;" >&4
held="SELECT EXISTS (SELECT 1 FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
	WHERE l.relation = '$ahead'::regclass AND a.application_name = 'am_merges_reader')"
am_wait_for 15 "$db" "$held" ||
	fail "the reader of $ahead did not lock it: $(cat "$AM_TMP/merges_hours_reader.out")"

q "SELECT activity_monitor.configure(merge_interval => '1 month')" >/dev/null
am_wait_for 180 "$db" "SELECT NOT EXISTS (SELECT 1 FROM activity_monitor.merge)
	AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relname LIKE 'activity\\_merged\\_%' OR relname LIKE 'activity\\_build\\_%')
	AND to_regclass('activity_monitor.$month') IS NOT NULL
	AND (SELECT count(*) FROM unnest(string_to_array('$due', ' ')) d WHERE to_regclass('activity_monitor.' || d) IS NOT NULL)
		= cardinality(string_to_array('$due', ' '))" ||
	fail "the worker did not merge the days ($due) and $month: $(q "SELECT last_merge, merge_in_progress, last_error FROM activity_monitor.worker_status")"
wait "$wpid" || true
[ "$(q "$held")" = t ] ||
	fail "the reader of $ahead let go before the merges were done"
echo "COMMIT;" >&4
exec 4>&-
wait "$rpid" || true
grep -q ERROR "$AM_TMP/merges_hours_writes.out" && fail "a write failed during the merges: $(grep -m 3 ERROR "$AM_TMP/merges_hours_writes.out")"
[ "$(q "SELECT count(*) FROM activity_monitor.activity WHERE table_name = 'public.payments' AND action = 'insert' AND row_key IS NOT NULL")" = 500 ] ||
	fail "captured $(q "SELECT count(*) FROM activity_monitor.activity WHERE row_key IS NOT NULL") of 500 inserts"
[ "$(rows)" = "$before" ] || fail "the merged history differs: $(rows), was $before"

# 1. the layout: a partition per ended day, each exactly its day, with the
# five indexes (subject ordered by time) and the reader's grant; no hour of
# those days left; the current day hourly
for d in $due; do
	[ "$(q "SELECT to_char(lower AT TIME ZONE 'UTC', 'YYYYMMDD HH24:MI') = '${d#activity_d} 00:00'
		AND upper = lower + interval '1 day' FROM activity_monitor._partitions() WHERE part = 'activity_monitor.$d'::regclass")" = t ] ||
		fail "$d does not cover its day: $(q "SELECT lower, upper FROM activity_monitor._partitions() WHERE part = 'activity_monitor.$d'::regclass")"
	[ "$(q "SELECT count(*) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(subject_id, occurred_at)') || ' ' || count(*)
		FROM pg_index i WHERE i.indrelid = 'activity_monitor.$d'::regclass")" = "1 5" ] ||
		fail "$d lacks its five indexes: $(q "SELECT string_agg(pg_get_indexdef(indexrelid), '; ') FROM pg_index WHERE indrelid = 'activity_monitor.$d'::regclass")"
done
[ "$(q "SELECT count(*) FROM activity_monitor._partitions() p
	WHERE p.upper - p.lower = interval '1 hour'
	  AND date_trunc('day', p.lower, 'UTC') + interval '1 day' + interval '1 hour' <= now()")" = 0 ] ||
	fail "hours of ended days are left: $(q "SELECT string_agg(part::text, ' ') FROM activity_monitor._partitions() WHERE upper - lower = interval '1 hour' AND upper <= date_trunc('day', now(), 'UTC')")"
[ "$(q "SELECT count(*) FROM activity_monitor._partitions() p
	WHERE p.upper - p.lower = interval '1 hour' AND p.lower >= date_trunc('day', now(), 'UTC') AND p.lower <= now()")" = \
	"$(q "SELECT extract(hour FROM now() AT TIME ZONE 'UTC')::int + 1")" ] ||
	fail "today's hours are not all hourly partitions"
[ "$(q "SELECT count(*) FROM activity_monitor.$month")" = "$(q "SELECT count(*) FROM activity_monitor.activity
	WHERE occurred_at >= date_trunc('month', now() - interval '3 months', 'UTC')
	  AND occurred_at < date_trunc('month', now() - interval '3 months', 'UTC') + interval '1 month'")" ] ||
	fail "$month does not hold its rows"
[ "$(q "SELECT bool_and(has_table_privilege('activity_monitor_reader', part, 'SELECT'))
		AND NOT bool_or(has_table_privilege('public', part, 'SELECT')) FROM activity_monitor._partitions()")" = t ] ||
	fail "a merged partition lacks the reader's grant or is readable by PUBLIC"
for s in 0 5 41 96; do
	[ "$(q "SELECT (SELECT coalesce(string_agg(t.id::text, ',' ORDER BY n), '') FROM
			activity_monitor.account_timeline('$s', 80) WITH ORDINALITY AS t(id, occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id, actor_reason, status_from, status_to, critical, old_values, new_values, client_addr, application_name, db_user, n))
		= (SELECT coalesce(string_agg(v.id::text, ','), '') FROM (SELECT id FROM activity_monitor.timeline WHERE subject_id = '$s'
			ORDER BY occurred_at DESC, id DESC LIMIT 80) v)")" = t ] ||
		fail "account_timeline('$s', 80) differs from the view on the merged layout"
done
[ -z "$(q "SELECT last_error FROM activity_monitor.worker_status
	WHERE NOT (last_error = 'sealing: canceling statement due to lock timeout'
			   AND last_error_at < '$resealed'::timestamptz + interval '2 seconds')")" ] ||
	fail "worker error: $(q "SELECT last_error, last_error_at, '$resealed' FROM activity_monitor.worker_status")"
got=$(q "SELECT coalesce(string_agg(problem, '; '), '') FROM activity_monitor.verify()")
[ -z "$got" ] || fail "verify() after the merges reports: $(cut -c1-300 <<<"$got")"
echo "ok: merged into $due and $month"

# 3. nothing more is due: each merged day is one partition (not a merge),
# today's hours are not due
[ -z "$(q "SELECT done FROM activity_monitor._merge_step()")" ] ||
	fail "one more merge step: $(q "SELECT done FROM activity_monitor._merge_step()")"
echo "ok: a day of one partition is no merge"

# 4. past rows of the default partition get their partitions
q "INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, subject_id, actor_type)
   VALUES (date_trunc('hour', now() - interval '5 days', 'UTC') + interval '7 minutes', 'payment', 'insert', 'public.payments', 'lost', 'user'),
		  (date_trunc('hour', now() - interval '5 days', 'UTC') + interval '67 minutes', 'payment', 'insert', 'public.payments', 'lost', 'user')" >/dev/null
[ "$(q "SELECT count(*) FROM activity_monitor.activity_default")" = 2 ] || fail "the events of five days ago did not land in the default partition"
# (one range a run: the worker's runs or ours)
for _ in 1 2 3 4 5; do
	[ "$(q "SELECT count(*) FROM activity_monitor.activity_default")" = 0 ] && break
	q "SELECT activity_monitor.maintain()" >/dev/null 2>&1
done
[ "$(q "SELECT count(*) FROM activity_monitor.activity_default")" = 0 ] ||
	fail "maintain() left $(q "SELECT count(*) FROM activity_monitor.activity_default") past rows in the default partition"
# (in their hours' partitions, or already in the day the worker merged
# them into)
[ "$(q "SELECT count(*) FROM activity_monitor._partitions() p JOIN activity_monitor.activity a ON a.tableoid = p.part
	WHERE a.subject_id = 'lost' AND p.lower IS NOT NULL
	  AND p.lower IN (date_trunc('hour', a.occurred_at, 'UTC'), date_trunc('day', a.occurred_at, 'UTC'))")" = 2 ] ||
	fail "the past rows are not in their hours' partitions: $(q "SELECT tableoid::regclass, occurred_at FROM activity_monitor.activity WHERE subject_id = 'lost'")"
echo "ok: past rows of the default partition moved into their hours' partitions"
q "INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, subject_id, actor_type)
   VALUES (now() - interval '40 days', 'payment', 'insert', 'public.payments', 'imported', 'user')" >/dev/null
q "SELECT activity_monitor.maintain()" >/dev/null
[ "$(q "SELECT count(*) FROM activity_monitor.activity_default WHERE subject_id = 'imported'")" = 1 ] ||
	fail "an event older than merge_after left the default partition"
echo "ok: older rows stay in the default partition"
