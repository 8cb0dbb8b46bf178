#!/usr/bin/env bash
# What the window bounds evict (issue 12, "Bounds"), with small bounds set
# for the cluster (ALTER SYSTEM, reset at the end): max_keys_per_rule 3,
# max_events_per_window 4, max_events_per_rule 10, and later max_window 2s.
#
#  - keys: the least recently active key goes when a 4th comes; its events go
#    with it, and a burst that spanned the eviction does not fire (it would
#    have without the bound: what an eviction can cost); counted in
#    rules.keys_evicted.
#  - a count window keeps only its threshold's worth of events: a burst of 8
#    with threshold 3 fires once, with the 3 events, and evicts nothing.
#  - events per window: a sum window keeps its 4 newest events (6 of 100
#    never reach 500; counted in events_evicted).
#  - events per rule: past 10 the rule's least recently active key goes.
#  - max_window cuts a longer "within" of an existing rule (a restarted
#    worker with max_window 2s: events 2.5 s apart no longer count together).
set -euo pipefail
db=am_bounds_evict
. "$AM_ROOT/test/lib/shell.sh"
settings="max_keys_per_rule max_events_per_window max_events_per_rule max_window naptime"
cleanup() {
	for s in $settings; do echo "ALTER SYSTEM RESET activity_monitor.$s;"; done |
		psql -X -q -d postgres >/dev/null 2>&1 || true
	psql -X -q -d postgres -c "SELECT pg_reload_conf()" >/dev/null 2>&1 || true
	am_db_drop
}
trap cleanup EXIT

# set the bounds; wait until a new backend (the worker started below) has them
set_bounds() {	# name=value...
	for kv in "$@"; do echo "ALTER SYSTEM SET activity_monitor.${kv%%=*} = '${kv#*=}';"; done |
		psql -X -q -v ON_ERROR_STOP=1 -d postgres >/dev/null
	psql -X -q -d postgres -c "SELECT pg_reload_conf()" >/dev/null
	local last=${*: -1}
	am_wait_for 15 postgres "SELECT current_setting('activity_monitor.${last%%=*}') = '${last#*=}'" ||
		fail "the server did not reload its configuration"
}
# (naptime 1 s: caught_up waits for a round)
set_bounds naptime=1 max_keys_per_rule=3 max_events_per_rule=10 max_events_per_window=4

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE t (id serial PRIMARY KEY, k text, amount int);
SELECT activity_monitor.track('t', 'game', subject_column => 'k');
SELECT activity_monitor.create_rule('cnt', '$.new.amount == 1', within => '1 hour', threshold => 3,
	group_by => '$.new.k', channel => 'am_bounds_evict');
SELECT activity_monitor.create_rule('total', '$.new.amount >= 100', within => '1 hour', threshold => 500,
	measure => 'sum', measure_path => '$.new.amount', group_by => '$.new.k', channel => 'am_bounds_evict');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
[ "$(q "SELECT max_events_per_window FROM activity_monitor._window_limits()")" = 4 ] || fail "the bounds are not set"
w() { for kv in "$@"; do q "INSERT INTO t (k, amount) VALUES ('${kv%%=*}', ${kv#*=})" >/dev/null; done; }
alerts() {	# rule: its alerts as key=value, in order
	q "SELECT coalesce(string_agg(format('%s=%s', group_key, value), ',' ORDER BY id), 'none')
	   FROM activity_monitor.alerts WHERE rule_name = '$1'"
}
stats() { q "SELECT format('%s/%s', keys_evicted, events_evicted) FROM activity_monitor.rules WHERE name = '$1'"; }

# keys: a a b c d (d evicts a) a (evicts b: a counts 1, not 3) a a (fires)
w a=1 a=1 b=1 c=1 d=1 a=1
caught_up
[ "$(alerts cnt)" = none ] || fail "key a was evicted with its 2 events: its 3rd must not fire, got $(alerts cnt)"
w a=1 a=1
caught_up
[ "$(alerts cnt)" = "a=3" ] || fail "keys: expected a=3 once a holds 3 again, got $(alerts cnt)"
[ "$(stats cnt)" = 2/0 ] || fail "keys: cnt evicted $(stats cnt) keys/events, expected 2/0"
echo "ok: the least recently active key goes (2 evicted), and with it an alert"

