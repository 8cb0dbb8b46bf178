#!/usr/bin/env bash
# Old partitions merge into months and years (issue 16), by the worker:
#
# 1. A history of daily partitions (two days at the end of a year long
#    gone, the last ~70 days) with events: once merging is switched on, the
#    worker merges every month that ended merge_after ago into one partition
#    activity_mYYYYMM and the old year into activity_yYYYY; the rows are the
#    same (every column), the merged partitions have the five indexes and
#    the reader's grant, no build or detached piece is left, worker_status
#    counts the partitions merged away; a day of 60,000 events is copied
#    in two chunks, cut between events of the same instant; account_timeline()
#    gives the view's rows over the merged layout.
# 2. MVCC: a REPEATABLE READ transaction whose snapshot is older than a
#    build still sees every row of the merged range after the worker is
#    ready to swap (the worker waits for it: without the wait it would see
#    the merged partition empty).
# 3. Capture goes on during the merges: every insert into a tracked table
#    succeeds and is captured once.
# 4. pg_dump / pg_restore of the merged history gives the same rows.
# Seals: the history is sealed before the merges; verify() reports nothing
# after them and on the restored copy, where a change to an event of a
# merged month is named.
# 5. configure() refuses a bad merge_after or merge_interval with 22023 and
#    changes nothing; settings shows the values.
# 6. A detached piece holding a row the activity lacks (written after its
#    copy) gets that row put back before the worker drops it.
# 7. Without a configuration row (a restore in progress) maintain() and the
#    merges do nothing and insert no row.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster), AM_ROOT, AM_TMP.  Exit 0 =
# pass.  Every wait has a deadline.
set -euo pipefail
db=am_merges
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/merges
rm -rf "$work"
mkdir -p "$work"
bpid=""
wpid=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -n "$bpid" ] && kill "$bpid" 2>/dev/null || true
	[ -n "$wpid" ] && kill "$wpid" 2>/dev/null || true
	am_db_drop
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS am_merges_restored WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL' || fail "setup failed"
CREATE EXTENSION activity_monitor;
SELECT activity_monitor.configure(merge_interval => '0');
CREATE TABLE payments (id int PRIMARY KEY, amount numeric);
SELECT activity_monitor.track('payments', 'payment');
-- daily partitions: the turn of a year long gone, and the last 70 days
DO $$
DECLARE
	d	timestamptz;
BEGIN
	FOR d IN SELECT g FROM generate_series(date_trunc('year', now() - interval '2 years') - interval '2 days',
										   date_trunc('year', now() - interval '2 years'), interval '1 day') g
		UNION ALL SELECT g FROM generate_series(now() - interval '70 days', now(), interval '1 day') g
	LOOP
		PERFORM activity_monitor.maintain(now => d);
	END LOOP;
END
$$;
-- an event every 2 hours wherever a partition is
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, subject_id, actor_type)
SELECT g, 'payment', 'insert', 'public.payments', (g2 % 97)::text, 'user'
FROM activity_monitor._partitions() p
CROSS JOIN LATERAL generate_series(p.lower, least(p.upper, now()) - interval '1 second', interval '2 hours')
	WITH ORDINALITY AS s(g, g2);
SQL

# a month certainly due (ended more than merge_after ago); one of its days
# holds 60,000 more events, seven at each instant: the merge copies that
# day in two chunks of at most 50,000, the cut between rows of one instant
due_lo=$(q "SELECT date_trunc('month', now() - interval '45 days', 'UTC')")
q "INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, subject_id, actor_type)
   SELECT '$due_lo'::timestamptz + interval '5 days' + (g / 7) * interval '1 second', 'game', 'insert',
		  'public.games', (g % 89)::text, 'user'
   FROM generate_series(1, 60000) g" >/dev/null
# the history sealed before the merges: the worker's rounds so far took
# none of these back-dated events, so they make way for a first round that
# takes them all (as the first round after an update from 0.1.0)
sealed=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN" -c "DELETE FROM activity_monitor.seal" \
	-c "SELECT events FROM activity_monitor._seal()" -c "COMMIT") || fail "sealing failed"
