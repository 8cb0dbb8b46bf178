#!/usr/bin/env bash
# Failover without a lost or doubled alert (issue 15).  Two clusters, A and
# B, each with its own port and socket; one is the primary, the other its
# synchronous standby (pg_basebackup -R, synchronous_standby_names = '*').
# Writers insert payments without pause through libpq's multi-host
# connection string (host=A,B target_session_attrs=read-write), so they
# follow the primary by themselves.  Each of FAILOVER_TRIALS (10) trials:
# writes for a random 0.3 to 2.3 s, stops the primary with
# pg_ctl -m immediate, promotes the standby, waits for its worker to start
# by itself and to catch up, then checks the truth computed from the
# committed events: every matching payment has exactly one alert of each of
# the two per-event rules, and no alert points at an event that does not
# exist; the old primary is then rebuilt as the new one's standby.  A
# consumer (activity_monitor_consume with the same multi-host string and a
# state file) runs through all trials: it prints every alert of the final
# primary exactly once, in id order.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
trials=${FAILOVER_TRIALS:-10}
unset AM_PORT
work=$AM_TMP/failover
rm -rf "$work"
mkdir -p "$work/A" "$work/B"
chmod 777 "$work" "$work/A" "$work/B"
[ "$(id -u)" = 0 ] && chown postgres "$work/A" "$work/B"
declare -A port
port[A]=$(am_free_port)
port[B]=$(am_free_port)
[ "${port[A]}" != "${port[B]}" ] || port[B]=$((port[A] + 1))
primary=A
standby=B
writers=()
consumer=
cleanup() {
	touch "$work/stop"
	for w in "${writers[@]}"; do kill "$w" 2>/dev/null || true; done
	[ -n "$consumer" ] && kill "$consumer" 2>/dev/null
	for c in A B; do
		[ -f "$work/$c/data/postmaster.pid" ] &&
			am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/$c/data" -m immediate -w stop >/dev/null 2>&1
	done
	wait 2>/dev/null || true
}
trap cleanup EXIT
q() { psql -X -At -v ON_ERROR_STOP=1 -h "$work/$1" -p "${port[$1]}" -U postgres -d postgres -c "$2"; }
multi="host=$work/A,$work/B port=${port[A]},${port[B]} user=postgres dbname=postgres target_session_attrs=read-write connect_timeout=2"

