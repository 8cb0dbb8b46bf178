#!/usr/bin/env bash
# Soak test (issue 12, "memory that must stay flat"): processes that never
# exit must not grow.
#
# 1. The worker: SOAK_ROUNDS (10,000) alert rounds, half of them with
#    matching traffic (count, sum and distinct windows, per-event rules,
#    alerts fired), half idle (a commit that wakes the worker, its matched
#    event rolled back in a subtransaction: the round finds nothing).  Each
#    round is counted (a trigger on alert_state bumps a sequence) and the
#    driver waits for it, so the rounds really happen.  The worker's memory
#    is the "Grand total" that pg_log_backend_memory_contexts(pid) writes to
#    the server log: after SOAK_ROUNDS more rounds it must be within 1 MB of
#    what it was after a warm-up, and its used bytes within SOAK_SLACK (256
#    kB): 0.1.0 leaked 43 bytes a round, 430 kB in 10,000 rounds, under 1 MB;
#    what comes and goes without a leak is about 150 kB (cached plans of the
#    duties, the rollup's alone 130 kB, and the windows' arrays).
# 2. One backend writes SOAK_ROWS (1 million) captured rows in one session,
#    1,000 rows a statement, while rules are created and dropped (by itself
#    and by another session): its memory (pg_backend_memory_contexts) must be
#    flat, within 1 MB, from the end of the warm-up to the end.
#
# The figures are printed (make test keeps the output in $AM_TMP/soak_memory.out).
set -euo pipefail
db=am_soak
. "$AM_ROOT/test/lib/shell.sh"
rounds=${SOAK_ROUNDS:-10000}
rows=${SOAK_ROWS:-1000000}
slack=${SOAK_SLACK:-262144}
mb=1048576
log=$AM_TMP/cluster/server.log
work=$AM_TMP/soak
rm -rf "$work"; mkdir -p "$work"
churn=""
cleanup() {
	[ -n "$churn" ] && kill "$churn" 2>/dev/null || true
	psql -X -q -d postgres -c "ALTER SYSTEM RESET activity_monitor.alert_delay" \
		-c "ALTER SYSTEM RESET activity_monitor.naptime" -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	am_db_drop
}
trap cleanup EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE things (id bigserial PRIMARY KEY, account_id int, amount int, device text);
SELECT activity_monitor.track('things', 'payment', subject_column => 'account_id');
SELECT activity_monitor.create_rule('soak_count', '$.new.amount > 0', within => '500 milliseconds', threshold => 3,
	channel => 'am_soak');
SELECT activity_monitor.create_rule('soak_sum', '$.new.amount > 0', within => '500 milliseconds', threshold => 500,
	measure => 'sum', measure_path => '$.new.amount', channel => 'am_soak');
SELECT activity_monitor.create_rule('soak_distinct', '$.new.amount > 0', within => '500 milliseconds', threshold => 3,
	measure => 'distinct', measure_path => '$.new.device', channel => 'am_soak');
SELECT activity_monitor.create_rule('soak_each', '$.new.amount > 90', channel => 'am_soak');
-- one tick per call of the alert engine (each updates alert_state once)
CREATE SEQUENCE public.soak_rounds;
CREATE FUNCTION public.soak_count_round() RETURNS trigger LANGUAGE plpgsql
SET search_path = pg_catalog, pg_temp AS $$
BEGIN
	PERFORM pg_catalog.nextval('public.soak_rounds');
	RETURN NULL;
END $$;
CREATE TRIGGER soak_count_round AFTER UPDATE ON activity_monitor.alert_state
	FOR EACH ROW EXECUTE FUNCTION public.soak_count_round();
-- n rounds, alternately with a matching event and idle; each waits for its round
CREATE PROCEDURE public.soak_drive(n int) LANGUAGE plpgsql AS $$
DECLARE
	seen bigint;
	deadline timestamptz;
BEGIN
	FOR i IN 1 .. n LOOP
		SELECT last_value INTO seen FROM public.soak_rounds;
		IF i % 2 = 0 THEN
			INSERT INTO things (account_id, amount, device)
				VALUES (i % 20, i % 100 + 1, 'd' || (i % 7));
		ELSE
			BEGIN
				INSERT INTO things (account_id, amount, device) VALUES (i % 20, 1, 'x');
				RAISE EXCEPTION 'undone';
			EXCEPTION WHEN raise_exception THEN
				NULL;
			END;
		END IF;
		COMMIT;
		deadline := clock_timestamp() + interval '20 seconds';
		WHILE (SELECT last_value FROM public.soak_rounds) <= seen LOOP
			IF clock_timestamp() > deadline THEN
				RAISE EXCEPTION 'round % did not happen within 20 seconds', i;
			END IF;
			PERFORM pg_sleep(0.0002);
		END LOOP;
	END LOOP;
END $$;
SQL
psql -X -q -d postgres -c "ALTER SYSTEM SET activity_monitor.alert_delay = 0" \
	-c "ALTER SYSTEM SET activity_monitor.naptime = 1" -c "SELECT pg_reload_conf()" >/dev/null
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
pid=$(q "SELECT pid FROM activity_monitor.worker_status")
# the worker reads the new settings on its next wake-up: let it have one
q "SELECT pg_sleep(1.5)" >/dev/null

