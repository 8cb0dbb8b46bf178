#!/usr/bin/env bash
# The alert consumer (src/consumer/activity_monitor_consume.c) against a
# real server, independent of the alert engine: the test plays the worker,
# inserting rows into activity_monitor.alerts and sending
# pg_notify(channel, alert_payload(row)) in the same transaction.  Asserts:
# live alerts printed exactly (the lines alert_payload(alert, true) gives:
# the whole alert, read from the table); nothing from rolled-back
# (sub)transactions, no repeat of an already printed id, nothing for a
# foreign notification (a notification is only a wake-up); after pg_terminate_backend the consumer
# reconnects and prints the alerts fired while it was away once, in id
# order (also under a concurrent writer and repeated kills); a consumer
# restarted with --state-file misses nothing and repeats nothing; several
# channels, quoted names included; --from-id, --count, --timeout, SIGINT and
# SIGTERM.  Absence is checked with a sentinel: the file is compared once a
# later committed alert has been printed.  Every wait has a deadline.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
q() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
db=am_consumer
role=am_consumer_test
work=$AM_TMP/consumer
rm -rf "$work"
mkdir -p "$work"
chmod 777 "$work"

bin=$AM_ROOT/activity_monitor_consume
if [ ! -x "$bin" ]; then
	bin=$AM_TMP/activity_monitor_consume
	gcc -Wall -Wextra -O2 -I"$(pg_config --includedir)" -o "$bin" \
		"$AM_ROOT/src/consumer/activity_monitor_consume.c" -L"$(pg_config --libdir)" -lpq ||
		fail "could not build the consumer"
fi

psql -X -q -c "DROP DATABASE IF EXISTS $db" -c "CREATE DATABASE $db"
q "CREATE EXTENSION activity_monitor" >/dev/null
psql -X -q -c "DROP ROLE IF EXISTS $role" -c "CREATE ROLE $role LOGIN IN ROLE activity_monitor_reader"
conn="dbname=$db user=$role"


pids=()
server_down=
cleanup() {
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	[ -z "$server_down" ] || am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -w -l "$PGHOST/server.log" start >/dev/null
	psql -X -q -c "ALTER ROLE $role LOGIN" 2>/dev/null || true
}
trap cleanup EXIT

# fire CHANNEL N [ROLLBACK|SAVEPOINT]: one transaction inserting N alerts and
# notifying each, as the worker's batch does; prints nothing.  ROLLBACK
# aborts the transaction, SAVEPOINT rolls the alerts back to a savepoint and
# commits.
fire() {
	local ch=$1 n=$2 how=${3:-}
	local pre="BEGIN;" post="COMMIT;"
	[ "$how" = ROLLBACK ] && post="ROLLBACK;"
	[ "$how" = SAVEPOINT ] && pre="BEGIN; SAVEPOINT s;" && post="ROLLBACK TO SAVEPOINT s; COMMIT;"
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<-SQL
	$pre
	DO \$\$
	DECLARE
		al activity_monitor.alerts;
	BEGIN
		FOR i IN 1..$n LOOP
			INSERT INTO activity_monitor.alerts
				(rule_name, severity, channel, group_key, value, event_id, event_ids,
				 occurred_at, kind, action, table_name, subject_id, actor_type, actor_id)
			VALUES ('big_withdrawal', 'critical', '$ch', 'player "' || i || E'"\\\\ é\\n',
					1234.5 * i, 1000 + i, ARRAY[1000 + i, 999], now(), 'payment', 'update',
					'public.payments', repeat('s', 400 + i * 100), 'employee', 'e' || i)
			RETURNING * INTO al;
			PERFORM pg_notify(al.channel, activity_monitor.alert_payload(al));
		END LOOP;
	END
	\$\$;
	$post
	SQL
}

# expected FROM_ID CHANNEL...: the lines of the alerts above FROM_ID
expected() {
	local from=$1
	shift
	local list="" c
	for c in "$@"; do list="$list${list:+,}'$c'"; done
	q "SELECT activity_monitor.alert_payload(a, true) FROM activity_monitor.alerts a
	   WHERE id > $from AND channel IN ($list) ORDER BY id"
}

max_id() { q "SELECT coalesce(max(id), 0) FROM activity_monitor.alerts"; }

# wait_lines FILE N SECS: until FILE has at least N lines
wait_lines() {
	local deadline=$(($(date +%s) + $3))
	while [ "$(date +%s)" -le "$deadline" ]; do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}

# wait_file_has FILE PATTERN SECS
wait_file_has() {
	local deadline=$(($(date +%s) + $3))
	while [ "$(date +%s)" -le "$deadline" ]; do
		grep -q -- "$2" "$1" 2>/dev/null && return 0
		sleep 0.05
	done
	return 1
}

