#!/usr/bin/env bash
# Tamper evidence (issue 11): the seal chain and verify().  A cluster of its
# own (it is crashed on purpose), the worker's own sealing rounds made rare
# (seal_interval 1 h: it seals at its start only) so that the test decides
# when a round runs (_seal(), as the worker calls it).
#
#  1. an untouched history of 100,000 events written by concurrent writers,
#     with late commits, rollbacks, savepoints and a prepared transaction,
#     events of past days among them: verify() reports nothing, the seals
#     cover every event once, verify_head() accepts the head;
#  2. a superuser's tampering, each reported precisely: an UPDATE of one
#     event's new_values (event changed), a DELETE (event missing), INSERTs
#     with and without session_replication_role = replica (a back-dated
#     event, never sealed: event added; one reusing a sealed id: event
#     added; one claiming a sealed transaction: event added), a
#     partition dropped by hand (partition missing), while a partition that
#     retention dropped is not a problem;
#  3. a rewrite of events and of every seal: verify() sees nothing,
#     verify_head() against the head saved before reports it;
#  4. the seal table is append-only below its owner (reader, responder,
#     admin, any role);
#  5. kill -9 of a backend sealing a backlog, of the worker in its sealing
#     round, and of the postmaster: after restart the chain is intact and
#     complete;
#  6. the server log carries the head (seal_log_interval), and DROP
#     EXTENSION logs who dropped it and the head at that moment.
set -euo pipefail
. "$AM_ROOT/test/lib/cluster.sh"
fail() { echo "FAIL: $*"; exit 1; }
unset AM_PORT
dir=$AM_TMP/seals
am_cluster_start "$dir" "max_prepared_transactions = 5" "activity_monitor.seal_interval = 3600" \
	"activity_monitor.seal_log_interval = 1" "activity_monitor.naptime = 1" >/dev/null
trap am_cluster_stop EXIT
db=postgres
q() { psql -X -At -v ON_ERROR_STOP=1 -d $db -c "$1"; }
seal_all() {	# seal rounds until nothing is left
	local n
	for _ in $(seq 1 200); do
		n=$(q "SELECT s.events FROM activity_monitor._seal() s")
		[ "$n" = 0 ] && return 0
	done
	fail "sealing did not finish"
}
problems() { q "SELECT coalesce(string_agg(format('%s|%s|%s', seal_id, problem, event_ids), E'\n' ORDER BY problem, seal_id), '')
	FROM activity_monitor.verify()"; }
# events whose id no seal lists (a hash join over the seals' id ranges)
unsealed="SELECT count(*) FROM activity_monitor.activity a LEFT JOIN (
	SELECT pg_catalog.generate_series(lower(r), upper(r) - 1) AS id
	FROM activity_monitor.seal, unnest(ids) r WHERE kind = 'events') s ON s.id = a.id WHERE s.id IS NULL"
short() { cut -c1-${2:-400} <<<"$1" | head -n 12; }

# --- 1. an untouched history ----------------------------------------------------
# Events of past days, as an import before the first seal would leave them:
# in the transaction that sets up (track() and maintain() write admin events
# the worker would seal first, and an import dated before that seal is what
# verify() reports as added).
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
BEGIN;
CREATE TABLE pay (id int PRIMARY KEY, acct int, amount numeric, status text);
-- partitions for the last 6 days (retention and a hand-dropped one below)
SELECT activity_monitor.maintain(now() - interval '6 days');
SELECT activity_monitor.maintain(now() - interval '3 days');
-- (each day's rows from 06:00 UTC on: all in one partition, whatever the
-- time of day the test runs; from now() - 5 days, a run before midnight
-- put some in the next day's)
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id)
   SELECT date_trunc('day', now(), 'UTC') - interval '5 days' + interval '6 hours' + g * interval '1 second', 'payment', 'insert', 'public.pay', g::text, (g % 50)::text, 'user', 'u'
   FROM generate_series(1, 300) g
   UNION ALL
   SELECT date_trunc('day', now(), 'UTC') - interval '3 days' + interval '6 hours' + g * interval '1 second', 'payment', 'insert', 'public.pay', g::text, (g % 50)::text, 'user', 'u'
   FROM generate_series(1, 200) g;
