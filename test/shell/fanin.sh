#!/usr/bin/env bash
# Fan-in to a reporting cluster (issue 15): two primaries (src1, src2), each
# with the extension, publish their activity (publish_via_partition_root,
# inserts only) to a third cluster, which subscribes to each under the
# source's name.  Asserts:
#  1. the reporting cluster holds every event of each source exactly once,
#     the same content, with source and source_id set and ids of its own,
#     unique; the views show the source; it captures nothing itself;
#  2. its own rules run over the combined stream: one IP behind accounts
#     on the two shards fires a distinct-sources rule (and an IP used on one
#     shard only does not); a per-event rule alerts each received match once;
#  3. the reporting cluster down while the sources write, then back: every
#     event arrives, none twice;
#  4. a source's replication slot dropped: sources shows the apply errors;
#     the subscription made again copies the source and skips what the
#     reporting cluster has: every event once;
#  5. it seals what it received: verify() finds nothing wrong;
#  6. a source still at 0.1.0 (no source columns, db_user a name) feeds a
#     reporting cluster at 0.2.0;
#  7. the reporting database's owner sets default_transaction_read_only:
#     events still arrive;
#  8. a publication that sends truncates: the reporting cluster refuses the
#     TRUNCATE (sources shows the errors) and keeps every event.
# Prints the ingest rate (one source's 20,000-event transaction) and the
# replication lag under pgbench capture on both sources.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
unset AM_PORT
work=$AM_TMP/fanin
rm -rf "$work"
mkdir -p "$work"
chmod 777 "$work"
declare -A port
dirs=()
cleanup() {
	for c in "${dirs[@]}"; do
		am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/$c/data" -m immediate -w stop >/dev/null 2>&1 || true
	done
}
trap cleanup EXIT
q() { psql -X -At -v ON_ERROR_STOP=1 -h "$work/$1" -p "${port[$1]}" -U postgres -d postgres -c "$2"; }
for c in src1 src2 report; do
	port[$c]=$(am_free_port)
	AM_PORT=${port[$c]} am_cluster_start "$work/$c" "activity_monitor.naptime = 1" "activity_monitor.seal_interval = 1" \
		"wal_level = logical" "max_replication_slots = 10" "max_wal_senders = 10" >/dev/null
	dirs+=("$c")
done
for c in src1 src2; do
	PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$work/$c" -p "${port[$c]}" -U postgres \
		-d postgres >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE sessions (id int PRIMARY KEY, account_id int, ip text, status text);
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('sessions', 'login', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
CREATE PUBLICATION am_activity FOR TABLE activity_monitor.activity
	WITH (publish_via_partition_root = true, publish = 'insert');
INSERT INTO sessions SELECT g, g, '10.' || current_setting('port')::int % 250 || '.0.' || g, 'active' FROM generate_series(1, 100) g;
INSERT INTO payments SELECT g, g % 100, g * 3, 'pending' FROM generate_series(1, 100) g;
UPDATE sessions SET status = 'closed' WHERE id % 3 = 0;
SQL
done
q report "CREATE EXTENSION activity_monitor" >/dev/null
subscribe() {	# subscribe the reporting cluster to source $1, named after it
	q report "CREATE SUBSCRIPTION $1 CONNECTION 'host=$work/$1 port=${port[$1]} user=postgres dbname=postgres'
		PUBLICATION am_activity" >/dev/null 2>&1 || fail "CREATE SUBSCRIPTION $1"
}
subscribe src1
subscribe src2

# every event of each source once, with the same content
content() {	# $1: cluster, $2: the source's name or empty (the source itself)
	local where="WHERE true" idcol=id
	[ -n "$2" ] && where="WHERE source = '$2'" && idcol=source_id
	q "$1" "SELECT count(*) || ' ' || coalesce(md5(string_agg(concat_ws('|', $idcol, occurred_at, kind, action, table_name,
		row_key, subject_id, actor_type, actor_id, status_from, status_to, critical, old_values, new_values, db_user),
		',' ORDER BY $idcol)), '-') FROM activity_monitor.activity $where"
}
in_sync() {	# wait until the reporting cluster has every event of both sources
	local a b
	for _ in $(seq 1 600); do
		a=$(content src1 ""; content src2 "")
		b=$(content report src1; content report src2)
		[ "$a" = "$b" ] && return 0
		sleep 0.1
	done
	echo "sources: $a"
	echo "report:  $b"
	return 1
}
once() {	# every received event once, ids unique
	[ "$(q report "SELECT count(*) FILTER (WHERE source IS NOT NULL)
			= count(DISTINCT (source, source_id)) FILTER (WHERE source IS NOT NULL)
		AND count(*) = count(DISTINCT id) FROM activity_monitor.activity")" = t ] || fail "$1: an event twice, or ids not unique"
}
in_sync || fail "the reporting cluster did not receive every event of both sources"
once "after the first copy"
n1=$(q src1 "SELECT count(*) FROM activity_monitor.activity")
n2=$(q src2 "SELECT count(*) FROM activity_monitor.activity")
[ "$(q report "SELECT count(*) FROM activity_monitor.activity WHERE source IS NULL AND kind <> 'admin'")" = 0 ] ||
	fail "the reporting cluster captured events of its own"