[ "$sealed" -ge 60000 ] || fail "the first round sealed $sealed events"
# (a sealing round of the worker's meanwhile waits for the chain's lock this
# held, and gives up after its lock_timeout of 1 s, to be retried: recorded
# as the worker's last error, by then; see the check below)
resealed=$(q "SELECT clock_timestamp()")
problems() { psql -X -At -d "$1" -c "SELECT coalesce(string_agg(problem || ' ' || coalesce(event_ids::text, ''), '; '), '')
	FROM activity_monitor.verify()"; }
rows() { q "SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id)) FROM activity_monitor.activity a WHERE kind <> 'admin'"; }
before=$(rows)
parts_before=$(q "SELECT count(*) FROM activity_monitor._partitions()")
due_rows=$(q "SELECT count(*) FROM activity_monitor.activity
			  WHERE occurred_at >= '$due_lo' AND occurred_at < '$due_lo'::timestamptz + interval '1 month'")
[ "$due_rows" -gt 0 ] || fail "no events in the month from $due_lo"

# 5. bad input
for bad in "merge_interval => '30 days'" "merge_interval => '2 months'" "merge_interval => '-1 year'" \
	"merge_after => '0'" "merge_after => '90 minutes'" "merge_after => '1 month'"; do
	state=$(psql -X -At -d "$db" -c "\\set VERBOSITY sqlstate" -c "SELECT activity_monitor.configure($bad)" 2>&1 || true)
	[ "$state" = "ERROR:  22023" ] || fail "configure($bad) gave: $state"
done
[ "$(q "SELECT merge_after || ' ' || merge_interval FROM activity_monitor.settings")" = "7 days 00:00:00" ] ||
	fail "configure changed the settings: $(q "SELECT merge_after, merge_interval FROM activity_monitor.settings")"

# 2. a REPEATABLE READ snapshot older than the merges, not touching activity
rm -f "$work/b.fifo"
mkfifo "$work/b.fifo"
psql -X -q -At -d "$db" <"$work/b.fifo" >"$work/b.out" 2>&1 &
bpid=$!
exec 3>"$work/b.fifo"
echo "BEGIN ISOLATION LEVEL REPEATABLE READ; SELECT 'snapshot', count(*) FROM pg_class;" >&3
am_wait_for 20 "$db" "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = '$db' AND state = 'idle in transaction'" ||
	fail "session B did not start its transaction"

# 3. capture during the merges: 3000 inserts, one a transaction, 5 ms apart
for i in $(seq 1 3000); do echo "INSERT INTO payments VALUES ($i, $i); SELECT pg_sleep(0.005);"; done >"$work/writes.sql"
psql -X -q -At -d "$db" -f "$work/writes.sql" >"$work/writes.out" 2>&1 &
wpid=$!

q "SELECT activity_monitor.configure(merge_interval => '1 year')" >/dev/null
# the worker builds a merge and then waits for B's snapshot
am_wait_for 120 "$db" "SELECT last_merge LIKE '%waits for snapshots older than its build%' FROM activity_monitor.worker_status" ||
	fail "the worker did not come to wait for the old snapshot: $(q "SELECT last_merge, merge_in_progress FROM activity_monitor.worker_status")"
sleep 3
echo "SELECT 'seen', count(*) FROM activity_monitor.activity WHERE occurred_at >= '$due_lo' AND occurred_at < '$due_lo'::timestamptz + interval '1 month';" >&3
for _ in $(seq 1 40); do grep -q '^seen|' "$work/b.out" && break; sleep 0.5; done
seen=$(sed -n 's/^seen|//p' "$work/b.out")
[ "$seen" = "$due_rows" ] || fail "the old snapshot saw $seen rows of the month from $due_lo, not $due_rows: $(cat "$work/b.out")"
echo "COMMIT;" >&3
exec 3>&-

# 1. the worker merges everything due
am_wait_for 300 "$db" "SELECT NOT EXISTS (SELECT 1 FROM activity_monitor.merge)
	AND NOT EXISTS (SELECT 1 FROM pg_class WHERE relname LIKE 'activity\\_merged\\_%' OR relname LIKE 'activity\\_build\\_%')
	AND NOT EXISTS (SELECT 1 FROM activity_monitor._partitions() p
					GROUP BY date_trunc('month', p.lower, 'UTC')
					HAVING date_trunc('month', p.lower, 'UTC') + interval '1 month' + interval '7 days' <= now()
					   AND count(*) > 1)" ||
	fail "the worker did not merge the due months: $(q "SELECT last_merge, merge_in_progress, last_error FROM activity_monitor.worker_status")"
wait "$wpid" || true
wpid=""
grep -q ERROR "$work/writes.out" && fail "a write failed during the merges: $(grep -m 3 ERROR "$work/writes.out")"
[ "$(q "SELECT count(*) FROM activity_monitor.activity WHERE table_name = 'public.payments' AND action = 'insert'
		AND row_key IS NOT NULL")" = 3000 ] || fail "captured $(q "SELECT count(*) FROM activity_monitor.activity WHERE row_key IS NOT NULL") of 3000 inserts"

after=$(q "SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id)) FROM activity_monitor.activity a WHERE row_key IS NULL AND kind <> 'admin'")
[ "$after" = "$before" ] || fail "the merged history differs: $after, was $before"
year=$(q "SELECT to_char(now() - interval '2 years', 'YYYY')")
q "SELECT 1 FROM activity_monitor._partitions() WHERE part = 'activity_monitor.activity_y$year'::regclass
	AND lower = date_trunc('year', now() - interval '2 years', 'UTC')" | grep -qx 1 ||
	fail "no partition activity_y$year: $(q "SELECT string_agg(part::text, ' ') FROM activity_monitor._partitions()")"
month=$(q "SELECT 'activity_m' || to_char('$due_lo'::timestamptz AT TIME ZONE 'UTC', 'YYYYMM')")
[ "$(q "SELECT count(*) FROM activity_monitor.$month")" = "$due_rows" ] || fail "$month does not hold the month's $due_rows rows"
[ "$(q "SELECT count(*) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
		WHERE i.indrelid = 'activity_monitor.$month'::regclass AND c.relname LIKE '${month}\\_%'")" = 5 ] ||
	fail "$month lacks its five indexes: $(q "SELECT string_agg(indexrelid::regclass::text, ' ') FROM pg_index WHERE indrelid = 'activity_monitor.$month'::regclass")"
# a merged partition is read, not written: its subject index is ordered by
# time; a day's partition (written) indexes subject_id alone
[ "$(q "SELECT count(*) FROM pg_index i WHERE i.indrelid = 'activity_monitor.$month'::regclass
		AND pg_get_indexdef(i.indexrelid) LIKE '%(subject_id, occurred_at)'")" = 1 ] ||
	fail "$month has no (subject_id, occurred_at) index"
[ "$(q "SELECT count(*) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(subject_id)') || ' '
		|| count(*) FILTER (WHERE pg_get_indexdef(i.indexrelid) LIKE '%(subject_id, occurred_at)')
		FROM pg_index i JOIN activity_monitor._partitions() p ON p.part = i.indrelid
		WHERE p.lower >= date_trunc('day', now(), 'UTC')")" = "3 0" ] ||
	fail "today's partition and the next two do not index subject_id alone"
# account_timeline() over the merged layout: the view's rows, in its order
for s in 0 5 41 96; do
	for lim in 3 50 NULL; do
		[ "$(q "SELECT (SELECT coalesce(string_agg(t.id::text, ',' ORDER BY n), '') FROM
				activity_monitor.account_timeline('$s', $lim) WITH ORDINALITY AS t(id, occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id, actor_reason, status_from, status_to, critical, old_values, new_values, client_addr, application_name, db_user, n))
			= (SELECT coalesce(string_agg(v.id::text, ','), '') FROM (SELECT id FROM activity_monitor.timeline WHERE subject_id = '$s'
				ORDER BY occurred_at DESC, id DESC LIMIT $lim) v)")" = t ] ||
			fail "account_timeline('$s', $lim) differs from the view on the merged layout"
	done
done
[ "$(q "SELECT bool_and(has_table_privilege('activity_monitor_reader', part, 'SELECT'))
		AND NOT bool_or(has_table_privilege('public', part, 'SELECT')) FROM activity_monitor._partitions()")" = t ] ||
	fail "a merged partition lacks the reader's grant or is readable by PUBLIC"
parts_after=$(q "SELECT count(*) FROM activity_monitor._partitions()")
merged=$(q "SELECT partitions_merged FROM activity_monitor.worker_status")
[ "$parts_after" -lt "$((parts_before - 30))" ] || fail "$parts_before partitions before, $parts_after after"
[ "$merged" -ge "$((parts_before - parts_after))" ] || fail "worker_status counts $merged partitions merged away"
[ -z "$(q "SELECT last_error FROM activity_monitor.worker_status
	WHERE NOT (last_error = 'sealing: canceling statement due to lock timeout'
			   AND last_error_at < '$resealed'::timestamptz + interval '2 seconds')")" ] ||
	fail "worker error: $(q "SELECT last_error, last_error_at, '$resealed' FROM activity_monitor.worker_status")"
# the seals written before the merges verify the merged partitions
got=$(problems "$db")
[ -z "$got" ] || fail "verify() after the merges reports: $(cut -c1-300 <<<"$got")"
echo "ok: $sealed events sealed before the merges, verify() after them reports nothing"

# 4. dump and restore of the merged history
pg_dump -Fc -f "$work/m.dump" "$db" 2>"$work/dump.err" || fail "pg_dump failed: $(cat "$work/dump.err")"
psql -X -q -d postgres -c "CREATE DATABASE am_merges_restored" >/dev/null
pg_restore -d am_merges_restored "$work/m.dump" >"$work/restore.out" 2>&1 || fail "pg_restore failed: $(head -5 "$work/restore.out")"
restored=$(psql -X -At -d am_merges_restored -c "SELECT count(*) || ' ' || md5(string_agg(a::text, ',' ORDER BY id))
	FROM activity_monitor.activity a WHERE row_key IS NULL AND kind <> 'admin'")
[ "$restored" = "$before" ] || fail "the restored history differs: $restored, was $before"
[ "$(psql -X -At -d am_merges_restored -c "SELECT count(*) FROM activity_monitor._partitions()")" = "$parts_after" ] ||
	fail "the restored database has other partitions"
got=$(problems am_merges_restored)
[ -z "$got" ] || fail "verify() of the restored merged history reports: $(cut -c1-300 <<<"$got")"
# and still reads them: an event of the merged month changed is named
victim=$(psql -X -At -d am_merges_restored -c "SELECT min(id) FROM activity_monitor.$month")
psql -X -q -d am_merges_restored -c "UPDATE activity_monitor.$month SET subject_id = 'x' WHERE id = $victim" >/dev/null
got=$(problems am_merges_restored)
[ "$got" = "event changed {$victim}" ] || fail "verify() after changing event $victim of $month reports: $(cut -c1-300 <<<"$got")"
echo "ok: the restored merged history verifies, and a change to $month is named"
# 6. a detached piece that received rows after its copy (a superuser, a
#    dump restored with psql while the worker ran): the worker puts the
#    rows the activity lacks back before dropping it
n0=$(q "SELECT count(*) FROM activity_monitor.activity")
q "CREATE TABLE activity_monitor.activity_merged_p19991231 (LIKE activity_monitor.activity INCLUDING DEFAULTS);
   INSERT INTO activity_monitor.activity_merged_p19991231
   SELECT * FROM activity_monitor.activity WHERE occurred_at >= '$due_lo' ORDER BY id LIMIT 1;
   INSERT INTO activity_monitor.activity_merged_p19991231 (id, occurred_at, kind, action, table_name, subject_id, actor_type)
   VALUES (-7, '$due_lo'::timestamptz + interval '3 days', 'payment', 'insert', 'public.late', 'late', 'user')" >/dev/null
am_wait_for 60 "$db" "SELECT to_regclass('activity_monitor.activity_merged_p19991231') IS NULL" ||
	fail "the worker did not drop activity_merged_p19991231: $(q "SELECT last_merge, last_error FROM activity_monitor.worker_status")"
[ "$(q "SELECT count(*) FROM activity_monitor.activity")" = "$((n0 + 1))" ] &&
	[ "$(q "SELECT tableoid::regclass FROM activity_monitor.activity WHERE id = -7")" = "activity_monitor.$month" ] ||
	fail "the row written after the copy was not put back once: $(q "SELECT count(*) - $n0 FROM activity_monitor.activity")"

# 7. no configuration row (a dump being restored brings its own): the
#    maintenance and the merges do nothing and insert none
psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" -c "BEGIN; DELETE FROM activity_monitor.config;
   SELECT activity_monitor.maintain(now() + interval '3 days');
   SELECT s.done FROM activity_monitor._merge_step() s;
   SELECT count(*) FROM activity_monitor.config; ROLLBACK" >"$work/noconfig.out"
[ "$(tr '\n' ' ' <"$work/noconfig.out")" = "0  0 " ] || fail "without a configuration row: $(cat "$work/noconfig.out")"
echo "ok: $parts_before partitions merged into $parts_after ($merged merged away); the old snapshot saw $seen of $due_rows rows"