SELECT activity_monitor.track('pay', 'payment', subject_column => 'acct', status_column => 'status');
COMMIT;
SQL
q "SELECT s.events FROM activity_monitor._seal() s" >/dev/null
# A late commit (open across seals), a prepared transaction, rollbacks and
# savepoints, and concurrent writers.
psql -X -q -d $db >/dev/null 2>&1 <<'SQL' &
BEGIN;
INSERT INTO pay SELECT g, g % 97, g, 'late' FROM generate_series(900001, 900100) g;
SELECT pg_sleep(4);
COMMIT;
SQL
late=$!
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "BEGIN" \
	-c "INSERT INTO pay SELECT g, 1, g, 'prep' FROM generate_series(800001, 800050) g" \
	-c "PREPARE TRANSACTION 'am_seal_p'" >/dev/null
cat >"$dir/w.sql" <<'SQL'
\set k random(1, 1000000000)
BEGIN;
INSERT INTO pay VALUES (:k, :k % 1000, 10, 'new') ON CONFLICT (id) DO NOTHING;
UPDATE pay SET status = 'done', amount = amount + 1 WHERE id = :k;
SAVEPOINT s;
UPDATE pay SET status = 'undone' WHERE id = :k;
ROLLBACK TO SAVEPOINT s;
INSERT INTO pay VALUES (:k + 1, :k % 1000, 20, 'new') ON CONFLICT (id) DO NOTHING;
COMMIT;
BEGIN;
INSERT INTO pay VALUES (-:k, 1, 1, 'gone') ON CONFLICT (id) DO NOTHING;
ROLLBACK;
SQL
pgbench -n -c 4 -t 9000 -f "$dir/w.sql" $db >"$dir/pgbench.out" 2>&1 &
bench=$!
# sealing rounds while they write (777 events a seal: several seals a
# round, from the round's events sorted by id)
while kill -0 $bench 2>/dev/null; do
	q "SELECT s.events FROM activity_monitor._seal(777) s" >/dev/null
	sleep 0.3
done
wait $bench || { cat "$dir/pgbench.out"; fail "pgbench failed"; }
q "COMMIT PREPARED 'am_seal_p'" >/dev/null
wait $late
seal_all
n=$(q "SELECT count(*) FROM activity_monitor.activity")
[ "$n" -ge 100000 ] || fail "only $n events"
[ "$(q "SELECT sum(event_count) FROM activity_monitor.seal")" = "$n" ] ||
	fail "the seals cover $(q "SELECT sum(event_count) FROM activity_monitor.seal") events, the table holds $n"
[ "$(q "$unsealed")" = 0 ] || fail "events in no seal"
nseals=$(q "SELECT count(*) FROM activity_monitor.seal")
got=$(problems)
[ -z "$got" ] || fail "verify() on an untouched history of $n events reports: $(short "$got")"
[ -z "$(q "SELECT string_agg(problem, ',') FROM activity_monitor.verify(now() - interval '1 hour', now())")" ] ||
	fail "verify(since, until) reports problems on an untouched history"
read -r head_id head_hash <<<"$(q "SELECT seal_id || ' ' || hash FROM activity_monitor.seal_head()")"
[ "$(q "SELECT activity_monitor.verify_head($head_id, '$head_hash')")" = t ] || fail "verify_head() refuses the head"
[ "$(q "SELECT activity_monitor.verify_head($head_id, repeat('0', 64))")" = f ] || fail "verify_head() accepts any hash"
echo "ok: $n events in $nseals seals, verify() reports nothing; head $head_id $head_hash"

# The head reaches the server log (seal_log_interval 1 s, naptime 1 s; the
# worker logs after its own rounds, at its start and each hour here).
grep -q "activity_monitor seal head of database \"$db\": seal [0-9]* at .* hash [0-9a-f]\{64\}" "$dir/server.log" ||
	fail "no seal head line in the server log"

