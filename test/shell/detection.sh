#!/usr/bin/env bash
# Detection v2 (issue 14) end to end, with the worker: a sequence rule
# (account takeover: e-mail, then password, then a withdrawal, per account),
# an absence rule (a withdrawal left pending), a first-seen rule (a login
# from a device the account never used, with a history from before the rule
# backfilled).  Each rule's alerts are compared with the truth computed
# here, independently, from the committed rows: none lost, none twice.
# Also: a step committed late (a long transaction) completing a sequence, a
# rolled-back step, a sequence longer than its window, an absence whose
# completion committed after the deadline, a worker stopped while
# absences wait (their deadlines pass while it is away), kill -9 of the
# worker just before and just after a deadline (exactly once), an absence
# committed late firing before one that waited already, a first-seen
# memory bounded to 3 entries (the table answers), and test_rule() of each
# definition equal to the live alerts.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster with activity_monitor
# preloaded), AM_ROOT, AM_TMP.  Exit 0 = pass.  Every wait has a deadline.
set -euo pipefail
export PGCLIENTENCODING=UTF8
db=am_detection
. "$AM_ROOT/test/lib/shell.sh"
work=$AM_TMP/detection
rm -rf "$work"
mkdir -p "$work"

bg_pids=()
cleanup() {
	exec 3>&- 2>/dev/null || true
	for p in "${bg_pids[@]}"; do kill "$p" 2>/dev/null || true; done
	psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.naptime" \
		-c "ALTER SYSTEM RESET activity_monitor.max_events_per_rule" -c "ALTER SYSTEM RESET activity_monitor.max_events_per_window" \
		-c "ALTER SYSTEM RESET activity_monitor.alert_batch_size" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	[ -n "${AM_KEEP_DB:-}" ] || am_db_drop
}
trap cleanup EXIT

am_db_new
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.naptime = 1" -c "SELECT pg_reload_conf()" >/dev/null
worker_pid="SELECT pid FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = '$db'"

# same_alerts RULE SQL: the alerts of RULE, as (group_key, event_ids), are
# exactly the rows of SQL, none twice.
same_alerts() {
	local rule=$1 sql=$2 res
	res=$(q "WITH e AS ($sql),
			  g AS (SELECT group_key, event_ids FROM activity_monitor.alerts WHERE rule_name = '$rule')
		SELECT format('%s %s %s %s %s',
			(SELECT count(*) FROM g), (SELECT count(*) FROM e),
			(SELECT count(*) FROM (SELECT * FROM g EXCEPT ALL SELECT * FROM e) x),
			(SELECT count(*) FROM (SELECT * FROM e EXCEPT ALL SELECT * FROM g) y),
			(SELECT count(*) - count(DISTINCT event_ids) FROM g))")
	set -- $res
	if [ "$3" != 0 ] || [ "$4" != 0 ] || [ "$5" != 0 ]; then
		echo "alerts of $rule: $1, expected $2; unexpected or duplicate:"
		q "WITH e AS ($sql) SELECT group_key, event_ids FROM activity_monitor.alerts
		   WHERE rule_name = '$rule' EXCEPT ALL SELECT * FROM e" | head -20
		echo "missing:"
		q "WITH e AS ($sql) SELECT * FROM e EXCEPT ALL SELECT group_key, event_ids
		   FROM activity_monitor.alerts WHERE rule_name = '$rule'" | head -20
		fail "alerts of rule $rule differ from the truth"
	fi
	echo "  $rule: $1 alerts, as the truth says"
}

# backtest_same RULE TEST_RULE_CALL: test_rule() returns the rule's alerts.
backtest_same() {
	local rule=$1 call=$2
	same_alerts "$rule" "SELECT group_key, event_ids FROM $call"
}

q "CREATE TABLE accounts (id text PRIMARY KEY, email text, password_hash text, status text DEFAULT 'active');
   CREATE TABLE payments (id bigserial PRIMARY KEY, account_id text, kind text, amount numeric, status text);
   CREATE TABLE logins (id bigserial PRIMARY KEY, account_id text, device text);
   CREATE EXTENSION activity_monitor;" >/dev/null
q "SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id', status_column => 'status');
   SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
   SELECT activity_monitor.track('logins', 'login', subject_column => 'account_id');" >/dev/null
am_wait_for 15 "$db" "SELECT EXISTS ($worker_pid)" || fail "no worker after CREATE EXTENSION"
# (inserted before the rules: an insert's "changed" names every column, e-mail included)
q "INSERT INTO accounts (id, email, password_hash) SELECT 'a' || i, 'a' || i || '@x', 'h' FROM generate_series(1, 63) i" >/dev/null

# --- first seen: a history from before the rule ----------------------------------------------
# Each account used devices d1..d3 before the rule existed: backfilled, they are not new.
q "INSERT INTO logins (account_id, device) SELECT 'a' || i, 'd' || (i % 3 + 1) FROM generate_series(1, 60) i" >/dev/null

steps="ARRAY['\$.changed[*] == \"email\"', '\$.changed[*] == \"password_hash\"',
	'\$.table == \"public.payments\" && \$.action == \"insert\" && \$.new.kind == \"withdrawal\"']::jsonpath[]"
