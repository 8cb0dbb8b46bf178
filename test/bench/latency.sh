#!/usr/bin/env bash
# Commit-to-notification latency of alerts (issue 4: target p99 under 100 ms
# at 1,000 events per second).
#
# pgbench writes LAT_RATE transactions per second (--rate) for LAT_SECONDS
# seconds into a tracked table, one event per transaction; a per-event rule
# on channel "lat" matches one event in LAT_MATCH_EVERY (default: every
# event).  Each transaction records clock_timestamp() in its last statement
# before COMMIT (an untracked side table): that is the commit time, to
# within the COMMIT round trip, so the figures err on the high side.  A small
# libpq listener (listen_latency.c, compiled here) stamps each notification
# with the receive time (same machine, same clock).  Latency = receive time
# - commit time of the alert's event.  Prints the number of events and
# notifications and p50/p90/p99/max in ms; exits non-zero if fewer than 95%
# of the matching events produced a notification.
#
#   test/bench/latency.sh                      own throwaway cluster
#   LAT_USE_EXISTING=1 test/bench/latency.sh   the server PGHOST/PGPORT name
#   LAT_RATE=2000 LAT_SECONDS=30 LAT_CLIENTS=8 LAT_MATCH_EVERY=10 test/bench/latency.sh
#
# Under load (issue 5: the latency while the worker works through windowed
# rules): LAT_WINDOWED=10 adds that many windowed rules (count, sum, distinct
# over 1 hour, never reaching their threshold) matching every event, so the
# worker updates 10 windows per event besides firing the per-event rule, e.g.
#   LAT_WINDOWED=10 LAT_RATE=5000 LAT_MATCH_EVERY=10 test/bench/latency.sh
#
# LAT_ALERT_DELAY=0 sets activity_monitor.alert_delay (ms; default 10) on the
# cluster it starts: the lower, the sooner an alert, the more worker rounds.
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
export PATH=$(pg_config --bindir):$PATH
unset PGDATABASE PGOPTIONS
rate=${LAT_RATE:-1000}
seconds=${LAT_SECONDS:-10}
clients=${LAT_CLIENTS:-4}
every=${LAT_MATCH_EVERY:-1}
windowed=${LAT_WINDOWED:-0}
db=am_latency

. "$root/test/lib/cluster.sh"
work=$(mktemp -d /tmp/activity_monitor_latency.XXXXXX)
chmod 755 "$work"
own=0
listener=""
cleanup() {
	[ -n "$listener" ] && kill "$listener" 2>/dev/null
	psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
	[ "$own" = 1 ] && am_cluster_stop
	[ -n "${LAT_KEEP_TMP:-}" ] || rm -rf "$work"
}
trap cleanup EXIT
die() { echo "latency.sh: $*" >&2; exit 1; }
q() { psql -X -At -q -v ON_ERROR_STOP=1 -d "$db" "$@"; }

if [ "${LAT_USE_EXISTING:-0}" = 1 ]; then
	[ -n "${PGHOST:-}" ] && [ -n "${PGPORT:-}" ] || die "LAT_USE_EXISTING=1 needs PGHOST and PGPORT of a running server"
else
	own=1
	am_cluster_start "$work/cluster" "activity_monitor.naptime = 1" \
		${LAT_ALERT_DELAY:+"activity_monitor.alert_delay = $LAT_ALERT_DELAY"} >&2 ||
		die "could not start a cluster"
fi

gcc -O2 -Wall -o "$work/listen_latency" "$root/test/bench/listen_latency.c" \
	-I"$(pg_config --includedir)" -L"$(pg_config --libdir)" -lpq || die "cannot build listen_latency.c"

psql -X -q -d postgres -c "SET client_min_messages = warning" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "CREATE DATABASE $db" >/dev/null
PGOPTIONS="-c client_min_messages=warning" q >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE lat_t (id bigserial PRIMARY KEY, kind text NOT NULL, payload text);
CREATE TABLE lat_commit (id bigint PRIMARY KEY, committed_at timestamptz NOT NULL);
CREATE TABLE recv (recv_us bigint, payload text);
SELECT activity_monitor.track('lat_t', 'game');
SELECT activity_monitor.create_rule('lat', '$.action == "insert" && $.new.kind == "trigger"',
	tables => '{lat_t}', channel => 'lat');
SQL
[ "$windowed" -gt 0 ] && q >/dev/null <<SQL
SELECT activity_monitor.create_rule('w' || i, '\$.action == "insert"', tables => '{lat_t}',
	within => '1 hour', threshold => CASE WHEN i % 3 = 1 THEN 1e9 ELSE 1000 END,
	measure => (ARRAY['count', 'sum', 'distinct'])[1 + i % 3],
	measure_path => CASE WHEN i % 3 = 0 THEN NULL ELSE '\$.new.id' END::jsonpath,
	group_by => (ARRAY['\$.row_key', '\$.new.kind', '\$.actor_id'])[1 + i % 3]::jsonpath)