# --- 2. tampering -------------------------------------------------------------
day3=$(q "SELECT tableoid::regclass FROM activity_monitor.activity WHERE occurred_at < now() - interval '2 days 12 hours' AND occurred_at > now() - interval '4 days' LIMIT 1")
day5=$(q "SELECT tableoid::regclass FROM activity_monitor.activity WHERE occurred_at < now() - interval '4 days 12 hours' LIMIT 1")
ids3=$(q "SELECT array_agg(id ORDER BY id) FROM $day3")
changed=$(q "SELECT max(id) FROM activity_monitor.activity WHERE table_name = 'public.pay' AND action = 'update'")
deleted=$(q "SELECT min(id) FROM activity_monitor.activity WHERE table_name = 'public.pay' AND action = 'insert' AND occurred_at > now() - interval '1 hour'")
reused=$(q "SELECT min(id) + 5 FROM activity_monitor.activity WHERE table_name = 'public.pay' AND occurred_at > now() - interval '1 hour'")
old_txid=$(q "SELECT txid FROM activity_monitor.activity WHERE id = $reused")
seal_of() { q "SELECT id FROM activity_monitor.seal WHERE kind = 'events' AND ids @> $1::bigint"; }
q "UPDATE activity_monitor.activity SET new_values = jsonb_set(new_values, '{amount}', '1000000') WHERE id = $changed" >/dev/null
q "DELETE FROM activity_monitor.activity WHERE id = $deleted" >/dev/null
psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<SQL
SET session_replication_role = replica;
-- back-dated, a fresh id: dated before the horizon, no round seals it
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id)
VALUES (now() - interval '30 minutes', 'payment', 'update', 'public.pay', '7', '7', 'employee', 'forged-1');
RESET session_replication_role;
-- the id of a sealed event
INSERT INTO activity_monitor.activity (id, occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id, txid)
SELECT id, occurred_at, kind, action, table_name, row_key, subject_id, 'employee', 'forged-2', txid
FROM activity_monitor.activity WHERE id = $reused;
-- a sealed transaction's id, dated now: no round will seal it
INSERT INTO activity_monitor.activity (occurred_at, kind, action, table_name, row_key, subject_id, actor_type, actor_id, txid)
VALUES (now(), 'payment', 'update', 'public.pay', '8', '8', 'employee', 'forged-3', $old_txid);
SQL
forged1=$(q "SELECT id FROM activity_monitor.activity WHERE actor_id = 'forged-1'")
forged3=$(q "SELECT id FROM activity_monitor.activity WHERE actor_id = 'forged-3'")
q "SELECT s.events FROM activity_monitor._seal() s" >/dev/null
[ -z "$(seal_of "$forged1")" ] || fail "the back-dated event was sealed"
# Retention retires the partition of 5 days ago (sealed first); the one of
# 3 days ago is dropped by hand.
q "DROP TABLE $day3" >/dev/null
PGOPTIONS="-c activity_monitor.min_retention=0" psql -X -q -v ON_ERROR_STOP=1 -d $db \
	-c "UPDATE activity_monitor.config SET retention = '4 days'" \
	-c "SELECT activity_monitor.maintain()" >/dev/null
[ "$(q "SELECT to_regclass('$day5') IS NULL")" = t ] || fail "retention did not drop $day5"
[ "$(q "SELECT count(*) FROM activity_monitor.seal WHERE kind = 'retention' AND event_count = 300 AND detail->>'partition' = '$day5'")" = 1 ] ||
	fail "no retention seal for $day5: $(q "SELECT detail FROM activity_monitor.seal WHERE kind = 'retention'")"
want="$(seal_of "$reused")|event added|{$reused}
|event added|{$forged1,$forged3}
$(seal_of "$changed")|event changed|{$changed}
$(seal_of "$deleted")|event missing|{$deleted}
1|partition missing|$ids3"
want=$(sort <<<"$want")
got=$(problems | sort)
[ "$got" = "$want" ] || fail "verify() after tampering reported
$(short "$got")
expected
$(short "$want")"
echo "ok: verify() names each tampering: $(tr '\n' ';' <<<"$got" | cut -c1-300)"

# --- 3. a rewrite of events and of every seal -----------------------------------
# The superuser removes the forged events and rewrites the chain from
# scratch over the table with its changed event.
q "DELETE FROM activity_monitor.activity WHERE actor_id LIKE 'forged-%' OR id = $reused" >/dev/null
q "DELETE FROM activity_monitor.seal" >/dev/null
seal_all
[ -z "$(problems)" ] || fail "the rewritten chain is not self-consistent: $(short "$(problems)")"
[ "$(q "SELECT activity_monitor.verify_head($head_id, '$head_hash')")" = f ] ||
	fail "verify_head() accepts the head saved before the rewrite"
echo "ok: a rewritten chain passes verify() and fails verify_head($head_id, saved hash)"