# The worker's memory: the smallest of three "Grand total" figures it logs
# (a figure logged in the middle of a round includes the round's memory).
worker_memory() {
	local best="" n before v
	for _ in 1 2 3; do
		before=$(grep -c "\[$pid\] .*Grand total:" "$log" || true)
		[ "$(q "SELECT pg_log_backend_memory_contexts($pid)")" = t ] || fail "cannot log the worker's memory"
		for _ in $(seq 200); do
			n=$(grep -c "\[$pid\] .*Grand total:" "$log" || true)
			[ "$n" -gt "$before" ] && break
			sleep 0.05
		done
		[ "$n" -gt "$before" ] || fail "the worker did not log its memory"
		v=$(grep "\[$pid\] .*Grand total:" "$log" | tail -n 1 |
			sed 's/.*Grand total: \([0-9]*\) bytes.*; \([0-9]*\) used$/\1 \2/')
		{ [ -z "$best" ] || [ "${v#* }" -lt "${best#* }" ]; } && best=$v
		sleep 0.2
	done
	echo "$best"
}

# n rounds, 50 a statement: events within one statement share their time
drive() {
	for _ in $(seq $(($1 / 50))); do echo "CALL public.soak_drive(50);"; done |
		psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null
}
t0=$(date +%s)
drive 2000 || fail "warm-up rounds"
read -r m1 u1 <<<"$(worker_memory)"
r1=$(q "SELECT last_value FROM public.soak_rounds")
drive "$rounds" || fail "soak rounds"
read -r m2 u2 <<<"$(worker_memory)"
r2=$(q "SELECT last_value FROM public.soak_rounds")
t1=$(date +%s)
[ "$(q "SELECT pid FROM activity_monitor.worker_status")" = "$pid" ] || fail "the worker restarted during the soak"
fired=$(q "SELECT count(*) FROM activity_monitor.alerts")
errors=$(q "SELECT coalesce(last_error, '') FROM activity_monitor.worker_state")
echo "worker: $((r2 - r1)) rounds in $((t1 - t0)) s (with warm-up), $fired alerts;" \
	"memory $m1 -> $m2 bytes (growth $((m2 - m1))), used $u1 -> $u2 (growth $((u2 - u1)))"
[ -z "$errors" ] || fail "the worker recorded an error: $errors"
[ "$fired" -gt 0 ] || fail "no alert fired: the traffic did not exercise the engine"
[ $((r2 - r1)) -ge "$rounds" ] || fail "only $((r2 - r1)) rounds"
[ $((m2 - m1)) -le $mb ] || fail "the worker grew by $((m2 - m1)) bytes in $((r2 - r1)) rounds (limit 1 MB)"
[ $((u2 - u1)) -le "$slack" ] ||
	fail "the worker's used memory grew by $((u2 - u1)) bytes in $((r2 - r1)) rounds: $(((u2 - u1) / (r2 - r1))) bytes a round"

# --- 2. one backend, a million captured rows, rules coming and going ----------
q "CREATE TABLE writes (id int PRIMARY KEY, account_id int, amount int)" >/dev/null
q "SELECT activity_monitor.track('writes', 'game', subject_column => 'account_id')" >/dev/null
q "SELECT activity_monitor.create_rule('soak_big', '\$.new.amount > 990', kinds => '{game}', channel => 'am_soak')" >/dev/null
q "CREATE TABLE mem (batch int, bytes bigint)" >/dev/null
(
	i=0
	while :; do
		i=$((i + 1))
		psql -X -q -d "$db" -c "SET client_min_messages = warning" \
			-c "SELECT activity_monitor.create_rule('churn_$i', '\$.new.amount == $i', kinds => '{game}', channel => 'am_soak')" \
			-c "SELECT pg_sleep(0.1)" -c "SELECT activity_monitor.drop_rule('churn_$i')" >/dev/null 2>&1 || true
		sleep 0.1
	done
) &
churn=$!
batches=$((rows / 1000))
warm=$(((batches + 9) / 10))
{
	echo "SET client_min_messages = warning;"
	for b in $(seq 1 "$batches"); do
		echo "INSERT INTO writes SELECT g, g % 500, g % 1000 FROM generate_series($((b * 1000)), $((b * 1000 + 999))) g;"
		if [ $((b % 20)) = 0 ]; then
			echo "SELECT activity_monitor.create_rule('self_$b', '\$.new.amount == $b', kinds => '{game}', channel => 'am_soak');"
			echo "INSERT INTO writes VALUES (-$b, 1, $b);"
			echo "SELECT activity_monitor.drop_rule('self_$b');"
		fi
		if [ "$b" = "$warm" ] || [ "$b" = "$batches" ]; then
			echo "INSERT INTO mem SELECT $b, sum(total_bytes) FROM pg_backend_memory_contexts;"
		fi
	done
} >"$work/writer.sql"
t0=$(date +%s)
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -f "$work/writer.sql" >/dev/null || fail "the writer failed"
t1=$(date +%s)
kill "$churn" 2>/dev/null || true
wait "$churn" 2>/dev/null || true
churn=""
captured=$(q "SELECT count(*) FROM activity_monitor.activity WHERE table_name = 'public.writes'")
b1=$(q "SELECT bytes FROM mem WHERE batch = $warm")
b2=$(q "SELECT bytes FROM mem WHERE batch = $batches")
echo "writer: $captured rows captured in $((t1 - t0)) s; memory $b1 -> $b2 bytes (growth $((b2 - b1)))"
[ "$captured" -ge "$rows" ] || fail "only $captured rows captured"
[ $((b2 - b1)) -le $mb ] || fail "the writer grew by $((b2 - b1)) bytes (limit 1 MB)"
echo "ok"