FROM generate_series(1, $windowed) i;
SQL
cat >"$work/tx.sql" <<SQL
\set r random(1, $every)
BEGIN;
INSERT INTO lat_t (kind, payload) VALUES (CASE WHEN :r = 1 THEN 'trigger' ELSE 'other' END, 'x');
INSERT INTO lat_commit VALUES (currval('lat_t_id_seq'), clock_timestamp());
COMMIT;
SQL

# the worker is up (CREATE EXTENSION started it)
deadline=$(($(date +%s) + 30))
until [ "$(q -c "SELECT running FROM activity_monitor.worker_status")" = t ]; do
	[ "$(date +%s)" -le "$deadline" ] || die "no activity_monitor worker in $db"
	sleep 0.1
done

PGDATABASE=$db "$work/listen_latency" lat lat_stop "$work/recv.tsv" >"$work/listener.out" 2>&1 &
listener=$!
deadline=$(($(date +%s) + 20))
until grep -q '^ready$' "$work/listener.out"; do
	kill -0 "$listener" 2>/dev/null || die "listener failed: $(cat "$work/listener.out")"
	[ "$(date +%s)" -le "$deadline" ] || die "listener not ready"
	sleep 0.05
done

pgbench -n -c "$clients" -j "$(( clients < 2 ? clients : 2 ))" -R "$rate" -T "$seconds" \
	-f "$work/tx.sql" "$db" >"$work/pgbench.out" 2>&1 || { cat "$work/pgbench.out" >&2; die "pgbench failed"; }

# Wait until the worker has processed everything committed, then tell the
# listener to stop: NOTIFY is delivered in commit order, so it has every
# alert's notification when the stop arrives.
mark=$(q -c "SELECT txid_current()")
deadline=$(($(date +%s) + 120))
until [ "$(q -c "SELECT txid_visible_in_snapshot($mark, last_snapshot) FROM activity_monitor.alert_state")" = t ]; do
	[ "$(date +%s)" -le "$deadline" ] || die "the worker did not catch up within 120 s"
	sleep 0.1
done
q -c "NOTIFY lat_stop"
deadline=$(($(date +%s) + 30))
while kill -0 "$listener" 2>/dev/null; do
	[ "$(date +%s)" -le "$deadline" ] || die "listener did not stop"
	sleep 0.05
done
wait "$listener" || die "listener failed: $(cat "$work/listener.out")"
listener=""

q -c "\copy recv FROM '$work/recv.tsv' WITH (FORMAT csv, DELIMITER E'\t', QUOTE E'\x01')"
tps=$(sed -n 's/^tps = \([0-9.]*\).*/\1/p' "$work/pgbench.out" | head -1)
lag=$(sed -n 's/^rate limit schedule lag: avg \([0-9.]*\) .*max \([0-9.]*\)).*/avg \1 ms, max \2 ms/p' "$work/pgbench.out")
read -r events notified p50 p90 p99 pmax <<<"$(q -F ' ' -c "
	WITH l AS (
		SELECT (r.recv_us - (extract(epoch FROM c.committed_at) * 1000000)::bigint) / 1000.0 AS ms
		FROM recv r
		JOIN activity_monitor.alerts al ON al.id = (r.payload::json ->> 'alert_id')::bigint
		JOIN activity_monitor.activity a ON a.id = al.event_id AND a.table_name = 'public.lat_t'
		JOIN lat_commit c ON c.id = a.row_key::bigint)
	SELECT (SELECT count(*) FROM lat_t WHERE kind = 'trigger'), (SELECT count(*) FROM recv),
		   round(percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)::numeric, 2),
		   round(percentile_cont(0.9) WITHIN GROUP (ORDER BY ms)::numeric, 2),
		   round(percentile_cont(0.99) WITHIN GROUP (ORDER BY ms)::numeric, 2),
		   round(max(ms), 2)
	FROM l")"
dups=$(q -c "SELECT count(*) - count(DISTINCT payload::json ->> 'alert_id') FROM recv")

echo "commit-to-notification latency (activity_monitor alerts)"
echo "rate: $rate/s requested for $seconds s, $clients clients; achieved ${tps:-?} tps; pgbench schedule lag ${lag:-?}"
echo "matching events: $events (1 in $every); notifications: $notified; duplicates: $dups; windowed rules on every event: $windowed"
echo "machine: $(nproc) CPUs, PostgreSQL $(q -c "SHOW server_version")"
echo "p50: $p50 ms"
echo "p90: $p90 ms"
echo "p99: $p99 ms"
echo "max: $pmax ms"
[ "$events" -gt 0 ] || die "no matching event was written"
[ "$dups" = 0 ] || die "$dups duplicate notifications"
[ $((notified * 100)) -ge $((events * 95)) ] || die "only $notified notifications for $events matching events (< 95%)"
