#!/usr/bin/env bash
# Read replicas (issue 15): a physical streaming standby of a primary with
# the extension (pg_basebackup -R), on its own port and socket.
#  1. once replay has caught up, every back-office view answers on the
#     standby with the primary's rows (timeline, admin_actions,
#     critical_changes, user_sessions, operational_activity, the dashboard
#     but its generation time, open_alerts, rules, the seals' head);
#  2. no worker runs there and worker_status says so (standby true, running
#     false); a change to the monitoring is refused with a clear error;
#  3. what the primary captures next reaches the standby's views;
#  4. pg_ctl promote: the worker starts on the new primary by itself,
#     captures, alerts on new events (each once) and seals them.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
unset AM_PORT
dir=$AM_TMP/replica
sdir=$AM_TMP/replica_standby
am_cluster_start "$dir" "activity_monitor.naptime = 1" "activity_monitor.seal_interval = 1" >/dev/null
pport=$PGPORT
sport=$(am_free_port)
[ "$sport" != "$pport" ] || sport=$((pport + 1))
standby_up=
cleanup() {
	[ -n "$standby_up" ] && am_as_owner "$AM_PGBIN/pg_ctl" -D "$sdir/data" -m immediate -w stop >/dev/null 2>&1
	am_cluster_stop
}
trap cleanup EXIT
db=postgres
p() { psql -X -At -v ON_ERROR_STOP=1 -h "$dir" -p "$pport" -d $db -c "$1"; }
s() { psql -X -At -v ON_ERROR_STOP=1 -h "$sdir" -p "$sport" -d $db -c "$1"; }

PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$dir" -p "$pport" -d $db >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE accounts (id int PRIMARY KEY, email text, balance numeric);
CREATE TABLE sessions (id int PRIMARY KEY, account_id int, status text);
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id', critical_columns => '{balance}');
SELECT activity_monitor.track('sessions', 'login', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status',
	critical_statuses => '{completed}');
SELECT activity_monitor.create_rule('big_payment', '$.new.amount > 1000', severity => 'critical',
	kinds => '{payment}', channel => 'am_replica');
INSERT INTO accounts SELECT g, 'a' || g || '@x', 100 FROM generate_series(1, 50) g;
INSERT INTO sessions SELECT g, g % 50 + 1, 'active' FROM generate_series(1, 80) g;
SELECT activity_monitor.set_actor('employee', 'emp-1', 'ticket 9');
UPDATE accounts SET balance = 0 WHERE id <= 5;
SELECT activity_monitor.set_actor('user', 'u-1');
UPDATE sessions SET status = 'closed' WHERE id % 4 = 0;
INSERT INTO payments SELECT g, g % 50 + 1, g * 10, 'pending' FROM generate_series(1, 200) g;
UPDATE payments SET status = 'completed' WHERE id % 3 = 0;
SQL
# the worker alerts on the big payments and seals everything
all_alerted="SELECT (SELECT count(*) FROM activity_monitor.alerts)
	= (SELECT count(*) FROM activity_monitor.activity WHERE matched IS NOT NULL)"
am_wait_for 60 $db "$all_alerted AND (SELECT count(*) > 100 FROM activity_monitor.alerts)" ||
	fail "the primary's worker did not alert: $(p "SELECT count(*) FROM activity_monitor.alerts")"
am_wait_for 60 $db "SELECT (SELECT sum(event_count) FROM activity_monitor.seal) = (SELECT count(*) FROM activity_monitor.activity)" ||
	fail "the primary's worker did not seal"
p "SELECT activity_monitor.acknowledge(id) FROM activity_monitor.alerts WHERE id % 2 = 0" >/dev/null

# --- the standby -------------------------------------------------------------------
mkdir -p "$sdir"
[ "$(id -u)" = 0 ] && chown postgres "$sdir"
chmod 777 "$sdir"
am_as_owner "$AM_PGBIN/pg_basebackup" -h "$dir" -p "$pport" -U postgres -D "$sdir/data" -R -X stream -c fast \
	>"$sdir/basebackup.log" 2>&1 || fail "pg_basebackup: $(cat "$sdir/basebackup.log")"
{
	echo "port = $sport"
	echo "unix_socket_directories = '$sdir'"
	echo "hot_standby = on"
} >>"$sdir/data/postgresql.conf"
am_as_owner "$AM_PGBIN/pg_ctl" -D "$sdir/data" -l "$sdir/server.log" -w -t 60 start >/dev/null ||
	fail "the standby did not start: $(tail -5 "$sdir/server.log")"
standby_up=1
[ "$(s "SELECT pg_is_in_recovery()")" = t ] || fail "the standby is not in recovery"