[ "$(q report "SELECT count(DISTINCT source) || ' ' || count(*) FILTER (WHERE source_id IS NULL) FROM activity_monitor.timeline
	WHERE source IS NOT NULL")" = "2 0" ] || fail "timeline does not show the source and its id"
[ "$(q report "SELECT count(*) FROM activity_monitor.user_sessions")" = 200 ] ||
	fail "user_sessions merged the sessions of two sources: $(q report "SELECT count(*) FROM activity_monitor.user_sessions")"
[ "$(q report "SELECT string_agg(source || ':' || enabled || ':' || synchronized, ' ') FROM activity_monitor.sources")" = \
	"src1:true:true src2:true:true" ] || fail "sources: $(q report "SELECT * FROM activity_monitor.sources")"
echo "ok: the reporting cluster holds the $n1 + $n2 events of both sources once each, with source and source_id; it captures nothing itself"

# --- rules over the combined stream ---------------------------------------------------
# (made now: the alert engine starts from its first batch, the copied history is not alerted)
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$work/report" -p "${port[report]}" -U postgres \
	-d postgres >/dev/null <<'SQL'
-- one IP behind logins on two shards
SELECT activity_monitor.create_rule('ip_on_two_shards', '$.action == "insert"', kinds => '{login}',
	within => '1 hour', threshold => 2, measure => 'distinct', measure_path => '$.source',
	group_by => '$.new.ip', channel => 'am_fanin');
SELECT activity_monitor.create_rule('big_payment', '$.new.amount > 250', kinds => '{payment}', channel => 'am_fanin');
SQL
made=$(q report "SELECT clock_timestamp()")
for _ in $(seq 1 100); do
	[ "$(q report "SELECT last_run_at > '$made' FROM activity_monitor.alert_state")" = t ] && break
	sleep 0.1
done
for c in src1 src2; do
	q $c "INSERT INTO payments SELECT g, g % 100, g - 300, 'pending' FROM generate_series(501, 600) g" >/dev/null
done
q src1 "INSERT INTO sessions VALUES (1001, 501, '192.0.2.7', 'active'), (1002, 502, '192.0.2.8', 'active'),
	(1003, 503, '192.0.2.8', 'active')" >/dev/null
q src2 "INSERT INTO sessions VALUES (1001, 901, '192.0.2.7', 'active')" >/dev/null
in_sync || fail "new logins did not arrive"
for _ in $(seq 1 300); do
	[ "$(q report "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'ip_on_two_shards'")" -ge 1 ] && break
	sleep 0.1
