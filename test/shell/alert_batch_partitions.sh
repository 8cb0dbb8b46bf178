#!/usr/bin/env bash
# An alert batch touches only the partitions its events can be in, however
# many the history holds.  Its query found the batch's events by txid
# alone, on a generic plan: every batch locked every partition and looked
# in each one's txid index (2.6 to 7 s a batch at 1,834 daily partitions,
# a database updated from 0.1.0 with years of history).  Now each snapshot
# comes with a bound of the events it does not see (alert_state.last_bound)
# and the batch is planned with it.  Checked here, with 60 days of daily
# partitions:
# 1. the worker keeps a bound, within the last minutes;
# 2. a batch from a new session (which also rebuilds the windows and
#    sequences first) locks no partition older than a day, nor its indexes;
# 3. an event of a transaction that began before the bound was taken and
#    committed after several batches (held back by the bound) is alerted
#    on, once;
#    The same from a backend with track_activities off (start unknown):
#    the bound stays where it was while it holds an id;
# 4. a batch under repeatable read keeps no bound (its snapshot is older
#    than anything it could read of the transactions running).
set -euo pipefail
db=am_alert_batch_partitions
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/alert_batch_partitions
rm -rf "$work"
mkdir -p "$work"
bg=""
cleanup() {
	exec 3>&- 2>/dev/null || true
	[ -z "$bg" ] || kill "$bg" 2>/dev/null || true
	am_db_drop
}
trap cleanup EXIT
am_db_new
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
-- a daily layout, kept (no merging)
SELECT activity_monitor.configure(premake => 7, merge_interval => '0');
SELECT activity_monitor.maintain(now() - d * interval '1 day') FROM generate_series(64, 8, -8) d;
CREATE TABLE payments (id serial PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.create_rule('big', '$.action == "insert" && $.new.amount > 100',
	tables => '{payments}');
SELECT activity_monitor.create_rule('sum', '$.action == "insert"', tables => '{payments}',
	within => '1 hour', threshold => 1e12, measure => 'sum', measure_path => '$.new.amount');
SELECT activity_monitor.create_rule('stuck', '$.table == "public.payments"', group_by => '$.row_key',
	steps => ARRAY['$.status_to == "pending"']::jsonpath[], missing => '$.status_to == "done"',
	within => '1 second');
SQL
old=$(q "SELECT count(*) FROM activity_monitor._partitions() WHERE upper <= now() - interval '1 day'")
[ "$old" -ge 55 ] || fail "expected 55 and more daily partitions older than a day, found $old"
q "INSERT INTO payments (account_id, amount, status) SELECT g, g, 'new' FROM generate_series(1, 200) g" >/dev/null
caught_up

# 1. the bound the worker keeps
[ "$(q "SELECT last_bound > now() - interval '5 minutes' AND last_bound < now() FROM activity_monitor.alert_state")" = t ] ||
	fail "no recent bound kept: $(q "SELECT last_bound FROM activity_monitor.alert_state")"
echo "ok: the worker keeps a bound of the events its last snapshot does not see"

# 2. a batch in a new session: the relations of partitions older than a day it locked
rels="WITH p AS (SELECT part FROM activity_monitor._partitions() WHERE upper <= now() - interval '1 day')
	SELECT part FROM p UNION ALL SELECT i.indexrelid FROM pg_index i JOIN p ON i.indrelid = p.part"
q "INSERT INTO payments (account_id, amount, status) VALUES (1, 500, 'pending')" >/dev/null
sleep 1.2
locked=$(psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" <<SQL
BEGIN;
SELECT events FROM activity_monitor._process_alerts(1000) \g /dev/null
SELECT count(*) FROM pg_locks l WHERE l.pid = pg_backend_pid() AND l.locktype = 'relation'
	AND l.relation IN ($rels);
COMMIT;
SQL
)
[ "$locked" = 0 ] || fail "a batch locked $locked relations of the partitions older than a day"
echo "ok: a batch (with a rebuild) locks none of the $old partitions older than a day"
am_wait_for 30 "$db" "SELECT count(*) = 1 FROM activity_monitor.alerts WHERE rule_name = 'stuck'" ||
	fail "the absence did not fire"

# The session held open on fd 3 ($bg) writes one more payment of amount $1,
# commits and quits; then the worker has processed it.
commit_held() {
	echo "INSERT INTO payments (account_id, amount, status) VALUES (2, $1, 'new'); COMMIT;" >&3
	echo '\q' >&3
	exec 3>&-
	wait "$bg"
	bg=""
	caught_up
}
# The payments of the amounts given each gave one alert of rule big.
alerted_once() {
	local amounts
	amounts=$(printf "'%s'," "$@")
	[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'big'
		AND event_id IN (SELECT id FROM activity_monitor.activity WHERE new_values ->> 'amount' IN (${amounts%,}))")" = "$#" ]
}

# 3. a transaction that holds its id across batches, and writes after them
rm -f "$work/long.fifo"
mkfifo "$work/long.fifo"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <"$work/long.fifo" >"$work/long.out" 2>&1 &
bg=$!
exec 3>"$work/long.fifo"
echo "BEGIN; INSERT INTO payments (account_id, amount, status) VALUES (2, 700, 'new');" >&3
sleep 1
for i in 1 2 3; do
	q "INSERT INTO payments (account_id, amount, status) VALUES (3, 1, 'new')" >/dev/null
	caught_up
done
[ "$(q "SELECT last_bound < (SELECT xact_start FROM pg_stat_activity WHERE pid <> pg_backend_pid()
	AND backend_xid IS NOT NULL AND datname = current_database() AND backend_type = 'client backend')
	FROM activity_monitor.alert_state")" = t ] ||
	fail "the bound passed the start of a transaction that holds an id"
commit_held 800
alerted_once 700 800 || fail "the long transaction's two events were not alerted on once each: $(q "SELECT event_id, group_key FROM activity_monitor.alerts WHERE rule_name = 'big'")"
[ "$(q "SELECT count(*) = count(DISTINCT (rule_name, event_id)) FROM activity_monitor.alerts")" = t ] || fail "an event alerted on twice by a rule"
echo "ok: a transaction that held its id across batches is alerted on, once"

# 3b. the same from a backend whose activity is not tracked (track_activities
# off: pg_stat_activity shows no xact_start, the horizon reads its start as
# 0): its start is unknown, so the bound must not move while it holds an id
# (without that, each batch would take "now" less a minute, and a
# transaction open longer than that would have its events dated before the
# bound)
rm -f "$work/untracked.fifo"
mkfifo "$work/untracked.fifo"
PGOPTIONS="-c track_activities=off" psql -X -q -v ON_ERROR_STOP=1 -d "$db" <"$work/untracked.fifo" >"$work/untracked.out" 2>&1 &
bg=$!
exec 3>"$work/untracked.fifo"
echo "BEGIN; INSERT INTO payments (account_id, amount, status) VALUES (4, 900, 'new');" >&3
am_wait_for 10 "$db" "SELECT count(*) = 1 FROM pg_stat_activity WHERE datname = current_database()
	AND backend_type = 'client backend' AND backend_xid IS NOT NULL AND state = 'disabled'" ||
	fail "the untracked session holds no transaction id"
caught_up
b0=$(q "SELECT last_bound FROM activity_monitor.alert_state")
for i in 1 2 3; do
	q "INSERT INTO payments (account_id, amount, status) VALUES (3, 1, 'new')" >/dev/null
	caught_up
	sleep 0.5
done
b1=$(q "SELECT last_bound FROM activity_monitor.alert_state")
[ "$b1" = "$b0" ] || fail "the bound moved from $b0 to $b1 while a transaction of unknown start held an id"
commit_held 1000
alerted_once 900 1000 || fail "the untracked transaction's two events were not alerted on once each"
[ "$(q "SELECT last_bound > '$b0' FROM activity_monitor.alert_state")" = t ] || {
	q "INSERT INTO payments (account_id, amount, status) VALUES (3, 1, 'new')" >/dev/null
	caught_up
	[ "$(q "SELECT last_bound > '$b0' FROM activity_monitor.alert_state")" = t ] ||
		fail "the bound did not move on once the transaction of unknown start ended"
}
echo "ok: a transaction whose start is not known (track_activities off) holds the bound, and is alerted on once"

# 4. repeatable read: the batch snapshot is the transaction's, taken before
# the bound could be read (retried when the worker's batch got there first)
got=""
for _ in 1 2 3 4 5; do
	got=$(psql -X -q -At -d "$db" 2>&1 <<'SQL' || true
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT events FROM activity_monitor._process_alerts(1000) \g /dev/null
SELECT last_bound = '-infinity' FROM activity_monitor.alert_state;
COMMIT;
SQL
)
	[ "$got" = t ] && break
	sleep 0.5
done
[ "$got" = t ] || fail "a batch under repeatable read kept a bound: $got"
echo "ok: a batch under repeatable read keeps no bound"
