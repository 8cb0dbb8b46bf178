#!/usr/bin/env bash
# Notifications leak and can be forged (issue 10).  NOTIFY has no
# privileges: every role that can connect can LISTEN on an alert channel and
# NOTIFY on it.  Asserts, with a role that has no privilege at all:
# (a) forged and malformed notifications (a huge alert_id, not JSON, the
#     JSON of an alert that does not exist yet, of one already printed but
#     with other content, empty, 7999 bytes) interleaved with real alerts
#     change nothing in the consumer: its output and its state file are those
#     of a run without the noise, and no real alert is skipped;
# (b) listening on the alert channel, it receives payloads with alert_id,
#     rule, severity and fired_at only: no subject_id, actor_id, group_key,
#     value or table data;
# (c) a rule created with full_payload => true sends the whole alert, and
#     the rules view shows the option (NULL is refused); an existing rule
#     opts in and out with set_rule_full_payload();
# (d) the state file is replaced atomically: a symbolic link planted at the
#     temporary file's path is not followed, a stale temporary file does not
#     block the consumer, the state file is a regular file of mode 0600 even
#     under umask 000;
# (e) a consumer whose role lacks activity_monitor_reader exits 1 and says
#     so; (f) --poll-interval reads the table without any notification;
# (g) a rule's full payload turned off while the worker's batch is under
#     way (it loaded the rules, then waits to insert the alert): the
#     notification is the public payload, as alert_payload(alert) is.
# Parts (a), (b), (d) and (e) use only what 0.1.0 had, so on 0.1.0 they fail
# for the attack itself.  Every failure is reported, then the script exits 1.
# Every wait has a deadline.
set -uo pipefail
export PGCLIENTENCODING=UTF8
db=am_notify
. "$AM_ROOT/test/lib/shell.sh"
reader=am_notify_reader
nobody=am_notify_nobody
ch=activity_monitor_alerts
work=$AM_TMP/notify
rm -rf "$work"
mkdir -p "$work"
chmod 777 "$work"

failures=0
bad() { echo "FAIL: $*"; failures=$((failures + 1)); }

bin=$AM_ROOT/activity_monitor_consume
[ -x "$bin" ] || { echo "FAIL: no consumer at $bin"; exit 1; }

pids=()
cleanup() {
	exec 3>&- 2>/dev/null || true
	for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
	am_db_drop
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP ROLE IF EXISTS $reader" -c "DROP ROLE IF EXISTS $nobody" >/dev/null 2>&1 || true
}
trap cleanup EXIT

am_db_new
q "CREATE EXTENSION activity_monitor" >/dev/null || fail "CREATE EXTENSION failed"
psql -X -q -d postgres -c "SET client_min_messages = warning" \
	-c "DROP ROLE IF EXISTS $reader" -c "DROP ROLE IF EXISTS $nobody" \
	-c "CREATE ROLE $reader LOGIN IN ROLE activity_monitor_reader" -c "CREATE ROLE $nobody LOGIN" >/dev/null ||
	fail "could not create the roles"
# as nobody: SQL from its own session, a role with no grant at all
qn() { psql -X -At -q -v ON_ERROR_STOP=1 -U "$nobody" -d "$db" -c "$1"; }

max_id() { q "SELECT coalesce(max(id), 0) FROM activity_monitor.alerts"; }

# fire [N] [NONOTIFY]: the worker's part, played by the superuser: insert
# N alerts and notify each (unless NONOTIFY) in one transaction.
fire() {
	local n=${1:-1} notify="PERFORM pg_notify(al.channel, activity_monitor.alert_payload(al));"
	[ "${2:-}" = NONOTIFY ] && notify=""
	psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<-SQL
	DO \$\$
	DECLARE
		al activity_monitor.alerts;
	BEGIN
		FOR i IN 1..$n LOOP
			INSERT INTO activity_monitor.alerts
				(rule_name, severity, channel, group_key, value, event_id, event_ids,
				 occurred_at, kind, action, table_name, subject_id, actor_type, actor_id)
			VALUES ('big_withdrawal', 'critical', '$ch', 'player ' || i, 1234.5 * i, 1000 + i,
					ARRAY[1000 + i], now(), 'payment', 'update', 'public.payments', 's' || i,
					'employee', 'e' || i)
			RETURNING * INTO al;
			$notify
		END LOOP;
	END
	\$\$;
	SQL
}