# Ready = connected, listening and caught up: its last statement is the
# catch-up query, which runs after LISTEN.
# ready_sql APPLICATION_NAME [NOT_PID]
ready_sql() {
	echo "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = '$1'
	      AND usename = '$role' AND state = 'idle' AND query LIKE '%FROM activity_monitor.alerts%'
	      AND pid <> ${2:-0})"
}
consumer_pid() { q "SELECT pid FROM pg_stat_activity WHERE application_name = 'activity_monitor_consume'"; }

# check FILE FROM_ID CHANNEL...: FILE holds exactly the expected lines,
# after a sentinel alert on the first channel shows everything is in.
check() {
	local file=$1 from=$2 ch=$3
	fire "$ch" 1
	local want
	want=$(expected "$from" "${@:3}")
	wait_lines "$file" "$(echo "$want" | wc -l)" 20 ||
		fail "$file: $(wc -l <"$file") lines, expected $(echo "$want" | wc -l)"
	diff <(echo "$want") "$file" >"$work/diff" || { cat "$work/diff"; fail "$file differs from the alerts table"; }
}

ch=activity_monitor_alerts

echo "# start: without --from-id or state only new alerts are printed"
fire $ch 2
pre=$(max_id)

# The consumer runs as a plain member of activity_monitor_reader, which must
# be able to call alert_payload(alert, true) (every read does).  If it cannot, that is
# an extension bug: note it, work around it so the consumer's own checks
# still run, and fail at the end.
known_bug=""
if ! psql -X -q -d "$db" -c "SET ROLE $role" -c "SELECT activity_monitor.alert_payload(a, true) FROM activity_monitor.alerts a" \
	>/dev/null 2>"$work/priv.err"; then
	known_bug="activity_monitor_reader cannot run alert_payload(): $(head -n 1 "$work/priv.err")"
	echo "FAIL (extension): $known_bug"
	q "GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA activity_monitor TO $role" >/dev/null
fi
"$bin" -d "$conn" --state-file "$work/c1.state" >"$work/c1.out" 2>"$work/c1.err" &
c1=$!
pids+=("$c1")
am_wait_for 15 "$db" "$(ready_sql activity_monitor_consume)" || { cat "$work/c1.err"; fail "consumer not ready"; }
[ "$(cat "$work/c1.state")" = "$pre" ] || fail "state file holds '$(cat "$work/c1.state")', expected $pre"

echo "# (1) live alerts are printed exactly"
fire $ch 1
fire $ch 3
check "$work/c1.out" "$pre" $ch
grep -q '…' "$work/c1.out" || fail "long subject_id not cut in the payload"
[ "$(wc -l <"$work/c1.out")" = 5 ] || fail "expected 5 lines"

echo "# (2) rolled-back alerts, repeated ids and foreign notifications print nothing"
fire $ch 2 ROLLBACK
fire $ch 1 SAVEPOINT
q "SELECT pg_notify('$ch', activity_monitor.alert_payload(a)) FROM activity_monitor.alerts a
   WHERE id = $((pre + 2))" >/dev/null
q "NOTIFY $ch, 'not an alert'" >/dev/null
check "$work/c1.out" "$pre" $ch
[ "$(wc -l <"$work/c1.out")" = 6 ] || fail "expected 6 lines"
[ ! -s "$work/c1.err" ] || fail "notifications reported on stderr: $(cat "$work/c1.err")"

echo "# (3) terminated connection: alerts fired while away printed once, in order"
q "ALTER ROLE $role NOLOGIN" >/dev/null
q "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = 'activity_monitor_consume'" >/dev/null
wait_file_has "$work/c1.err" "terminating connection" 10 || { cat "$work/c1.err"; fail "loss not reported"; }
am_wait_for 10 "$db" "SELECT count(*) = 0 FROM pg_stat_activity WHERE usename = '$role'" ||
	fail "terminated backend still there"
fire $ch 2
fire $ch 1 ROLLBACK
fire $ch 1
[ "$(q "SELECT count(*) FROM pg_stat_activity WHERE usename = '$role'")" = 0 ] ||
	fail "consumer connected while its role cannot log in"
kill -0 "$c1" || fail "consumer exited on connection loss"
q "ALTER ROLE $role LOGIN" >/dev/null
check "$work/c1.out" "$pre" $ch
[ "$(grep -c "terminating connection" "$work/c1.err")" = 1 ] || fail "loss reported more than once"
echo "  stderr: $(tr '\n' '|' <"$work/c1.err")"

echo "# (3b) repeated kills under a concurrent writer: nothing missed, nothing twice"
am_wait_for 15 "$db" "$(ready_sql activity_monitor_consume)" || fail "consumer not back"
(for i in $(seq 1 60); do fire $ch $((i % 3 + 1)); done) &
writer=$!
pids+=("$writer")
for k in 1 2 3 4 5; do
	old=$(consumer_pid)
	q "SELECT pg_terminate_backend($old)" >/dev/null
	am_wait_for 15 "$db" "$(ready_sql activity_monitor_consume "$old")" || fail "consumer not back after kill $k"
	sleep 0.2