start() {	# start the cluster in $1 on its own port and socket
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/$1/data" -l "$work/$1/server.log" -w -t 60 start >/dev/null ||
		fail "$1 did not start: $(tail -5 "$work/$1/server.log")"
}
make_standby() {	# $1 becomes a streaming standby of $2
	rm -rf "$work/$1/data"
	am_as_owner "$AM_PGBIN/pg_basebackup" -h "$work/$2" -p "${port[$2]}" -U postgres -D "$work/$1/data" -R \
		-X stream -c fast >"$work/$1/basebackup.log" 2>&1 || fail "pg_basebackup: $(cat "$work/$1/basebackup.log")"
	{
		echo "port = ${port[$1]}"
		echo "unix_socket_directories = '$work/$1'"
	} >>"$work/$1/data/postgresql.conf"
	start "$1"
	for _ in $(seq 1 300); do
		[ "$(q "$2" "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'")" = 1 ] &&
			return 0
		sleep 0.1
	done
	fail "$1 did not become $2's synchronous standby"
}

# --- the first primary ---------------------------------------------------------------
AM_PORT=${port[A]} am_cluster_start "$work/A" "activity_monitor.naptime = 1" \
	"wal_level = replica" "max_wal_senders = 5" >/dev/null
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -h "$work/A" -p "${port[A]}" -d postgres \
	>/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE payments (id bigserial PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.create_rule('big', '$.new.amount > 100', kinds => '{payment}', channel => 'am_failover');
SELECT activity_monitor.create_rule('odd', '$.new.account_id % 2 == 1 && $.action == "insert"', kinds => '{payment}',
	channel => 'am_failover');
SQL
q A "ALTER SYSTEM SET synchronous_standby_names = '*'" >/dev/null
q A "SELECT pg_reload_conf()" >/dev/null
make_standby B A

# --- writers and the consumer, through every failover ------------------------------------
writer() {
	local n=0
	while [ ! -f "$work/stop" ]; do
		[ -f "$work/pause" ] && { sleep 0.05; continue; }
		psql -X -q -d "$multi" -c "INSERT INTO payments (account_id, amount, status)
			SELECT (random() * 1000)::int, (random() * 200)::int, 'pending' FROM generate_series(1, 3)" \
			>/dev/null 2>&1 || sleep 0.05
		n=$((n + 1))
	done
}
for _ in 1 2; do
	writer &
	writers+=($!)
done
bin=$AM_ROOT/activity_monitor_consume
if [ ! -x "$bin" ]; then
	bin=$AM_TMP/activity_monitor_consume_failover
	gcc -Wall -Wextra -O2 -I"$(pg_config --includedir)" -o "$bin" \
		"$AM_ROOT/src/consumer/activity_monitor_consume.c" -L"$(pg_config --libdir)" -lpq ||
		fail "could not build the consumer"
fi
"$bin" -d "$multi" -c am_failover --from-id 0 --state-file "$work/consumer.state" --poll-interval 1 \
	>"$work/consumer.out" 2>"$work/consumer.err" &
consumer=$!

# every matching committed payment has one alert per rule; nothing else
truth="WITH e AS (SELECT id, (new_values->>'amount')::numeric AS amount, (new_values->>'account_id')::int AS account
		FROM activity_monitor.activity WHERE table_name = 'public.payments' AND action = 'insert'),
	want AS (SELECT id, 'big' AS rule FROM e WHERE amount > 100
		UNION ALL SELECT id, 'odd' FROM e WHERE account % 2 = 1),
	got AS (SELECT event_id AS id, rule_name AS rule FROM activity_monitor.alerts)
	SELECT (SELECT count(*) FROM want) || ' ' || (SELECT count(*) FROM got) || ' '
		|| (SELECT count(*) FROM (SELECT * FROM want EXCEPT ALL SELECT * FROM got) x) || ' '
		|| (SELECT count(*) FROM (SELECT * FROM got EXCEPT ALL SELECT * FROM want) x)"

total_lost=0
for t in $(seq 1 "$trials"); do
	sleep "$(awk -v r=$RANDOM 'BEGIN { printf "%.2f", 0.3 + r / 32768 * 2 }')"
	before=$(q $primary "SELECT count(*) FROM activity_monitor.alerts" 2>/dev/null || echo '?')
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/$primary/data" -m immediate -w stop >/dev/null
	am_as_owner "$AM_PGBIN/pg_ctl" -D "$work/$standby/data" -w -t 60 promote >/dev/null || fail "trial $t: promote failed"
	old=$primary
	primary=$standby
	standby=$old
	# commits on the new primary wait for a synchronous standby (the worker's
	# too): pause the writers, rebuild the old primary as the new one's standby
	touch "$work/pause"
	make_standby $standby $primary
	# the worker started by itself on the new primary
	for _ in $(seq 1 300); do
		[ "$(q $primary "SELECT running FROM activity_monitor.worker_status")" = t ] && break
		sleep 0.1
	done
	[ "$(q $primary "SELECT standby || ' ' || running FROM activity_monitor.worker_status")" = "false true" ] ||
		fail "trial $t: no worker on the new primary $primary"
	# the new primary's worker catches up: poll the truth until it holds (or 60 s)
	for _ in $(seq 1 600); do
		read -r want got missing extra <<<"$(q $primary "$truth")"
		[ "$missing" = 0 ] && [ "$extra" = 0 ] && break
		sleep 0.1
	done
	echo "trial $t: primary $old stopped (it had $before alerts), $primary promoted: $want alerts due, $got fired, $missing missing, $extra extra"
	[ "$want" -gt 0 ] && [ "$missing" = 0 ] && [ "$extra" = 0 ] && [ "$got" = "$want" ] ||
		fail "trial $t: alerts differ from the committed events' truth"
	rm -f "$work/pause"
done

# --- the consumer printed every alert once, in id order ----------------------------------------
touch "$work/stop"
for w in "${writers[@]}"; do wait "$w" 2>/dev/null || true; done
writers=()
for _ in $(seq 1 600); do
	read -r want got missing extra <<<"$(q $primary "$truth")"
	[ "$missing" = 0 ] && [ "$extra" = 0 ] && break
	sleep 0.1
done
[ "$missing" = 0 ] && [ "$extra" = 0 ] || fail "after the writers stopped: $want due, $got fired"
ids=$(q $primary "SELECT string_agg(id::text, ' ' ORDER BY id) FROM activity_monitor.alerts")
last=$(q $primary "SELECT max(id) FROM activity_monitor.alerts")
for _ in $(seq 1 300); do
	grep -q "^{\"alert_id\" : $last," "$work/consumer.out" 2>/dev/null && break
	sleep 0.1
done
printed=$(grep -o '^{"alert_id" : [0-9]*' "$work/consumer.out" | grep -o '[0-9]*$' | tr '\n' ' ' | sed 's/ $//')
[ "$printed" = "$ids" ] || {
	echo "consumer printed: $(wc -w <<<"$printed") alerts; the primary has $(wc -w <<<"$ids")"
	diff <(tr ' ' '\n' <<<"$printed") <(tr ' ' '\n' <<<"$ids") | head -20
	tail -5 "$work/consumer.err"
	fail "the consumer's output is not every alert once in id order"
}
echo "ok: $trials failovers under load (synchronous standby): no alert lost or doubled; the consumer (host=A,B target_session_attrs=read-write) printed all $(wc -w <<<"$ids") alerts once, in id order"
