#!/usr/bin/env bash
# Exactness under concurrency: many pgbench sessions run a mix of committed
# and rolled-back transactions, savepoints (released and rolled back),
# PL/pgSQL exception blocks, no-op updates and deletes against two tracked
# tables.  Every committed row change the workload makes also writes one row
# into the untracked table "truth" in the same (sub)transaction, so a change
# that is rolled back takes its truth row with it.  Afterwards the activity
# must hold exactly one event per truth row (same table, action, row key,
# status_to and top-level txid; multiset equality both ways) and no event of
# a transaction that did not commit.
#
# Needs PGHOST/PGPORT/PGUSER (a running cluster with activity_monitor
# preloaded), AM_TMP (scratch dir).  Exit 0 = pass.
set -uo pipefail

db=am_exactness
work=${AM_TMP:-$(mktemp -d)}/exactness
mkdir -p "$work"
clients=${AM_EXACT_CLIENTS:-8}
duration=${AM_EXACT_SECONDS:-8}

fail() { echo "FAIL: $*" >&2; exit 1; }
q() { psql -X -q -At -v ON_ERROR_STOP=1 -d "$db" "$@"; }

drop_db() { psql -X -q -d postgres -c "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1; }
# Dropped at exit (each database with the extension holds a worker slot);
# AM_KEEP_DB=1 keeps it for a look.
[ -n "${AM_KEEP_DB:-}" ] || trap drop_db EXIT
drop_db
psql -X -q -v ON_ERROR_STOP=1 -d postgres -c "CREATE DATABASE $db" >/dev/null || fail "cannot create database $db"

# --- schema -------------------------------------------------------------------
PGOPTIONS="-c client_min_messages=warning" q >/dev/null <<'SQL' || fail "setup failed"
CREATE EXTENSION activity_monitor;

CREATE TABLE accounts (
	id			bigserial PRIMARY KEY,
	balance		numeric NOT NULL DEFAULT 0,
	status		text NOT NULL DEFAULT 'active',
	note		text,
	updated_at	timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE payments (
	id			bigserial PRIMARY KEY,
	account_id	bigint NOT NULL,
	amount		numeric NOT NULL,
	status		text NOT NULL DEFAULT 'pending'
);
-- The ground truth: not tracked.  id comes from a sequence, which rollback
-- does not give back, so last_value - count = truth rows rolled back.
CREATE TABLE truth (
	id			bigserial PRIMARY KEY,
	tbl			text NOT NULL,
	action		text NOT NULL,
	row_key		text NOT NULL,
	status_to	text,
	txid		bigint NOT NULL DEFAULT txid_current()
);

-- Seed rows before tracking: they have no events and no truth.
-- Accounts 1..100 are never deleted; workload accounts (> 100) may be.
INSERT INTO accounts (balance, status) SELECT 1000, 'active' FROM generate_series(1, 100);
INSERT INTO payments (account_id, amount, status)
	SELECT 1 + g % 100, g, CASE WHEN g % 3 = 0 THEN 'completed' ELSE 'pending' END
	FROM generate_series(1, 400) g;

SELECT activity_monitor.track('accounts', 'profile', subject_column => 'id',
	status_column => 'status', critical_columns => '{balance}', ignore_columns => '{updated_at}');
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id',
	status_column => 'status', critical_columns => '{amount}');

-- A user trigger that fails a statement after capture has fired for all of
-- its rows (statement triggers fire after the row triggers).
CREATE FUNCTION poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF EXISTS (SELECT 1 FROM new_rows WHERE amount = -1) THEN
		RAISE EXCEPTION 'poisoned payments' USING ERRCODE = 'P0001';
	END IF;
	RETURN NULL;
END $$;
CREATE TRIGGER poison AFTER UPDATE ON payments REFERENCING NEW TABLE AS new_rows
	FOR EACH STATEMENT EXECUTE FUNCTION poison();

-- Committed work around a PL/pgSQL exception block whose work is undone
-- (a subtransaction aborted by an error, not by ROLLBACK TO).
CREATE FUNCTION pay_with_error(aid bigint, amt numeric) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	pid bigint;
	st text;
BEGIN
	UPDATE accounts SET balance = balance + amt WHERE id = aid;
	INSERT INTO truth (tbl, action, row_key) VALUES ('public.accounts', 'update', aid::text);
	BEGIN
		UPDATE accounts SET status = CASE status WHEN 'active' THEN 'review' ELSE 'active' END
			WHERE id = aid RETURNING status INTO st;
		INSERT INTO truth (tbl, action, row_key, status_to) VALUES ('public.accounts', 'update', aid::text, st);
		INSERT INTO payments (account_id, amount) VALUES (aid, amt) RETURNING id INTO pid;
		INSERT INTO truth (tbl, action, row_key, status_to) VALUES ('public.payments', 'insert', pid::text, 'pending');
		PERFORM 1 / (amt - amt);			-- division_by_zero
	EXCEPTION WHEN division_by_zero THEN
		NULL;
	END;
	BEGIN
		-- capture fires for every payment of the account, then the
		-- statement trigger poison fails the statement: those events must go
		WITH c AS (UPDATE payments SET amount = -1 WHERE account_id = aid RETURNING id)
			INSERT INTO truth (tbl, action, row_key) SELECT 'public.payments', 'update', id::text FROM c;
	EXCEPTION WHEN raise_exception THEN
		NULL;
	END;
	INSERT INTO payments (account_id, amount, status) VALUES (aid, amt, 'failed') RETURNING id INTO pid;
	INSERT INTO truth (tbl, action, row_key, status_to) VALUES ('public.payments', 'insert', pid::text, 'failed');
END $$;
SQL

# --- workload -----------------------------------------------------------------
# Lock discipline (no deadlocks, so no retries): a transaction locks at most
# one account (1..100, or one it created), and payments of that account only
# after it; a statement outside such a transaction locks one row at most.

# Committed multi-statement transaction.
cat >"$work/commit.sql" <<'SQL'
\set aid random(1, 100)
\set amt random(1, 500)
BEGIN;
SELECT activity_monitor.set_actor('user', 'u-' || :aid);
WITH c AS (UPDATE accounts SET balance = balance - :amt, updated_at = now() WHERE id = :aid RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'update', id::text FROM c;
WITH c AS (INSERT INTO payments (account_id, amount) VALUES (:aid, :amt) RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'insert', id::text, status FROM c;
WITH c AS (UPDATE payments SET status = 'completed'
		WHERE id = (SELECT min(id) FROM payments WHERE account_id = :aid AND status = 'pending') AND status = 'pending'
		RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'update', id::text, status FROM c;
COMMIT;
SQL

# Savepoints: the first capture of the transaction is rolled back, then
# nested savepoints, RELEASE inside a savepoint that is rolled back, and
# released savepoints that stay.
cat >"$work/savepoint.sql" <<'SQL'
\set aid random(1, 100)
\set amt random(1, 500)
BEGIN;
SAVEPOINT s0;
WITH c AS (UPDATE accounts SET balance = balance + :amt WHERE id = :aid RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'update', id::text FROM c;
ROLLBACK TO SAVEPOINT s0;
WITH c AS (UPDATE accounts SET status = CASE status WHEN 'active' THEN 'review' ELSE 'active' END
		WHERE id = :aid RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.accounts', 'update', id::text, status FROM c;
WITH c AS (INSERT INTO payments (account_id, amount) VALUES (:aid, :amt) RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'insert', id::text, status FROM c;
SAVEPOINT s1;
WITH c AS (UPDATE payments SET status = 'completed'
		WHERE id = (SELECT min(id) FROM payments WHERE account_id = :aid AND status = 'pending') AND status = 'pending'
		RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'update', id::text, status FROM c;
SAVEPOINT s2;
WITH c AS (INSERT INTO payments (account_id, amount) VALUES (:aid, :amt + 1) RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'insert', id::text, status FROM c;
RELEASE SAVEPOINT s2;
WITH c AS (UPDATE accounts SET note = 'sp ' || :amt WHERE id = :aid AND note IS DISTINCT FROM 'sp ' || :amt RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'update', id::text FROM c;
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s3;
WITH c AS (UPDATE payments SET amount = amount + 1 WHERE account_id = :aid AND status = 'completed' RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.payments', 'update', id::text FROM c;
RELEASE SAVEPOINT s3;
COMMIT;
SQL

# Work that is rolled back as a whole.
cat >"$work/rollback.sql" <<'SQL'
\set aid random(1, 100)
\set amt random(1, 500)
BEGIN;
WITH c AS (UPDATE accounts SET balance = balance + :amt WHERE id = :aid RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'update', id::text FROM c;
WITH c AS (INSERT INTO payments (account_id, amount) VALUES (:aid, :amt) RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'insert', id::text, status FROM c;
WITH c AS (UPDATE payments SET status = 'refunded' WHERE account_id = :aid AND status = 'completed' RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.payments', 'update', id::text, status FROM c;
WITH c AS (DELETE FROM payments WHERE account_id = :aid AND status = 'pending' RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.payments', 'delete', id::text FROM c;
ROLLBACK;
SQL

# Updates that change nothing recorded: same values, or only the ignored
# column.  No truth rows: they must record nothing.
cat >"$work/noop.sql" <<'SQL'
\set aid random(1, 100)
BEGIN;
UPDATE accounts SET status = status, balance = balance, note = note WHERE id = :aid;
UPDATE accounts SET updated_at = now() + interval '1 minute' WHERE id = :aid;
UPDATE payments SET amount = amount, status = status WHERE account_id = :aid;
COMMIT;
UPDATE accounts SET updated_at = now() WHERE id = :aid;
SQL

# Deletes (autocommit, one row each).
cat >"$work/delete.sql" <<'SQL'
\set k random(0, 7)
WITH c AS (DELETE FROM payments
		WHERE id = (SELECT min(id) FROM payments WHERE status = 'completed' AND id % 8 = :k) AND status = 'completed'
		RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.payments', 'delete', id::text FROM c;
WITH c AS (DELETE FROM accounts
		WHERE id = (SELECT min(id) FROM accounts WHERE id > 100 AND status = 'open' AND id % 8 = :k) AND status = 'open'
		RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'delete', id::text FROM c;
SQL

# An account's life in one transaction: insert, update, a delete that is
# rolled back to a savepoint; a second account inserted and deleted.
cat >"$work/lifecycle.sql" <<'SQL'
BEGIN;
WITH c AS (INSERT INTO accounts (balance, status, note) VALUES (0, 'new', 'client ' || :client_id) RETURNING id, status),
	 t AS (INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.accounts', 'insert', id::text, status FROM c)
	SELECT id AS new_id FROM c \gset
WITH c AS (UPDATE accounts SET status = 'open', balance = 10 WHERE id = :new_id RETURNING id, status)
	INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.accounts', 'update', id::text, status FROM c;
SAVEPOINT a;
WITH c AS (DELETE FROM accounts WHERE id = :new_id RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'delete', id::text FROM c;
ROLLBACK TO SAVEPOINT a;
WITH c AS (INSERT INTO accounts (balance, status) VALUES (0, 'temp') RETURNING id, status),
	 t AS (INSERT INTO truth (tbl, action, row_key, status_to) SELECT 'public.accounts', 'insert', id::text, status FROM c)
	SELECT id AS tmp_id FROM c \gset
WITH c AS (DELETE FROM accounts WHERE id = :tmp_id RETURNING id)
	INSERT INTO truth (tbl, action, row_key) SELECT 'public.accounts', 'delete', id::text FROM c;
COMMIT;
SQL

cat >"$work/plpgsql.sql" <<'SQL'
\set aid random(1, 100)
\set amt random(1, 500)
BEGIN;
SELECT pay_with_error(:aid, :amt);
COMMIT;
SQL

start=$(date +%s)
pgbench -n -c "$clients" -j 2 -T "$duration" \
	-f "$work/commit.sql@5" -f "$work/savepoint.sql@3" -f "$work/rollback.sql@2" \
	-f "$work/noop.sql@2" -f "$work/delete.sql@2" -f "$work/lifecycle.sql@1" \
	-f "$work/plpgsql.sql@2" \
	"$db" >"$work/pgbench.out" 2>&1
rc=$?
grep -E "^(number of (transactions actually processed|failed transactions)|tps)" "$work/pgbench.out"
if [ $rc != 0 ]; then
	tail -n 30 "$work/pgbench.out" >&2
	fail "pgbench exited with status $rc (a client aborted: the workload hit an error)"
fi
grep -qE "^number of failed transactions: 0 " "$work/pgbench.out" ||
	fail "pgbench reports failed transactions"
echo "workload: $(($(date +%s) - start)) s, $clients clients"

# --- compare ------------------------------------------------------------------
q <<'SQL' || fail "could not build the comparison"
CREATE VIEW ev AS
	SELECT table_name AS tbl, action, row_key, status_to, txid FROM activity_monitor.activity
	WHERE kind <> 'admin';	-- (track()'s own events: test/pgtap/audit.sql)
CREATE VIEW tr AS SELECT tbl, action, row_key, status_to, txid FROM truth;
SQL

echo "events by table and action (activity | truth):"
q -F ' ' -c "
	SELECT rpad(tbl, 16), rpad(action, 7), sum(e)::int, '|', sum(t)::int
	FROM (SELECT tbl, action, 1 AS e, 0 AS t FROM ev
		  UNION ALL SELECT tbl, action, 0, 1 FROM truth) x
	GROUP BY tbl, action ORDER BY 1, 2"

read -r n_ev n_tr n_txid rolled_truth rolled_ev <<<"$(q -F ' ' -c "
	SELECT (SELECT count(*) FROM ev),
		   (SELECT count(*) FROM truth),
		   (SELECT count(DISTINCT txid) FROM truth),
		   (SELECT last_value FROM truth_id_seq) - (SELECT count(*) FROM truth),
		   (SELECT last_value FROM activity_monitor.activity_id_seq) - (SELECT count(*) FROM activity_monitor.activity)")"
echo "events: $n_ev, truth rows: $n_tr, committed transactions with changes: $n_txid"
echo "rolled back: $rolled_truth truth rows, $rolled_ev events"

status=0
[ "$n_tr" -gt 1000 ] || { echo "FAIL: only $n_tr committed changes: the workload did not run" >&2; status=1; }
[ "$rolled_truth" -gt 100 ] || { echo "FAIL: only $rolled_truth rolled-back changes: rollbacks not exercised" >&2; status=1; }
# Capture fired for every rolled-back change too (one activity id each), and
# rollback removed those events: the ids consumed equal the truth ids.
[ "$rolled_ev" = "$rolled_truth" ] ||
	{ echo "FAIL: $rolled_ev activity ids consumed by rolled-back work, expected $rolled_truth (one per rolled-back change)" >&2; status=1; }
[ "$n_ev" = "$n_tr" ] || { echo "FAIL: $n_ev events, expected $n_tr (one per committed row change)" >&2; status=1; }

extra=$(q -c "SELECT count(*) FROM (SELECT * FROM ev EXCEPT ALL SELECT * FROM tr) x")
missing=$(q -c "SELECT count(*) FROM (SELECT * FROM tr EXCEPT ALL SELECT * FROM ev) x")
if [ "$extra" != 0 ] || [ "$missing" != 0 ]; then
	echo "FAIL: $extra events without a committed change (extra), $missing committed changes without an event (lost)" >&2
	q -c "SELECT 'extra', * FROM (SELECT * FROM ev EXCEPT ALL SELECT * FROM tr) x LIMIT 10" >&2
	q -c "SELECT 'lost', * FROM (SELECT * FROM tr EXCEPT ALL SELECT * FROM ev) x LIMIT 10" >&2
	status=1
fi

bad_tx=$(q -c "SELECT count(*) FROM ev
	WHERE txid_status(txid) IS DISTINCT FROM 'committed'
	   OR txid NOT IN (SELECT txid FROM truth)")
[ "$bad_tx" = 0 ] || { echo "FAIL: $bad_tx events of transactions that did not commit or made no change" >&2; status=1; }

# The events replay to the tables' current rows: seed rows + inserted - deleted.
replay=$(q -c "
	WITH e AS (
		SELECT tbl, row_key,
			   sum(CASE action WHEN 'insert' THEN 1 WHEN 'delete' THEN -1 ELSE 0 END) AS n
		FROM ev GROUP BY 1, 2),
	want AS (
		SELECT 'public.accounts' AS tbl, id::text AS row_key FROM generate_series(1, 100) id
		UNION ALL SELECT 'public.payments', id::text FROM generate_series(1, 400) id),
	expect AS (
		SELECT coalesce(e.tbl, w.tbl) AS tbl, coalesce(e.row_key, w.row_key) AS row_key,
			   coalesce(e.n, 0) + CASE WHEN w.row_key IS NULL THEN 0 ELSE 1 END AS n
		FROM e FULL JOIN want w USING (tbl, row_key)),
	have AS (
		SELECT 'public.accounts' AS tbl, id::text AS row_key FROM accounts
		UNION ALL SELECT 'public.payments', id::text FROM payments)
	SELECT count(*) FROM (
		(SELECT tbl, row_key FROM expect WHERE n = 1 EXCEPT ALL SELECT * FROM have)
		UNION ALL (SELECT * FROM have EXCEPT ALL SELECT tbl, row_key FROM expect WHERE n = 1)
		UNION ALL (SELECT tbl, row_key FROM expect WHERE n NOT IN (0, 1))) x")
[ "$replay" = 0 ] || { echo "FAIL: replaying inserts and deletes of the activity gives $replay rows that differ from the tables" >&2; status=1; }

[ $status = 0 ] && echo "ok: $n_ev events = $n_tr committed row changes, none from $rolled_truth rolled-back changes"
exit $status