caught_up() {	# the standby has replayed everything the primary wrote so far
	local lsn
	lsn=$(p "SELECT pg_current_wal_lsn()")
	for _ in $(seq 1 300); do
		[ "$(s "SELECT pg_last_wal_replay_lsn() >= '$lsn'::pg_lsn")" = t ] && return 0
		sleep 0.1
	done
	fail "the standby did not replay up to $lsn"
}
# every view, in a stable order, as text; the dashboard without its generation time
views() {
	local q=$1
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.timeline x"
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.admin_actions x"
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.critical_changes x"
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.user_sessions x"
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.operational_activity x"
	$q "SELECT md5(string_agg((to_jsonb(x) - 'generated_at')::text, ',')) FROM activity_monitor.dashboard x"
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.open_alerts x"
	$q "SELECT md5(string_agg(x::text, ',' ORDER BY x::text)) FROM activity_monitor.rules x"
	$q "SELECT seal_id || ' ' || hash FROM activity_monitor.seal_head()"
	$q "SELECT count(*) FROM activity_monitor.timeline"
}
same_views() {	# the worker writes (rollup, seals) each second: compare a few times
	for _ in 1 2 3 4 5; do
		caught_up
		vp=$(views p)
		vs=$(views s)
		[ "$vp" = "$vs" ] && return 0
		sleep 0.3
	done
	paste <(echo "$vp") <(echo "$vs")
	return 1
}
same_views || fail "the standby's views differ from the primary's (left: primary)"
echo "ok: every view answers on the standby with the primary's rows ($(tail -1 <<<"$vp") events)"
[ "$(s "SELECT count(*) FROM activity_monitor.verify()")" = 0 ] || fail "verify() on the standby reports problems"

# --- 2. no worker on the standby -------------------------------------------------------
sleep 2
[ "$(s "SELECT count(*) FROM pg_stat_activity WHERE backend_type LIKE 'activity_monitor%'")" = 0 ] ||
	fail "activity_monitor processes run on the standby: $(s "SELECT backend_type FROM pg_stat_activity WHERE backend_type LIKE 'activity_monitor%'")"
[ "$(s "SELECT standby || ' ' || running FROM activity_monitor.worker_status")" = "true false" ] ||
	fail "worker_status on the standby: $(s "SELECT standby, running FROM activity_monitor.worker_status")"
[ "$(p "SELECT standby || ' ' || running FROM activity_monitor.worker_status")" = "false true" ] ||
	fail "worker_status on the primary: $(p "SELECT standby, running FROM activity_monitor.worker_status")"
err=$(s "SELECT activity_monitor.create_rule('x', '\$.a == 1')" 2>&1) && fail "create_rule ran on the standby"
grep -q "read-only transaction" <<<"$err" || fail "create_rule on the standby: $err"
echo "ok: no worker on the standby, worker_status says so, a change to the monitoring is refused ($(head -1 <<<"$err"))"

# --- 3. new captures reach the standby ----------------------------------------------------
n_alerts=$(p "SELECT count(*) FROM activity_monitor.alerts")
p "INSERT INTO payments VALUES (1001, 7, 5000, 'pending')" >/dev/null
am_wait_for 60 $db "SELECT count(*) = $n_alerts + 1 FROM activity_monitor.alerts" || fail "no alert for the new payment"
caught_up
[ "$(s "SELECT count(*) FROM activity_monitor.timeline WHERE table_name = 'public.payments' AND row_key = '1001'")" = 1 ] &&
	[ "$(s "SELECT count(*) FROM activity_monitor.open_alerts o JOIN activity_monitor.activity a ON a.id = o.event_id
		WHERE a.table_name = 'public.payments' AND a.row_key = '1001' AND o.rule_name = 'big_payment'")" = 1 ] ||
	fail "the new payment or its alert did not reach the standby"
same_views || fail "after new captures the standby's views differ"
echo "ok: a new capture and its alert reach the standby's views"

# --- 4. promotion ----------------------------------------------------------------------------
am_cluster_stop
am_as_owner "$AM_PGBIN/pg_ctl" -D "$sdir/data" -w -t 60 promote >/dev/null || fail "pg_ctl promote failed"
for _ in $(seq 1 300); do
	[ "$(s "SELECT pg_is_in_recovery()")" = f ] && break
	sleep 0.1
done
for _ in $(seq 1 300); do
	[ "$(s "SELECT running FROM activity_monitor.worker_status")" = t ] && break
	sleep 0.1
done
[ "$(s "SELECT standby || ' ' || running FROM activity_monitor.worker_status")" = "false true" ] ||
	fail "after promotion no worker runs: $(s "SELECT * FROM activity_monitor.worker_status")"
n_alerts=$(s "SELECT count(*) FROM activity_monitor.alerts")
s "INSERT INTO payments VALUES (1002, 8, 7000, 'pending'), (1003, 9, 10, 'pending')" >/dev/null
for _ in $(seq 1 300); do
	[ "$(s "SELECT count(*) FROM activity_monitor.alerts")" = $((n_alerts + 1)) ] && break
	sleep 0.1
done
[ "$(s "SELECT count(*) - $n_alerts || ' ' || count(*) - count(DISTINCT event_id) FROM activity_monitor.alerts")" = "1 0" ] &&
	[ "$(s "SELECT count(*) FROM activity_monitor.alerts a JOIN activity_monitor.activity e ON e.id = a.event_id WHERE e.row_key = '1002'")" = 1 ] ||
	fail "after promotion: $(s "SELECT count(*), count(DISTINCT event_id) FROM activity_monitor.alerts") alerts (distinct events), want $((n_alerts + 1)) with one for payment 1002"
for _ in $(seq 1 300); do
	[ "$(s "SELECT (SELECT sum(event_count) FROM activity_monitor.seal) = (SELECT count(*) FROM activity_monitor.activity)")" = t ] && break
	sleep 0.1
done
[ "$(s "SELECT count(*) FROM activity_monitor.verify()")" = 0 ] &&
	[ "$(s "SELECT (SELECT sum(event_count) FROM activity_monitor.seal) = (SELECT count(*) FROM activity_monitor.activity)")" = t ] ||
	fail "after promotion the new primary's history is not sealed whole and intact"
echo "ok: after pg_ctl promote the worker starts by itself, alerts once on a new event and seals it"