# ready APPLICATION_NAME: connected, listening and caught up (its last
# statement read the alerts table and it is idle)
ready() {
	am_wait_for 15 "$db" "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE application_name = '$1'
		AND state = 'idle' AND query LIKE '%FROM activity_monitor.alerts%')"
}
# wait_lines FILE N SECS: until FILE has at least N lines
wait_lines() {
	local deadline=$(($(date +%s) + $3))
	while [ "$(date +%s)" -le "$deadline" ]; do
		[ "$(wc -l <"$1")" -ge "$2" ] && return 0
		sleep 0.05
	done
	return 1
}
ids_of() { grep -o '"alert_id" *: *[0-9-]*' "$1" | grep -o '[0-9-]*$'; }

# --- (a) forged notifications ---------------------------------------------------
echo "# (a) forged and malformed notifications from a role without privileges change nothing"
fire 2
pre=$(max_id)
# (d) a symbolic link planted at the temporary path, pointing at a file the
# consumer's user may write
printf 'precious\n' >"$work/victim"
ln -s "$work/victim" "$work/a.state.tmp"
(umask 000 && exec "$bin" -d "dbname=$db user=$reader application_name=am_noisy" --from-id "$pre" \
	--state-file "$work/a.state" >"$work/a.out" 2>"$work/a.err") &
pids+=($!)
noisy=$!
ready am_noisy || { cat "$work/a.err"; fail "the consumer did not start"; }
big=$(printf '%07999d' 0 | tr 0 x)
for i in 1 2 3 4 5 6; do
	next=$(($(max_id) + 1))
	qn "NOTIFY $ch, '{\"alert_id\": 9000000000000000000, \"rule\": \"forged\", \"severity\": \"critical\"}'" ||
		bad "the unprivileged role could not NOTIFY (test setup)"
	qn "NOTIFY $ch, 'not json {\"alert_id\": $((next + 5))'" >/dev/null
	qn "SELECT pg_notify('$ch', json_build_object('alert_id', $next, 'rule', 'forged_next', 'severity',
		'critical', 'subject_id', 'victim')::text)" >/dev/null
	fire 1
	qn "SELECT pg_notify('$ch', json_build_object('alert_id', $next, 'rule', 'forged_again')::text)" >/dev/null
	qn "NOTIFY $ch" >/dev/null
	qn "NOTIFY $ch, '{\"alert_id\": -1}'" >/dev/null
	qn "NOTIFY $ch, '$big'" >/dev/null
	[ "$i" = 3 ] && fire 2
done
fire 1
real=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE id > $pre")
wait_lines "$work/a.out" "$real" 20 || bad "the consumer printed $(wc -l <"$work/a.out") lines for $real real alerts"
kill -TERM "$noisy"
wait "$noisy" || bad "the consumer exited with $? on SIGTERM"
diff <(q "SELECT id FROM activity_monitor.alerts WHERE id > $pre ORDER BY id") <(ids_of "$work/a.out") >"$work/ids.diff" ||
	{ cat "$work/ids.diff"; bad "the alert ids printed are not the real alerts' (a forged one printed, or a real one skipped)"; }
grep -q forged "$work/a.out" && bad "a forged alert was printed"
[ "$(cat "$work/a.state" 2>/dev/null)" = "$(max_id)" ] ||
	bad "the state file holds '$(cat "$work/a.state" 2>/dev/null)', expected the last real id $(max_id)"

# the same alerts without the noise: a consumer catching up from the table
printf 'garbage from a crash\n' >"$work/b.state.tmp"
(cd "$work" && umask 000 && exec timeout 20 "$bin" -d "dbname=$db user=$reader" --from-id "$pre" \
	--state-file b.state --count "$real" >"$work/b.out" 2>"$work/b.err") ||
	{ cat "$work/b.err"; bad "the run without noise failed"; }
cmp -s "$work/a.out" "$work/b.out" || { diff "$work/a.out" "$work/b.out" | head; bad "the output differs from the run without noise"; }
cmp -s "$work/a.state" "$work/b.state" || bad "the state file differs from the run without noise"
echo "  $real real alerts, $(wc -l <"$work/a.out") printed with the noise, $(wc -l <"$work/b.out") without"