q "SELECT activity_monitor.create_rule('ato', 'true', steps => $steps, within => '1 hour', severity => 'critical');
   SELECT activity_monitor.create_rule('ato_short', 'true', steps => $steps, within => '2 seconds');
   SELECT activity_monitor.create_rule('stuck', '\$.table == \"public.payments\"', group_by => '\$.row_key',
	steps => ARRAY['\$.status_to == \"pending\"']::jsonpath[],
	missing => '\$.status_to == \"completed\" || \$.status_to == \"rejected\"', within => '3 seconds');
   SELECT activity_monitor.create_rule('new_device', '\$.table == \"public.logins\" && \$.action == \"insert\"',
	measure_path => '\$.new.device', lookback => '30 days');" >/dev/null
rule_at=$(q "SELECT created_at FROM activity_monitor.alert_rule WHERE name = 'new_device'")
[ "$(q "SELECT count(*) FROM activity_monitor.seen")" = 60 ] ||
	fail "create_rule() did not backfill the 60 devices of the lookback: $(q "SELECT count(*) FROM activity_monitor.seen")"
echo "# rules created; the first-seen rule backfilled 60 (account, device) pairs"

# --- sequences: each account does e(mail), p(assword), w(ithdrawal) in some order ------------
# Statements from two sessions interleave; each account's script is one of
# the orders below (some complete the sequence, twice for some).
echo "# sequences: 60 accounts, random orders, two sessions"
: >"$work/s1.sql"
: >"$work/s2.sql"
scripts=(epw pew wep epw ewp epwepw pw e epw)
for i in $(seq 1 60); do
	s=${scripts[$((i % ${#scripts[@]}))]}
	f=$work/s$((i % 2 + 1)).sql
	for ((c = 0; c < ${#s}; c++)); do
		case ${s:c:1} in
		e) echo "UPDATE accounts SET email = 'a$i-$c@x' WHERE id = 'a$i';" >>"$f" ;;
		p) echo "UPDATE accounts SET password_hash = 'h$c' WHERE id = 'a$i';" >>"$f" ;;
		w) echo "INSERT INTO payments (account_id, kind, amount, status) VALUES ('a$i', 'withdrawal', $i, 'requested');" >>"$f" ;;
		esac
	done
done
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/s1.sql" >/dev/null &
p1=$!
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/s2.sql" >/dev/null
wait $p1

# a step committed late: the password change (between the e-mail and the
# withdrawal in time) commits after both
q "UPDATE accounts SET email = 'late@x' WHERE id = 'a61'" >/dev/null
rm -f "$work/late.fifo"
mkfifo "$work/late.fifo"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <"$work/late.fifo" >"$work/late.out" 2>&1 &
bg_pids+=($!)
late=$!
exec 3>"$work/late.fifo"
echo "BEGIN; UPDATE accounts SET password_hash = 'late' WHERE id = 'a61'; SELECT pg_sleep(0.2);" >&3
sleep 1
q "INSERT INTO payments (account_id, kind, amount, status) VALUES ('a61', 'withdrawal', 61, 'requested')" >/dev/null
# a rolled-back step: a62's withdrawal never happened
q "UPDATE accounts SET email = 'rb@x' WHERE id = 'a62'; UPDATE accounts SET password_hash = 'rb' WHERE id = 'a62'" >/dev/null
psql -X -q -d "$db" -c "BEGIN" -c "INSERT INTO payments (account_id, kind, amount, status) VALUES ('a62', 'withdrawal', 62, 'requested')" -c "ROLLBACK" >/dev/null
# longer than ato_short's 2 seconds: only ato fires
q "UPDATE accounts SET email = 'slow@x' WHERE id = 'a63'" >/dev/null
q "UPDATE accounts SET password_hash = 'slow' WHERE id = 'a63'" >/dev/null
sleep 2.5
q "INSERT INTO payments (account_id, kind, amount, status) VALUES ('a63', 'withdrawal', 63, 'requested')" >/dev/null
caught_up
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'ato' AND group_key = 'a61'")" = 0 ] ||
	fail "a sequence fired before its middle step committed"
echo "COMMIT;" >&3
echo '\q' >&3
exec 3>&-
wait $late
caught_up

# The truth: per account, the letters of its steps in time order; every
# sequence is e, then p, then w, taken leftmost (the scripts above keep the
# greedy choice unambiguous), with the first and last at most `within` apart.
truth_seq() {	# within
	cat <<SQL
WITH s AS (
	SELECT a.subject_id, a.id, a.occurred_at,
		   CASE WHEN a.table_name = 'public.accounts' AND a.action = 'update' AND a.new_values ? 'email' THEN 'e'
				WHEN a.table_name = 'public.accounts' AND a.action = 'update' AND a.new_values ? 'password_hash' THEN 'p'
				WHEN a.table_name = 'public.payments' AND a.action = 'insert' AND a.new_values->>'kind' = 'withdrawal' THEN 'w' END AS step
	FROM activity_monitor.activity a
	WHERE a.occurred_at >= '$rule_at' AND a.table_name IN ('public.accounts', 'public.payments')),
r AS (SELECT subject_id, id, occurred_at, step,
			 row_number() OVER (PARTITION BY subject_id ORDER BY occurred_at, id) n
	  FROM s WHERE step IS NOT NULL),
e AS (SELECT * FROM r WHERE step = 'e'),
m AS (SELECT e.subject_id, e.id AS e_id, e.occurred_at AS e_at,
			 (SELECT p.id FROM r p WHERE p.subject_id = e.subject_id AND p.step = 'p' AND p.n > e.n ORDER BY p.n LIMIT 1) AS p_id,
			 (SELECT p.n FROM r p WHERE p.subject_id = e.subject_id AND p.step = 'p' AND p.n > e.n ORDER BY p.n LIMIT 1) AS p_n
	  FROM e),
w AS (SELECT m.*, (SELECT w.id FROM r w WHERE w.subject_id = m.subject_id AND w.step = 'w' AND w.n > m.p_n ORDER BY w.n LIMIT 1) AS w_id
	  FROM m),
-- leftmost: an e whose p or w an earlier e of the account already took does not start one
c AS (SELECT w.*, row_number() OVER (PARTITION BY subject_id, p_id ORDER BY e_id) k1,
			 row_number() OVER (PARTITION BY subject_id, w_id ORDER BY e_id) k2
	  FROM w WHERE p_id IS NOT NULL AND w_id IS NOT NULL)
SELECT c.subject_id, ARRAY[c.e_id, c.p_id, c.w_id]
FROM c JOIN activity_monitor.activity wa ON wa.id = c.w_id
WHERE c.k1 = 1 AND c.k2 = 1 AND wa.occurred_at <= c.e_at + interval '$1'
SQL
}
same_alerts ato "$(truth_seq '1 hour')"
same_alerts ato_short "$(truth_seq '2 seconds')"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'ato' AND group_key = 'a61'")" = 1 ] ||
	fail "the late middle step did not complete a61's sequence"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'ato' AND group_key IN ('a62')")" = 0 ] ||
	fail "a rolled-back withdrawal completed a sequence"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name LIKE 'ato%' AND group_key = 'a63'")" = 1 ] ||
	fail "a63's sequence (2.5 s) should fire ato and not ato_short"

# --- absences: withdrawals left pending ---------------------------------------------------------
echo "# absences: 30 withdrawals, some completed or rejected in time, one completed after its deadline"
for i in $(seq 1 30); do
	echo "INSERT INTO payments (account_id, kind, amount, status) VALUES ('a$i', 'withdrawal', $i, 'pending');"
done >"$work/pending.sql"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/pending.sql" >/dev/null
q "UPDATE payments SET status = CASE WHEN id % 2 = 0 THEN 'completed' ELSE 'rejected' END
   WHERE status = 'pending' AND amount::int % 3 <> 0 AND amount <> 1" >/dev/null
sleep 1
q "UPDATE payments SET status = 'processing' WHERE status = 'pending' AND amount = 3" >/dev/null
sleep 3.5
q "UPDATE payments SET status = 'completed' WHERE status = 'pending' AND amount = 1" >/dev/null
caught_up
sleep 1.5
# the truth: a pending step with no completed or rejected step of the same
# payment within 3 seconds after it
truth_abs="SELECT p.row_key, ARRAY[p.id]
	FROM activity_monitor.activity p
	WHERE p.table_name = 'public.payments' AND p.status_to = 'pending' AND p.occurred_at >= '$rule_at'
	  AND NOT EXISTS (SELECT FROM activity_monitor.activity c
		WHERE c.table_name = 'public.payments' AND c.row_key = p.row_key
		  AND c.status_to IN ('completed', 'rejected')
		  AND (c.occurred_at, c.id) > (p.occurred_at, p.id)
		  AND c.occurred_at <= p.occurred_at + interval '3 seconds')"
same_alerts stuck "$truth_abs"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts a JOIN payments p ON p.id::text = a.group_key
	WHERE a.rule_name = 'stuck' AND p.amount = 1")" = 1 ] || fail "a completion after the deadline cancelled the absence"