done
sleep 1.5
[ "$(q report "SELECT string_agg(group_key, ',') FROM activity_monitor.alerts WHERE rule_name = 'ip_on_two_shards'")" = "192.0.2.7" ] ||
	fail "cross-shard rule: $(q report "SELECT string_agg(group_key, ',') FROM activity_monitor.alerts WHERE rule_name = 'ip_on_two_shards'")"
want=$(( $(q src1 "SELECT count(*) FROM payments WHERE amount > 250 AND id > 500") + $(q src2 "SELECT count(*) FROM payments WHERE amount > 250 AND id > 500") ))
[ "$(q report "SELECT count(*) || ' ' || count(DISTINCT event_id) FROM activity_monitor.alerts WHERE rule_name = 'big_payment'")" = "$want $want" ] ||
	fail "big_payment: $(q report "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'big_payment'") alerts, want $want"
echo "ok: rules over the combined stream: one IP on two shards fires (an IP on one shard does not); $want received payments alerted once each"

# --- the reporting cluster down for a while ------------------------------------------------
am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/report/data" -m immediate -w stop >/dev/null
for c in src1 src2; do
	q $c "INSERT INTO payments SELECT g, g % 100, 1, 'pending' FROM generate_series(1001, 3000) g" >/dev/null
	q $c "UPDATE payments SET status = 'completed' WHERE id % 2 = 0" >/dev/null
done
am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/report/data" -l "$work/report/server.log" -w -t 60 start >/dev/null
in_sync || fail "after the reporting cluster was down: events missing"
once "after the reporting cluster was down"
echo "ok: the reporting cluster stopped (immediate) while the sources wrote, started again: every event once"

# the dashboard's counts (from the rollup, activity_minute) are the sum of the
# sources', those of events that arrive seconds after their time included: src2's
# subscription paused while src2 writes and the reporting cluster's worker rolls up
q report "ALTER SUBSCRIPTION src2 DISABLE" >/dev/null
sleep 1
q src2 "INSERT INTO payments SELECT g, g % 100, 1, 'pending' FROM generate_series(4001, 4100) g" >/dev/null
sleep 3
q report "ALTER SUBSCRIPTION src2 ENABLE" >/dev/null
in_sync || fail "after src2's subscription was enabled again"
counts() { q "$1" "SELECT coalesce(string_agg(kind || ':' || n, ' ' ORDER BY kind), '') FROM (SELECT e->>'kind' AS kind,
	sum((e->>'last_day')::numeric) AS n FROM activity_monitor.dashboard d, jsonb_array_elements(d.events) e
	WHERE e->>'kind' <> 'admin' GROUP BY 1) x"; }
want=$(q src1 "SELECT string_agg(kind || ':' || n, ' ' ORDER BY kind) FROM (SELECT kind, count(*) AS n FROM activity_monitor.activity
	WHERE kind <> 'admin' GROUP BY kind) x")
want2=$(q src2 "SELECT string_agg(kind || ':' || n, ' ' ORDER BY kind) FROM (SELECT kind, count(*) AS n FROM activity_monitor.activity
	WHERE kind <> 'admin' GROUP BY kind) x")
want=$(echo "$want $want2" | tr ' ' '\n' | awk -F: '{ s[$1] += $2 } END { for (k in s) print k ":" s[k] }' | sort | tr '\n' ' ' | sed 's/ $//')
for _ in $(seq 1 300); do
	[ "$(counts report)" = "$want" ] && break
	sleep 0.1
done
[ "$(counts report)" = "$want" ] || fail "the reporting cluster's dashboard counts: $(counts report), want $want"
echo "ok: the reporting cluster's dashboard counts every event of both sources ($want), those received late included"

# --- a lost replication slot --------------------------------------------------------------------
q src1 "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots WHERE slot_name = 'src1' AND active_pid IS NOT NULL" >/dev/null
for _ in $(seq 1 100); do
	q src1 "SELECT pg_drop_replication_slot('src1')" >/dev/null 2>&1 && break
	sleep 0.05