# --- (d) the state file -------------------------------------------------------------
echo "# (d) the state file is replaced atomically, never through a link, mode 0600"
[ "$(cat "$work/victim")" = precious ] || bad "the consumer wrote through the symbolic link planted at a.state.tmp"
for f in a.state b.state; do
	[ -f "$work/$f" ] && [ ! -L "$work/$f" ] || bad "$f is not a regular file"
	[ "$(stat -c %a "$work/$f" 2>/dev/null)" = 600 ] || bad "$f has mode $(stat -c %a "$work/$f" 2>/dev/null), expected 600"
	[ -e "$work/$f.tmp" ] || [ -L "$work/$f.tmp" ] && bad "$f.tmp is left behind"
done
grep -q "stale temporary state file" "$work/b.err" || bad "the stale temporary file was not reported"

# --- (e) a role without activity_monitor_reader ---------------------------------------
echo "# (e) a role without activity_monitor_reader: exit 1, and says why"
st=0
timeout 20 "$bin" -d "dbname=$db user=$nobody" --from-id 0 --timeout 10 >"$work/e.out" 2>"$work/e.err" || st=$?
[ "$st" = 1 ] || bad "exit status $st, expected 1"
grep -q "activity_monitor_reader" "$work/e.err" || bad "the error does not name activity_monitor_reader: $(cat "$work/e.err")"
[ ! -s "$work/e.out" ] || bad "it printed something"
echo "  $(cat "$work/e.err")"