# --- the worker stopped while absences wait: their deadlines pass meanwhile ----------------------
echo "# the worker stopped while 5 absences wait; it fires them once when back"
q "INSERT INTO payments (account_id, kind, amount, status) SELECT 'a' || i, 'withdrawal', 100 + i, 'pending' FROM generate_series(1, 5) i" >/dev/null
caught_up
old=$(q "$worker_pid")
q "SELECT pg_terminate_backend($old)" >/dev/null
# (restarted by the postmaster 5 s later: bgw_restart_time; the deadlines pass before)
sleep 4
am_wait_for 30 "$db" "SELECT count(*) = 5 FROM activity_monitor.alerts a JOIN payments p ON p.id::text = a.group_key
	WHERE a.rule_name = 'stuck' AND p.amount BETWEEN 101 AND 105" || fail "the absences that passed while the worker was away did not fire"
same_alerts stuck "$truth_abs"

# --- kill -9 of the worker at a deadline: exactly once ------------------------------------------
for offset in -0.15 0.0 0.05; do
	echo "# kill -9 of the worker ${offset} s from 8 absences' deadline"
	base=$(q "SELECT coalesce(max(amount), 0) + 1 FROM payments")
	# (one row out: psql writes RETURNING's rows and then its "INSERT 0 8"
	# tag in two writes, and a "| head -1" that exits between them killed
	# psql with SIGPIPE and, under pipefail, this script without a word)
	t0=$(q "WITH i AS (INSERT INTO payments (account_id, kind, amount, status)
		SELECT 'a' || i, 'withdrawal', $base + i, 'pending' FROM generate_series(0, 7) i RETURNING clock_timestamp() AS t)
		SELECT extract(epoch FROM min(t)) FROM i")
	caught_up
	old=$(q "$worker_pid")
	starts=$(q "SELECT starts FROM activity_monitor.worker_status")
	now=$(date +%s.%N)
	wait_s=$(echo "$t0 + 3 + $offset - $now" | bc -l)
	if [ "$(echo "$wait_s > 0" | bc -l)" = 1 ]; then sleep "$wait_s"; fi
	kill -9 "$old"
	deadline=$(($(date +%s) + 90))
	until [ "$(psql -X -At -d "$db" -c "SELECT pid <> $old AND running AND starts > $starts FROM activity_monitor.worker_status" 2>/dev/null)" = t ]; do
		[ "$(date +%s)" -le "$deadline" ] || fail "the worker was not restarted after kill -9"
		sleep 0.2
	done
	am_wait_for 30 "$db" "SELECT count(*) >= 8 FROM activity_monitor.alerts a JOIN payments p ON p.id::text = a.group_key
		WHERE a.rule_name = 'stuck' AND p.amount BETWEEN $base AND $base + 7" || fail "the absences did not fire after kill -9"
	sleep 1.5
	same_alerts stuck "$truth_abs"