# a count window keeps its threshold: a burst of 8 fires once with 3 events
w b2=1 b2=1 b2=1 b2=1 b2=1 b2=1 b2=1 b2=1
caught_up
[ "$(alerts cnt)" = "a=3,b2=3" ] || fail "burst of 8: expected a=3,b2=3, got $(alerts cnt)"
ids=$(q "SELECT array_length(event_ids, 1) FROM activity_monitor.alerts WHERE group_key = 'b2'")
[ "$ids" = 3 ] || fail "burst of 8: the alert lists $ids events, expected 3"
[ "$(stats cnt)" = 3/0 ] || fail "burst of 8: cnt evicted $(stats cnt), expected 3/0 (c went for b2, no event)"
echo "ok: a count window keeps its threshold's events, loses nothing"

# events per window: 6 x 100 in a window of 4 never reach 500
w s=100 s=100 s=100 s=100 s=100 s=100
caught_up
[ "$(alerts total)" = none ] || fail "s: 4 events of 100 kept, nothing may fire, got $(alerts total)"
[ "$(stats total)" = 0/2 ] || fail "s: total evicted $(stats total), expected 0/2"
echo "ok: a window keeps its 4 newest events (2 evicted), and an alert is lost"

# events per rule: s 4 + t1 4 + t2 3 = 11 > 10: s (least recently active) goes
w t1=100 t1=100 t1=100 t1=100 t2=100 t2=100 t2=100
caught_up
[ "$(stats total)" = 1/2 ] || fail "rule events: total evicted $(stats total), expected 1/2"
# t1 is whole: 4 x 100, then 200 (its oldest goes) makes 500
w t1=200
caught_up
[ "$(alerts total)" = "t1=500" ] || fail "t1: expected t1=500, got $(alerts total)"
[ "$(stats total)" = 1/3 ] || fail "t1: total evicted $(stats total), expected 1/3"
echo "ok: past 10 events the rule's least recently active key goes"

# max_window 2s cuts the rules' hour (a restarted worker reads the setting)
set_bounds max_window=2s
old=$(q "SELECT pid FROM activity_monitor.worker_status")
q "SELECT pg_terminate_backend($old)" >/dev/null
am_wait_for 30 "$db" "SELECT NOT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $old)" || fail "the worker did not stop"
q "SELECT activity_monitor.start_worker()" >/dev/null
am_wait_for 15 "$db" "SELECT running AND pid <> $old FROM activity_monitor.worker_status" || fail "no new worker"
# x x, 2.5 s, x x x (one session: milliseconds apart): with the hour the
# 3rd x fires with the first 3; cut to 2 s, the 5th with the last 3
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -c "INSERT INTO t (k, amount) VALUES ('x', 1)" \
	-c "INSERT INTO t (k, amount) VALUES ('x', 1)" -c "SELECT pg_sleep(2.5)" \
	-c "INSERT INTO t (k, amount) VALUES ('x', 1)" -c "INSERT INTO t (k, amount) VALUES ('x', 1)" \
	-c "INSERT INTO t (k, amount) VALUES ('x', 1)" >/dev/null
caught_up
[ "$(alerts cnt)" = "a=3,b2=3,x=3" ] || fail "max_window 2s: expected one alert x=3, got $(alerts cnt)"
last3=$(q "SELECT array_agg(a.id ORDER BY a.id) FROM (SELECT id FROM activity_monitor.activity
		   WHERE subject_id = 'x' ORDER BY id DESC LIMIT 3) a")
got=$(q "SELECT event_ids FROM activity_monitor.alerts WHERE group_key = 'x'")
[ "$got" = "$last3" ] || fail "max_window 2s: the alert lists $got, expected the last 3 events of x $last3"
errors=$(q "SELECT coalesce(last_error, '') FROM activity_monitor.worker_state")
[ -z "$errors" ] || fail "the worker recorded an error: $errors"
echo "ok: max_window cuts a rule's window"