done
wait "$writer" || fail "writer failed"
check "$work/c1.out" "$pre" $ch
echo "  $(wc -l <"$work/c1.out") lines, $(grep -c "reconnecting" "$work/c1.err") loss reports"

echo "# (3c) server restart: the consumer waits it out and catches up"
losses=$(grep -c "reconnecting" "$work/c1.err")
am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -w -m fast stop >/dev/null
server_down=1
deadline=$(($(date +%s) + 10))
until [ "$(grep -c "reconnecting" "$work/c1.err")" -gt "$losses" ]; do
	[ "$(date +%s)" -le "$deadline" ] || fail "server shutdown not reported"
	sleep 0.05
done
am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -w -l "$PGHOST/server.log" start >/dev/null
server_down=
fire $ch 2
check "$work/c1.out" "$pre" $ch
kill -0 "$c1" || fail "consumer exited during the server restart"

echo "# (4) restart with --state-file: misses nothing, repeats nothing"
kill -TERM "$c1"
wait "$c1" || fail "consumer exit status $? on SIGTERM"
stopped_at=$(cat "$work/c1.state")
[ "$stopped_at" = "$(max_id)" ] || fail "state file $(cat "$work/c1.state") is not the last id $(max_id)"
fire $ch 2
fire $ch 1 ROLLBACK
"$bin" -d "$conn" --state-file "$work/c1.state" >"$work/c1b.out" 2>"$work/c1b.err" &
c1=$!
pids+=("$c1")
am_wait_for 15 "$db" "$(ready_sql activity_monitor_consume)" || { cat "$work/c1b.err"; fail "restarted consumer not ready"; }
fire $ch 1
check "$work/c1b.out" "$stopped_at" $ch
cat "$work/c1.out" "$work/c1b.out" >"$work/c1all.out"
diff <(expected "$pre" $ch) "$work/c1all.out" >"$work/diff" || { cat "$work/diff"; fail "first + restarted output differs from the table"; }
[ "$(wc -l <"$work/c1b.out")" = 4 ] || fail "restarted consumer printed $(wc -l <"$work/c1b.out") lines, expected 4"
kill -INT "$c1"
wait "$c1" || fail "consumer exit status $? on SIGINT"

echo "# --from-id, --count, --timeout"
total=$(expected 0 $ch | wc -l)
timeout 20 "$bin" -d "$conn" --from-id 0 --count "$total" >"$work/all.out" || fail "--from-id 0 --count $total failed"
diff <(expected 0 $ch) "$work/all.out" >"$work/diff" || { cat "$work/diff"; fail "--from-id 0 output differs"; }
timeout 20 "$bin" -d "$conn" --from-id "$pre" --count 2 >"$work/two.out" || fail "--count 2 failed"
diff <(expected "$pre" $ch | head -n 2) "$work/two.out" >/dev/null || fail "--count 2 output wrong"
t0=$(date +%s)
timeout 20 "$bin" -d "$conn" --timeout 1 >"$work/none.out" || fail "--timeout 1 did not exit 0"
[ $(($(date +%s) - t0)) -le 5 ] || fail "--timeout 1 took too long"
[ ! -s "$work/none.out" ] || fail "--timeout run printed old alerts"
if timeout 20 "$bin" -d "dbname=$db user=nobody_here" --timeout 5 2>"$work/bad.err"; then
	fail "a failing first connection should exit 1"
fi
grep -q "nobody_here" "$work/bad.err" || fail "first connection error not reported"

echo "# (5) several channels, catch-up and live, quoted names"
chs=(am_ops 'Am-Sec"x')
start=$(max_id)
fire am_ops 1
fire 'Am-Sec"x' 1
fire am_other 1
fire $ch 1
"$bin" -d "$conn application_name=am_multi" -c am_ops -c 'Am-Sec"x' --from-id "$start" \
	>"$work/c2.out" 2>"$work/c2.err" &
c2=$!
pids+=("$c2")
am_wait_for 15 "$db" "$(ready_sql am_multi)" || { cat "$work/c2.err"; fail "multi-channel consumer not ready"; }
fire 'Am-Sec"x' 2
fire am_other 2
fire am_ops 1
fire $ch 1
check "$work/c2.out" "$start" "${chs[@]}"
check "$work/c2.out" "$start" 'Am-Sec"x' am_ops
[ "$(wc -l <"$work/c2.out")" = 7 ] || fail "expected 7 lines on two channels"
kill -TERM "$c2"
wait "$c2" || fail "multi-channel consumer exit status $?"

[ -z "$known_bug" ] || fail "consumer checks passed, but: $known_bug"
echo "consumer: all checks passed"