# --- (b), (c) the worker's payloads --------------------------------------------------
echo "# (b) a listener without privileges sees no personal data; (c) the full-payload opt-in"
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL' || fail "setup failed"
CREATE TABLE payments (id int PRIMARY KEY, account_id text, amount numeric, note text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id');
SELECT activity_monitor.create_rule('private_rule', '$.new.amount > 100', tables => '{payments}',
	group_by => '$.new.note', measure_path => '$.new.amount', channel => 'am_private');
SQL
fr=$(psql -X -At -q -d "$db" -c "SELECT activity_monitor.create_rule('full_rule', '\$.new.amount > 1000',
	tables => '{payments}', group_by => '\$.new.note', measure_path => '\$.new.amount', channel => 'am_full',
	full_payload => true)" 2>&1) || bad "create_rule(full_payload => true) failed: $fr"
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"

rm -f "$work/listen.fifo"
mkfifo "$work/listen.fifo"
psql -X -At -U "$nobody" -d "$db" <"$work/listen.fifo" >"$work/listen.out" 2>&1 &
pids+=($!)
exec 3>"$work/listen.fifo"
echo "LISTEN am_private; LISTEN am_full; SELECT 'listening';" >&3
deadline=$(($(date +%s) + 20))
until grep -q '^listening$' "$work/listen.out"; do
	[ "$(date +%s)" -le "$deadline" ] || fail "the listener did not start: $(cat "$work/listen.out")"
	sleep 0.1
done
psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL' || fail "writes failed"
BEGIN;
SELECT activity_monitor.set_actor('employee', 'SECRET-ACTOR-7');
INSERT INTO payments VALUES (1, 'SECRET-SUBJECT-42', 5000, 'SECRET-KEY-99');
INSERT INTO payments VALUES (2, 'SECRET-SUBJECT-43', 500, 'SECRET-KEY-98');
COMMIT;
SQL
caught_up
n_private=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE channel = 'am_private'")
n_full=$(q "SELECT count(*) FROM activity_monitor.alerts WHERE channel = 'am_full'")
[ "$n_private" = 2 ] && [ "$n_full" = 1 ] || bad "alerts: $n_private on am_private (expected 2), $n_full on am_full (expected 1)"
deadline=$(($(date +%s) + 20))
while [ "$(grep -c '^Asynchronous notification' "$work/listen.out")" -lt $((n_private + n_full)) ]; do
	[ "$(date +%s)" -le "$deadline" ] || { bad "the listener received $(grep -c '^Asynchronous notification' "$work/listen.out") notifications"; break; }
	echo "SELECT 1;" >&3
	sleep 0.1
done
exec 3>&-
payloads() {	# channel
	sed -n "s/^Asynchronous notification \"$1\" with payload \"\\(.*\\)\" received from server process with PID [0-9]*\\.\$/\\1/p" \
		"$work/listen.out"
}
payloads am_private >"$work/private.txt"
payloads am_full >"$work/full.txt"
[ "$(wc -l <"$work/private.txt")" = "$n_private" ] || bad "am_private: $(wc -l <"$work/private.txt") notifications for $n_private alerts"
grep -n 'SECRET\|payments\|5000\|"subject_id"\|"actor_id"\|"group_key"\|"value"\|"table"' "$work/private.txt" &&
	bad "the default payload carries personal or event data"
while IFS= read -r p; do
	keys=$(q "SELECT string_agg(k, ',' ORDER BY k) FROM json_object_keys(\$p\$$p\$p\$::json) k") ||
		{ bad "payload is not JSON: $p"; continue; }
	[ "$keys" = "alert_id,fired_at,rule,severity" ] || bad "payload keys are $keys: $p"
	[ "$(q "SELECT (\$p\$$p\$p\$::json ->> 'fired_at') LIKE '%+00:00'
		AND \$p\$$p\$p\$ = (SELECT activity_monitor.alert_payload(a) FROM activity_monitor.alerts a
							WHERE a.id = (\$p\$$p\$p\$::json ->> 'alert_id')::bigint)")" = t ] ||
		bad "payload is not alert_payload() of its alert, or fired_at is not in UTC: $p"
done <"$work/private.txt"
echo "  am_private: $(head -n 1 "$work/private.txt")"

[ "$(wc -l <"$work/full.txt")" = "$n_full" ] || bad "am_full: $(wc -l <"$work/full.txt") notifications for $n_full alerts"
p=$(head -n 1 "$work/full.txt")
[ "$(q "SELECT \$p\$$p\$p\$ = activity_monitor.alert_payload(a, true)
		AND \$p\$$p\$p\$ = activity_monitor.alert_payload(a)
		AND (\$p\$$p\$p\$::json ->> 'subject_id') = 'SECRET-SUBJECT-42'
		AND (\$p\$$p\$p\$::json ->> 'actor_id') = 'SECRET-ACTOR-7'
		AND (\$p\$$p\$p\$::json ->> 'group_key') = 'SECRET-KEY-99'
		AND (\$p\$$p\$p\$::json ->> 'table') = 'public.payments'
	FROM activity_monitor.alerts a WHERE a.channel = 'am_full'" 2>&1)" = t ] ||
	bad "the opted-in payload is not the whole alert: $p"
echo "  am_full: $p"
[ "$(q "SELECT string_agg(name || '=' || full_payload, ',' ORDER BY id) FROM activity_monitor.rules" 2>&1)" = \
	"private_rule=false,full_rule=true" ] || bad "the rules view does not show full_payload"
# a reader gets the same payloads (the opt-in is read for it) and the whole alert
[ "$(psql -X -At -q -U "$reader" -d "$db" -c "SELECT bool_and(activity_monitor.alert_payload(a) =
		activity_monitor.alert_payload(a, rule_name = 'full_rule')
		AND activity_monitor.alert_payload(a, full_payload => true) LIKE '%SECRET-SUBJECT%')
	FROM activity_monitor.alerts a WHERE channel IN ('am_private', 'am_full')" 2>&1)" = t ] ||
	bad "a reader does not get the payloads"
err=$(q "DO \$\$ BEGIN PERFORM activity_monitor.create_rule('x', '\$.a', full_payload => NULL);
	EXCEPTION WHEN OTHERS THEN RAISE NOTICE '% %', SQLSTATE, SQLERRM; END \$\$" 2>&1 >/dev/null)
[ "$err" = "NOTICE:  22004 full_payload must not be null" ] || bad "full_payload => NULL: $err"
[ "$(q "SELECT count(*) FROM activity_monitor.alert_rule WHERE name = 'x'")" = 0 ] || bad "a refused rule was created"
# set_rule_full_payload(): an existing rule (a 0.1.0 one after the update) opts in and out
[ "$(q "SELECT activity_monitor.set_rule_full_payload('private_rule', true);
	SELECT bool_and(activity_monitor.alert_payload(a) = activity_monitor.alert_payload(a, true))
	FROM activity_monitor.alerts a WHERE rule_name = 'private_rule'" 2>&1 | tail -n 1)" = t ] ||
	bad "set_rule_full_payload(true) did not give the rule the full payload"
[ "$(q "SELECT activity_monitor.set_rule_full_payload('private_rule', false);
	SELECT string_agg(name || '=' || full_payload, ',' ORDER BY id) FROM activity_monitor.rules" 2>&1 | tail -n 1)" = \
	"private_rule=false,full_rule=true" ] || bad "set_rule_full_payload(false) did not take the option back"
for args in "'nope', true|42704 rule \"nope\" does not exist" "'private_rule', NULL|22004 full_payload must not be null"; do
	err=$(q "DO \$\$ BEGIN PERFORM activity_monitor.set_rule_full_payload(${args%%|*});
		EXCEPTION WHEN OTHERS THEN RAISE NOTICE '% %', SQLSTATE, SQLERRM; END \$\$" 2>&1 >/dev/null)
	[ "$err" = "NOTICE:  ${args#*|}" ] || bad "set_rule_full_payload(${args%%|*}): $err"
done

# --- (f) --poll-interval -------------------------------------------------------------
echo "# (f) --poll-interval: an alert without a notification is printed"
start=$(max_id)
"$bin" -d "dbname=$db user=$reader application_name=am_poll" --from-id "$start" --poll-interval 1 \
	>"$work/f.out" 2>"$work/f.err" &
pids+=($!)
poller=$!
ready am_poll || bad "the polling consumer did not start: $(cat "$work/f.err")"
fire 1 NONOTIFY
wait_lines "$work/f.out" 1 15 || bad "an alert without a notification was not printed within 15 s"
kill -TERM "$poller" 2>/dev/null
wait "$poller" || bad "the polling consumer exited with $?"
[ "$(ids_of "$work/f.out")" = "$(max_id)" ] || bad "the polling consumer printed $(cat "$work/f.out")"

# --- (g) the full payload turned off during a batch -------------------------------------
echo "# (g) set_rule_full_payload(false) while the worker's batch waits: the public payload"
rm -f "$work/g.fifo" "$work/lock.fifo"
mkfifo "$work/g.fifo" "$work/lock.fifo"
psql -X -At -U "$nobody" -d "$db" <"$work/g.fifo" >"$work/g.out" 2>&1 &
pids+=($!)
exec 4>"$work/g.fifo"
echo "LISTEN am_full; SELECT 'listening';" >&4
psql -X -At -d "$db" <"$work/lock.fifo" >"$work/lock.out" 2>&1 &
pids+=($!)
exec 5>"$work/lock.fifo"
echo "BEGIN; LOCK TABLE activity_monitor.alerts IN SHARE MODE; SELECT 'locked';" >&5
deadline=$(($(date +%s) + 20))
until grep -q '^listening$' "$work/g.out" && grep -q '^locked$' "$work/lock.out"; do
	[ "$(date +%s)" -le "$deadline" ] || fail "the listener or the lock did not start: $(cat "$work/g.out" "$work/lock.out")"
	sleep 0.1
done
q "INSERT INTO payments VALUES (3, 'SECRET-SUBJECT-44', 5000, 'SECRET-KEY-97')" >/dev/null
am_wait_for 20 "$db" "SELECT count(*) > 0 FROM pg_locks l JOIN pg_stat_activity a USING (pid)
	WHERE NOT l.granted AND l.relation = 'activity_monitor.alerts'::regclass
	AND a.backend_type = 'activity_monitor worker'" || bad "the worker's batch did not wait for the alerts table"
q "SELECT activity_monitor.set_rule_full_payload('full_rule', false)" >/dev/null
echo "COMMIT;" >&5
exec 5>&-
caught_up
deadline=$(($(date +%s) + 20))
until grep -q '^Asynchronous notification "am_full"' "$work/g.out"; do
	[ "$(date +%s)" -le "$deadline" ] || { bad "no notification on am_full"; break; }
	echo "SELECT 1;" >&4
	sleep 0.1
done
exec 4>&-
p=$(sed -n 's/^Asynchronous notification "am_full" with payload "\(.*\)" received from server process with PID [0-9]*\.$/\1/p' "$work/g.out" | head -n 1)
[ -n "$p" ] && [ "$(q "SELECT string_agg(k, ',' ORDER BY k) FROM json_object_keys(\$p\$$p\$p\$::json) k")" = \
	"alert_id,fired_at,rule,severity" ] &&
	[ "$(q "SELECT \$p\$$p\$p\$ = activity_monitor.alert_payload(a) FROM activity_monitor.alerts a
		WHERE a.id = (\$p\$$p\$p\$::json ->> 'alert_id')::bigint")" = t ] ||
	bad "the rule's full payload, turned off during the batch, was still sent: $p"
echo "  am_full after set_rule_full_payload(false): $p"

[ "$failures" = 0 ] || { echo "$failures failures"; exit 1; }
echo "ok"
