#!/usr/bin/env bash
# Tamper evidence cost (issue 11), in one run on one cluster:
#
#   capture   changes per second the platform's writes produce under the
#             capture benchmark's pgbench workload (workload.sql, 2 clients,
#             SEAL_SECONDS), activity_monitor variant;
#   sealing   events per second a sealing round (_seal(), what the worker
#             runs) seals: the backlog that workload left (the worker's
#             path: snapshot pair, txid index), and the genesis seal of
#             SEAL_EVENTS events pre-loaded (bench_preload_sql's shape);
#   verify    events per second verify() checks over all of them, and
#             verify() of the last hour.
#
# The worker's own sealing is off (seal_interval 1 h) so that each round is
# timed alone.  Prints a markdown table; the target is sealing >= 5 x
# capture and verify >= 1 million events per second (one backend: one core).
#
#   test/bench/seal.sh
#
# Environment: SEAL_EVENTS (10000000), SEAL_SECONDS (20), BENCH_USE_EXISTING=1.
set -euo pipefail
BENCH_DIR=$(cd "$(dirname "$0")" && pwd)
. "$BENCH_DIR/common.sh"

events=${SEAL_EVENTS:-10000000}
seconds=${SEAL_SECONDS:-20}
BENCH_CLUSTER_CONF=("activity_monitor.seal_interval = 3600")
bench_cluster_up
db=am_bench_seal_$$
q() { "${BENCH_PSQL[@]}" -At -d "$db" -c "$1"; }
"${BENCH_PSQL[@]}" -c "CREATE DATABASE $db"
trap '"${BENCH_PSQL[@]}" -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; bench_cleanup' EXIT
"${BENCH_PSQL[@]}" -d "$db" -f "$BENCH_DIR/schema.sql" >/dev/null
"${BENCH_PSQL[@]}" -d "$db" -f "$BENCH_DIR/variant_activity_monitor.sql" >/dev/null
# timed in the server, one statement: seconds
timed() { q "DO \$t\$ DECLARE t0 timestamptz := clock_timestamp(); BEGIN PERFORM ($1); RAISE WARNING '%', extract(epoch FROM clock_timestamp() - t0); END \$t\$" 2>&1 |
	sed -n 's/.*WARNING: *//p'; }
seal_rounds() {	# every pending event, one round after another: seconds events seals
	q "DO \$t\$ DECLARE t0 timestamptz := clock_timestamp(); r record; n bigint := 0; s int := 0;
	   BEGIN LOOP SELECT * INTO r FROM activity_monitor._seal(); EXIT WHEN r.events = 0;
	   n := n + r.events; s := s + r.seals; END LOOP;
	   RAISE WARNING '% % %', extract(epoch FROM clock_timestamp() - t0), n, s; END \$t\$" 2>&1 | sed -n 's/.*WARNING: *//p'
}

# The pre-loaded history (one transaction), sealed here rather than by the loader.
echo "pre-loading $events events ..." >&2
bench_preload_sql activity "$events" 100000 | sed -e '/activity_monitor._seal()/d' |
	"${BENCH_PSQL[@]}" -d "$db" >/dev/null
read -r genesis_s genesis_n genesis_seals <<<"$(seal_rounds)"

# Capture: the pgbench workload, changes per second.
n0=$(q "SELECT count(*) FROM activity_monitor.activity")
pgbench -n -M simple -c 2 -T "$seconds" -f "$BENCH_DIR/workload.sql" "$db" >"$BENCH_WORK/pgbench.out" 2>&1
n1=$(q "SELECT count(*) FROM activity_monitor.activity")
capture=$(echo "($n1 - $n0) / $seconds" | bc)
read -r backlog_s backlog_n backlog_seals <<<"$(seal_rounds)"

q "VACUUM ANALYZE activity_monitor.activity" >/dev/null
total=$(q "SELECT count(*) FROM activity_monitor.activity")
verify_s=$(timed "SELECT count(*) FROM activity_monitor.verify()")
problems=$(q "SELECT count(*) FROM activity_monitor.verify()")
verify_hour_s=$(timed "SELECT count(*) FROM activity_monitor.verify(now() - interval '1 hour', now())")
hour_n=$(q "SELECT count(*) FROM activity_monitor.activity WHERE occurred_at >= now() - interval '1 hour'")
head_s=$(timed "SELECT activity_monitor.verify_head(h.seal_id, h.hash) FROM activity_monitor.seal_head() h")
seal_bytes=$(q "SELECT pg_total_relation_size('activity_monitor.seal')")

rate() { echo "scale=0; $1 / $2" | bc; }
cat <<EOF
## Tamper evidence: sealing and verify() ($(date -u +%F), $(nproc) cores, load $(cut -d' ' -f1 /proc/loadavg))

| measure | events | seconds | events/s |
|---|---|---|---|
| capture: pgbench workload.sql, 2 clients, ${seconds} s (changes captured) | $((n1 - n0)) | $seconds | $capture |
| sealing the workload's backlog (worker path: snapshot pair, $backlog_seals seals) | $backlog_n | $backlog_s | $(rate "$backlog_n" "$backlog_s") |
| sealing the pre-loaded history (genesis, $genesis_seals seals) | $genesis_n | $genesis_s | $(rate "$genesis_n" "$genesis_s") |
| verify(), whole history ($problems problems) | $total | $verify_s | $(rate "$total" "$verify_s") |
| verify(now() - 1 hour, now()) | $hour_n | $verify_hour_s | $(rate "$hour_n" "$verify_hour_s") |
| verify_head() of the head (whole chain) | $total | $head_s | $(rate "$total" "$head_s") |

Sealing / capture: $(echo "scale=1; $(rate "$backlog_n" "$backlog_s") / $capture" | bc) (worker path), $(echo "scale=1; $(rate "$genesis_n" "$genesis_s") / $capture" | bc) (genesis).
Seal table: $seal_bytes bytes, $(echo "scale=1; $seal_bytes / $total" | bc) bytes per event.
EOF