done

# --- an absence committed late waits behind none: it fires at its own deadline ---------------
# The worker keeps each rule's absences in deadline order, appended as they
# come; one whose deadline is before the last waiting (its transaction began
# earlier and committed later) goes aside, and must still come first.
echo "# an absence committed late, its deadline before one already waiting, fires first"
base=$(q "SELECT coalesce(max(amount), 0) + 1 FROM payments")
rm -f "$work/lateabs.fifo"
mkfifo "$work/lateabs.fifo"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <"$work/lateabs.fifo" >"$work/lateabs.out" 2>&1 &
bg_pids+=($!)
lateabs=$!
exec 3>"$work/lateabs.fifo"
echo "BEGIN; INSERT INTO payments (account_id, kind, amount, status) VALUES ('a1', 'withdrawal', $base, 'pending');" >&3
sleep 1
q "INSERT INTO payments (account_id, kind, amount, status) VALUES ('a2', 'withdrawal', $base + 1, 'pending')" >/dev/null
caught_up
echo "COMMIT;" >&3
echo '\q' >&3
exec 3>&-
wait $lateabs
# (their occurred_at, a second apart: the late one's deadline is first)
[ "$(q "SELECT count(*) = 2 AND min(occurred_at) FILTER (WHERE new_values ->> 'amount' = '$base') + interval '0.5 s'
	< min(occurred_at) FILTER (WHERE new_values ->> 'amount' = '$(($base + 1))')
	FROM activity_monitor.activity WHERE table_name = 'public.payments' AND status_to = 'pending'
	  AND (new_values ->> 'amount')::numeric IN ($base, $base + 1)")" = t ] ||
	fail "the long transaction's event should be dated before the other: $(q "SELECT new_values ->> 'amount', occurred_at FROM activity_monitor.activity WHERE table_name = 'public.payments' AND (new_values ->> 'amount')::numeric IN ($base, $base + 1)")"