# --- 4. append-only below the owner ---------------------------------------------
psql -X -q -v ON_ERROR_STOP=1 -d $db >/dev/null <<'SQL'
CREATE ROLE am_s_reader LOGIN IN ROLE activity_monitor_reader;
CREATE ROLE am_s_admin LOGIN IN ROLE activity_monitor_admin;
CREATE ROLE am_s_any LOGIN;
SQL
for r in am_s_reader am_s_admin am_s_any; do
	for stmt in "INSERT INTO activity_monitor.seal SELECT * FROM activity_monitor.seal LIMIT 1" \
		"UPDATE activity_monitor.seal SET detail = '{}'" "DELETE FROM activity_monitor.seal" \
		"TRUNCATE activity_monitor.seal" "SELECT activity_monitor._seal()" \
		"SELECT activity_monitor._seal_retired('activity_monitor.activity_default', 'drop')"; do
		out=$(psql -X -At -d $db -U $r -c "$stmt" 2>&1) && fail "$r could run: $stmt"
		grep -q "permission denied" <<<"$out" || fail "$r: $stmt: $out"
	done
done
[ "$(psql -X -At -d $db -U am_s_reader -c "SELECT count(*) > 0 FROM activity_monitor.seal")" = t ] || fail "a reader cannot read the seals"
[ -n "$(psql -X -At -d $db -U am_s_reader -c "SELECT seal_id FROM activity_monitor.seal_head()")" ] || fail "a reader cannot read the head"
out=$(psql -X -At -d $db -U am_s_any -c "SELECT * FROM activity_monitor.verify()" 2>&1) && fail "any role can run verify()"
echo "ok: the seals are append-only below the owner; readers read and verify"

# --- 5. crashes while sealing ---------------------------------------------------
# The history is clean again (the chain rewritten above); a backlog sealed
# by a backend killed with -9.
[ -z "$(problems)" ] || fail "not clean before the crash: $(short "$(problems)")"
pgbench -n -c 2 -t 6000 -f "$dir/w.sql" $db >"$dir/pgbench2.out" 2>&1 || fail "pgbench failed"
before=$(q "SELECT count(*) FROM activity_monitor.seal")
psql -X -At -d $db -c "SELECT * FROM activity_monitor._seal(1000)" >/dev/null 2>&1 &
sealer=$!
pid=
for _ in $(seq 1 200); do
	pid=$(q "SELECT pid FROM pg_stat_activity WHERE query LIKE '%_seal(1000)%' AND pid <> pg_backend_pid()" || true)
	[ -n "$pid" ] && break
	sleep 0.01
done
[ -n "$pid" ] || fail "the sealing backend was not seen"
sleep 0.1
kill -9 "$pid"
wait $sealer || true
am_wait_for 30 $db "SELECT true" || fail "the cluster did not come back after kill -9 of a sealing backend"
cut1=$(q "SELECT count(*) = $before FROM activity_monitor.seal")
seal_all
[ -z "$(problems)" ] || fail "after kill -9 of a sealing backend: $(short "$(problems)")"
# kill -9 of the worker in its own sealing round: a backlog, the worker's
# seal_interval down to 1 s, and the kill as soon as it holds the chain's
# lock (a round locks it first); the postmaster restarts everything
pgbench -n -c 2 -t 6000 -f "$dir/w.sql" $db >"$dir/pgbench2w.out" 2>&1 || fail "pgbench failed"
before=$(q "SELECT count(*) FROM activity_monitor.seal")
wpid=$(q "SELECT pid FROM activity_monitor.worker_status WHERE running")
[ -n "$wpid" ] || fail "no worker running before its kill"
q "ALTER SYSTEM SET activity_monitor.seal_interval = 1" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
timeout 60 psql -X -At -v ON_ERROR_STOP=1 -d $db -c "DO \$\$ BEGIN
	WHILE NOT EXISTS (SELECT 1 FROM pg_locks WHERE pid = $wpid AND granted
					  AND relation = 'activity_monitor.seal'::regclass) LOOP
		PERFORM pg_sleep(0.001);
	END LOOP;