done
[ "$(q src1 "SELECT count(*) FROM pg_replication_slots WHERE slot_name = 'src1'")" = 0 ] || fail "could not drop src1's slot"
q src1 "INSERT INTO payments SELECT g, g % 100, 1, 'pending' FROM generate_series(3001, 3500) g" >/dev/null
for _ in $(seq 1 300); do
	[ "$(q report "SELECT apply_errors > 0 AND NOT receiving FROM activity_monitor.sources WHERE source = 'src1'")" = t ] && break
	sleep 0.1
done
[ "$(q report "SELECT apply_errors > 0 AND NOT receiving FROM activity_monitor.sources WHERE source = 'src1'")" = t ] ||
	fail "sources does not show src1's errors: $(q report "SELECT * FROM activity_monitor.sources")"
q report "ALTER SUBSCRIPTION src1 DISABLE" >/dev/null
q report "ALTER SUBSCRIPTION src1 SET (slot_name = NONE)" >/dev/null
q report "DROP SUBSCRIPTION src1" >/dev/null
subscribe src1
in_sync || fail "after the slot was lost and the subscription made again"
once "after the copy made again"
grep -q "a copy of source \"src1\" skips the" "$work/report/server.log" || fail "the copy made again did not skip the events it had"
echo "ok: src1's slot dropped: sources showed the errors; the subscription made again copied src1 and skipped what the reporting cluster had: every event once"

# --- the reporting database read-only by default ------------------------------------------------
q report "ALTER DATABASE postgres SET default_transaction_read_only = on" >/dev/null
q report "SELECT pg_terminate_backend(pid) FROM pg_stat_subscription WHERE pid IS NOT NULL" >/dev/null
q src1 "INSERT INTO payments SELECT g, g % 100, 1, 'pending' FROM generate_series(3501, 3600) g" >/dev/null
in_sync || fail "with default_transaction_read_only on the reporting database, events stopped arriving"
PGOPTIONS="-c default_transaction_read_only=off" q report "ALTER DATABASE postgres RESET default_transaction_read_only" >/dev/null
echo "ok: the reporting database's default_transaction_read_only does not stop what replication brings"

# --- seals -----------------------------------------------------------------------------------------
for _ in $(seq 1 300); do
	[ "$(q report "SELECT (SELECT coalesce(sum(event_count), 0) FROM activity_monitor.seal) = (SELECT count(*) FROM activity_monitor.activity)")" = t ] && break
	sleep 0.1
done
[ "$(q report "SELECT count(*) FROM activity_monitor.verify()")" = 0 ] &&
	[ "$(q report "SELECT (SELECT sum(event_count) FROM activity_monitor.seal) = (SELECT count(*) FROM activity_monitor.activity)")" = t ] ||
	fail "the reporting cluster's seals: $(q report "SELECT count(*) FROM activity_monitor.verify()") problems"
echo "ok: the reporting cluster sealed the $(q report "SELECT count(*) FROM activity_monitor.activity") events it holds; verify() finds nothing wrong"

# --- a source at 0.1.0 -------------------------------------------------------------------------------
port[src3]=$(am_free_port)
AM_PORT=${port[src3]} am_cluster_start "$work/src3" "wal_level = logical" "max_replication_slots = 10" \
	"max_wal_senders = 10" >/dev/null
dirs+=(src3)
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$work/src3" -p "${port[src3]}" -U postgres \
	-d postgres >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor VERSION '0.1.0';