am_wait_for 30 "$db" "SELECT count(*) = 2 FROM activity_monitor.alerts a JOIN payments p ON p.id::text = a.group_key
	WHERE a.rule_name = 'stuck' AND p.amount IN ($base, $base + 1)" || fail "the late absence or the other did not fire"
order=$(q "SELECT string_agg(p.amount::text, ' ' ORDER BY a.id) FROM activity_monitor.alerts a JOIN payments p ON p.id::text = a.group_key
	WHERE a.rule_name = 'stuck' AND p.amount IN ($base, $base + 1)")
[ "$order" = "$base $(($base + 1))" ] || fail "the absence with the earlier deadline fired second: $order"
same_alerts stuck "$truth_abs"

# --- a late step more than `within` behind the key's newest still completes its sequence ------
echo "# a step committed late, behind a newer first step by more than within, completes its sequence"
q "SELECT activity_monitor.create_rule('ab', '\$.table == \"public.payments\"', group_by => '\$.new.account_id',
	steps => ARRAY['\$.status_to == \"a\"', '\$.status_to == \"b\"']::jsonpath[], within => '3 seconds')" >/dev/null
q "INSERT INTO payments (account_id, kind, amount, status) VALUES ('late2', 'bet', 1, 'a')" >/dev/null
rm -f "$work/late2.fifo"
mkfifo "$work/late2.fifo"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <"$work/late2.fifo" >"$work/late2.out" 2>&1 &
bg_pids+=($!)
late2=$!
exec 3>"$work/late2.fifo"
echo "BEGIN; INSERT INTO payments (account_id, kind, amount, status) VALUES ('late2', 'bet', 2, 'b'); SELECT pg_sleep(0.1);" >&3
sleep 4
q "INSERT INTO payments (account_id, kind, amount, status) VALUES ('late2', 'bet', 3, 'a')" >/dev/null
caught_up
echo "COMMIT;" >&3
echo '\q' >&3
exec 3>&-
wait $late2
caught_up
same_alerts ab "SELECT 'late2', ARRAY(SELECT a.id FROM activity_monitor.activity a
	WHERE a.table_name = 'public.payments' AND a.new_values ->> 'account_id' = 'late2' AND a.new_values ->> 'amount' IN ('1', '2')
	ORDER BY a.occurred_at, a.id)"
backtest_same ab "activity_monitor.test_rule('\$.table == \"public.payments\"', '$rule_at', group_by => '\$.new.account_id',
	steps => ARRAY['\$.status_to == \"a\"', '\$.status_to == \"b\"']::jsonpath[], within => '3 seconds')"

# --- one key's waits are bounded; many due at once fire over several batches, once each -------
echo "# 40 absences of one key, max_events_per_window 10: the 10 newest wait and fire; 30 evicted, counted"
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.max_events_per_window = 10" \
	-c "ALTER SYSTEM SET activity_monitor.alert_batch_size = 3" -c "SELECT pg_reload_conf()" >/dev/null
sleep 1
q "SELECT activity_monitor.create_rule('stuck_key', '\$.table == \"public.payments\"', group_by => '\$.new.account_id',
	steps => ARRAY['\$.status_to == \"held\"']::jsonpath[], missing => '\$.status_to == \"released\"',
	within => '2 seconds')" >/dev/null