END \$\$" >/dev/null || fail "the worker did not start a sealing round"
kill -9 "$wpid"
sleep 1
am_wait_for 30 $db "SELECT true" || fail "the cluster did not come back after kill -9 of the worker"
q "ALTER SYSTEM RESET activity_monitor.seal_interval" >/dev/null
q "SELECT pg_reload_conf()" >/dev/null
cutw=$(q "SELECT count(*) = $before FROM activity_monitor.seal")
seal_all
[ -z "$(problems)" ] || fail "after kill -9 of the worker while it sealed: $(short "$(problems)")"
# kill -9 of the postmaster during a sealing round, then a restart (once
# the orphaned processes let go of the shared memory)
pgbench -n -c 2 -t 6000 -f "$dir/w.sql" $db >"$dir/pgbench3.out" 2>&1 || fail "pgbench failed"
psql -X -At -d $db -c "SELECT * FROM activity_monitor._seal(1000)" >/dev/null 2>&1 &
sealer=$!
sleep 0.3
kill -9 "$(head -n 1 "$PGDATA/postmaster.pid")"
wait $sealer || true
started=
for _ in $(seq 1 60); do
	if am_as_owner "$AM_PGBIN/pg_ctl" -D "$PGDATA" -l "$dir/server.log" -w -t 60 start >/dev/null 2>&1; then
		started=1
		break
	fi
	sleep 1
done
[ -n "$started" ] || fail "the cluster did not restart after kill -9 of the postmaster"
seal_all
[ -z "$(problems)" ] || fail "after kill -9 of the postmaster: $(short "$(problems)")"
n=$(q "SELECT count(*) FROM activity_monitor.activity")
[ "$(q "SELECT sum(event_count) FROM activity_monitor.seal WHERE kind = 'events'")" = "$n" ] ||
	fail "after the crashes the seals cover $(q "SELECT sum(event_count) FROM activity_monitor.seal WHERE kind = 'events'") of $n events"
[ "$(q "$unsealed")" = 0 ] || fail "events in no seal after the crashes"
echo "ok: after kill -9 of a sealing backend (round cut: $cut1), of the worker in its sealing round (cut: $cutw) and of the postmaster the chain is intact and covers all $n events"

# --- 6. DROP EXTENSION names who and the head ------------------------------------
read -r head_id head_hash <<<"$(q "SELECT seal_id || ' ' || hash FROM activity_monitor.seal_head()")"
psql -X -q -v ON_ERROR_STOP=1 -d $db -c "CREATE ROLE am_s_dropper SUPERUSER LOGIN" \
	-c "SET ROLE am_s_dropper" -c "DROP EXTENSION activity_monitor CASCADE" 2>"$dir/drop.err" ||
	fail "DROP EXTENSION failed: $(cat "$dir/drop.err")"
grep -q "WARNING:  activity_monitor is being dropped from database \"$db\" by role \"am_s_dropper\" (session user \"postgres\")" "$dir/server.log" &&
	grep -q "DETAIL:  The seal head at the drop: seal $head_id at .* hash $head_hash\." "$dir/server.log" ||
	fail "DROP EXTENSION did not log who dropped it and seal $head_id: $(grep -A1 "being dropped" "$dir/server.log")"
echo "ok: DROP EXTENSION logged who dropped it and seal $head_id"
# DROP SCHEMA ... CASCADE drops the extension too: the same warning.  (After
# the worker's first rounds: a drop in the middle of one can deadlock with
# it, an error the drop's session gets, and which a retry passes.)
q "CREATE EXTENSION activity_monitor" >/dev/null
am_wait_for 30 $db "SELECT last_run_at IS NOT NULL FROM activity_monitor.worker_status" ||
	fail "the worker did not run after CREATE EXTENSION"
am_wait_for 30 $db "SELECT last_run_at IS NOT NULL FROM activity_monitor.alert_state" ||
	fail "the worker did not run an alert round after CREATE EXTENSION"
psql -X -q -v ON_ERROR_STOP=1 -d $db \
	-c "SET ROLE am_s_dropper" -c "SET client_min_messages = error" -c "DROP SCHEMA activity_monitor CASCADE" 2>"$dir/drop.err" ||
	fail "DROP SCHEMA failed: $(cat "$dir/drop.err")"
[ "$(grep -c "WARNING:  activity_monitor is being dropped from database \"$db\" by role \"am_s_dropper\"" "$dir/server.log")" = 2 ] ||
	fail "DROP SCHEMA activity_monitor CASCADE did not log who dropped the extension: $(grep -A1 "being dropped" "$dir/server.log")"
echo "ok: DROP SCHEMA activity_monitor CASCADE logged it too"