CREATE TABLE payments (id int PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
CREATE PUBLICATION am_activity FOR TABLE activity_monitor.activity
	WITH (publish_via_partition_root = true, publish = 'insert');
INSERT INTO payments SELECT g, g % 10, g, 'pending' FROM generate_series(1, 50) g;
SQL
subscribe src3
q src3 "INSERT INTO payments SELECT g, g % 10, g, 'pending' FROM generate_series(51, 100) g" >/dev/null
for _ in $(seq 1 600); do
	[ "$(content src3 "")" = "$(content report src3)" ] && break
	sleep 0.1
done
[ "$(content src3 "")" = "$(content report src3)" ] || fail "a 0.1.0 source: $(content src3 "") against $(content report src3)"
once "with a 0.1.0 source"
echo "ok: a source at 0.1.0 feeds the 0.2.0 reporting cluster: its $(q src3 "SELECT count(*) FROM activity_monitor.activity") events once each"

# --- figures: ingest rate, lag under pgbench capture --------------------------------------------------
t0=$(date +%s.%N)
q src1 "INSERT INTO payments SELECT g, g % 100, 1, 'pending' FROM generate_series(10001, 30000) g" >/dev/null
t1=$(date +%s.%N)
in_sync || fail "the 20,000 events did not arrive"
t2=$(date +%s.%N)
echo "figure: ingest of one 20,000-event transaction: $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f s after its commit, %d events/s", b - a, 20000 / (b - a) }') (the insert itself took $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.2f s", b - a }'))"
cat >"$work/bench.sql" <<'SQL'
\set id random(1, 100)
UPDATE payments SET amount = amount + 1, status = CASE WHEN status = 'pending' THEN 'completed' ELSE 'pending' END WHERE id = :id;
INSERT INTO sessions VALUES (1000000 + :client_id * 100000 + (random() * 99999)::int, :id, '10.1.0.1', 'active') ON CONFLICT (id) DO UPDATE SET status = 'closed';
SQL
for c in src1 src2; do
	pgbench -n -c 2 -T 8 -f "$work/bench.sql" -h "$work/$c" -p "${port[$c]}" -U postgres postgres >"$work/$c.pgbench" 2>&1 &
done
lag=0
for _ in $(seq 1 16); do
	sleep 0.5
	for c in src1 src2; do
		l=$(q $c "SELECT coalesce(max(extract(epoch FROM replay_lag) * 1000), 0)::int FROM pg_stat_replication")
		[ "$l" -gt "$lag" ] && lag=$l
	done
done
wait
t1=$(date +%s.%N)
in_sync || fail "after pgbench the reporting cluster did not catch up"
t2=$(date +%s.%N)
tps=$(grep -ho "tps = [0-9.]*" "$work/src1.pgbench" "$work/src2.pgbench" | awk '{ s += $3 } END { printf "%d", s }')
echo "figure: pgbench capture on both sources ($tps transactions/s in all, about 2.5 events each): replication lag at most ${lag} ms (pg_stat_replication.replay_lag), caught up $(awk -v a="$t1" -v b="$t2" 'BEGIN { printf "%.2f", b - a }') s after pgbench ended"
once "after pgbench"
echo "ok: after pgbench on both sources the reporting cluster holds every event once"

# --- a publication that sends truncates -----------------------------------------------------------------
q src2 "ALTER PUBLICATION am_activity SET (publish = 'insert, truncate')" >/dev/null
errors=$(q report "SELECT apply_errors FROM activity_monitor.sources WHERE source = 'src2'")
held=$(content report src2)
q src2 "TRUNCATE activity_monitor.activity" >/dev/null
for _ in $(seq 1 300); do
	[ "$(q report "SELECT apply_errors > $errors FROM activity_monitor.sources WHERE source = 'src2'")" = t ] && break
	sleep 0.1
done
[ "$(q report "SELECT apply_errors > $errors FROM activity_monitor.sources WHERE source = 'src2'")" = t ] ||
	fail "a replicated TRUNCATE: no apply error in sources"
grep -q 'subscription "src2" cannot truncate the activity' "$work/report/server.log" || fail "the refusal is not in the log"
[ "$(content report src2)" = "$held" ] || fail "a replicated TRUNCATE emptied src2's events on the reporting cluster"
echo "ok: a publication that sends truncates: the reporting cluster refuses the TRUNCATE (sources.apply_errors) and keeps every event"