q "INSERT INTO payments (account_id, kind, amount, status) SELECT 'flood', 'bet', g, 'held' FROM generate_series(1, 40) g" >/dev/null
caught_up
am_wait_for 30 "$db" "SELECT count(*) = 10 FROM activity_monitor.alerts WHERE rule_name = 'stuck_key'" ||
	fail "expected the 10 newest absences of the key to fire: $(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'stuck_key'")"
sleep 1.5
same_alerts stuck_key "SELECT 'flood', ARRAY[a.id] FROM activity_monitor.activity a
	WHERE a.table_name = 'public.payments' AND a.new_values ->> 'account_id' = 'flood' ORDER BY a.id DESC LIMIT 10"
[ "$(q "SELECT events_evicted FROM activity_monitor.rules WHERE name = 'stuck_key'")" = 30 ] ||
	fail "the 30 absences beyond the key's bound should be counted as evicted: $(q "SELECT events_evicted FROM activity_monitor.rules WHERE name = 'stuck_key'")"
psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.max_events_per_window" \
	-c "ALTER SYSTEM RESET activity_monitor.alert_batch_size" -c "SELECT pg_reload_conf()" >/dev/null

# --- first seen: logins from random devices, a bounded memory, a crash --------------------------
echo "# first seen: 400 logins from 5 devices, the worker's memory bounded to 3 values"
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.max_events_per_rule = 3" -c "SELECT pg_reload_conf()" >/dev/null
q "SELECT setseed(0.14)" >/dev/null
for c in 1 2; do
	echo "SELECT setseed(0.$c);"
	for i in $(seq 1 200); do
		echo "INSERT INTO logins (account_id, device) VALUES ('a$(((i * 7 + c) % 20 + 1))', 'd' || (1 + floor(random() * 5))::int);"
	done
done >"$work/logins.sql"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/logins.sql" >/dev/null &
pl=$!
sleep 0.5
old=$(q "$worker_pid")
kill -9 "$old" 2>/dev/null || true
wait $pl || true
deadline=$(($(date +%s) + 90))
until [ "$(psql -X -At -d "$db" -c "SELECT pid IS NOT NULL AND pid <> $old AND running FROM activity_monitor.worker_status" 2>/dev/null)" = t ]; do
	[ "$(date +%s)" -le "$deadline" ] || fail "the worker was not restarted after kill -9"
	sleep 0.2
done
caught_up 60
# the truth: a login whose (account, device) no earlier login showed (all within 30 days)
truth_seen="SELECT l.subject_id, ARRAY[l.id] FROM activity_monitor.activity l
	WHERE l.table_name = 'public.logins' AND l.action = 'insert' AND l.occurred_at >= '$rule_at'
	  AND NOT EXISTS (SELECT FROM activity_monitor.activity o
		WHERE o.table_name = 'public.logins' AND o.action = 'insert' AND o.subject_id = l.subject_id
		  AND o.new_values->>'device' = l.new_values->>'device' AND o.id < l.id)"
same_alerts new_device "$truth_seen"
psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.max_events_per_rule" -c "SELECT pg_reload_conf()" >/dev/null

# --- test_rule() of each definition equals the live alerts ---------------------------------------
echo "# test_rule() of each definition returns the live alerts"
backtest_same ato "activity_monitor.test_rule('true', '$rule_at', steps => $steps, within => '1 hour')"
backtest_same ato_short "activity_monitor.test_rule('true', '$rule_at', steps => $steps, within => '2 seconds')"
backtest_same stuck "activity_monitor.test_rule('\$.table == \"public.payments\"', '$rule_at', group_by => '\$.row_key',
	steps => ARRAY['\$.status_to == \"pending\"']::jsonpath[],
	missing => '\$.status_to == \"completed\" || \$.status_to == \"rejected\"', within => '3 seconds')"
backtest_same new_device "activity_monitor.test_rule('\$.table == \"public.logins\" && \$.action == \"insert\"', '$rule_at',
	measure_path => '\$.new.device', lookback => '30 days')"

# --- nothing was counted as an error; the counters add up -----------------------------------------
[ "$(q "SELECT coalesce(sum(evaluation_errors), 0) FROM activity_monitor.rules")" = 0 ] ||
	fail "evaluation errors: $(q "SELECT name, evaluation_errors FROM activity_monitor.rules")"
[ "$(q "SELECT bool_and(alerts_fired = (SELECT count(*) FROM activity_monitor.alerts a WHERE a.rule_id = r.id))
	FROM activity_monitor.rules r")" = t ] || fail "rule_stats' alerts_fired differ from the alerts"
echo "ok"
