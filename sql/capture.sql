-- Capture semantics: what one change of a tracked table records.
CREATE EXTENSION activity_monitor;
SET client_min_messages = warning;

CREATE TABLE accounts (
	id bigint PRIMARY KEY,
	email text,
	status text,
	balance numeric,
	kyc_level int,
	password_hash text,
	updated_at timestamptz DEFAULT now(),
	tags text[],
	meta jsonb,
	vip boolean,
	ip inet,
	uid uuid,
	born date
);
SELECT activity_monitor.track('public.accounts', kind => 'profile',
		subject_column => 'id', status_column => 'status',
		critical_columns => '{balance,kyc_level}', ignore_columns => '{updated_at}',
		redact_columns => '{password_hash}');
SELECT table_name, kind, subject_column, status_column, critical_columns,
	   ignore_columns, redact_columns FROM activity_monitor.tracked_tables;

-- A view over the columns that do not change between runs, of the captured
-- events (track() writes an admin event too: test/pgtap/audit.sql).
CREATE VIEW ev AS
	SELECT kind, action, table_name, row_key, subject_id, actor_type, actor_id,
		   actor_reason, actor_context, status_from, status_to, critical,
		   old_values, new_values
	FROM activity_monitor.activity WHERE kind <> 'admin' ORDER BY id;

-- insert: the whole new row, ignored column left out, redacted masked
INSERT INTO accounts VALUES (1, 'ana@example.com', 'active', 10.50, 1, 's3cret',
	now(), '{vip,"two words"}', '{"lang": "pt"}', true, '10.1.2.3', 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', '1990-05-17');
-- (the default actor is the session user, whose name depends on the server)
SELECT kind, action, table_name, row_key, subject_id, actor_type,
	   actor_id = session_user AS actor_is_session_user, actor_reason, actor_context,
	   status_from, status_to, critical, old_values, new_values
FROM ev;

-- an UPDATE of only ignored columns, or of nothing, records nothing
UPDATE accounts SET updated_at = now() + interval '1 hour';
UPDATE accounts SET email = email, balance = 10.50;
SELECT count(*) FROM activity_monitor.activity WHERE kind <> 'admin';

-- update: only changed columns; status change and critical column
UPDATE accounts SET status = 'blocked', balance = 20, updated_at = now();
SELECT action, status_from, status_to, critical, old_values, new_values FROM ev OFFSET 1;

-- a non-critical change
UPDATE accounts SET email = 'ana@example.org';
SELECT action, status_from, status_to, critical, old_values, new_values FROM ev OFFSET 2;

-- redacted column: recorded as changed, never its value
UPDATE accounts SET password_hash = 'n3w-s3cret';
SELECT old_values, new_values, position('s3cret' IN old_values::text || new_values::text) AS leaked FROM ev OFFSET 3;

-- actor for one transaction
BEGIN;
SELECT activity_monitor.set_actor('employee', 'emp-42', reason => 'ticket 1881',
	context => '{"ip": "203.0.113.9", "request_id": "r-1"}');
UPDATE accounts SET kyc_level = 2;
COMMIT;
SELECT actor_type, actor_id, actor_reason, actor_context, critical FROM ev OFFSET 4;
-- and gone after the transaction
UPDATE accounts SET kyc_level = 3;
SELECT actor_type, actor_id = current_user AS is_session_user, actor_reason FROM ev OFFSET 5;

-- SET LOCAL works the same way
BEGIN;
SET LOCAL activity_monitor.actor_type = 'user';
SET LOCAL activity_monitor.actor_id = 'u-1001';
UPDATE accounts SET vip = false;
COMMIT;
SELECT actor_type, actor_id FROM ev OFFSET 6;

-- rolled back transactions and savepoints leave nothing
BEGIN;
UPDATE accounts SET kyc_level = 9;
ROLLBACK;
BEGIN;
UPDATE accounts SET tags = '{a}';
SAVEPOINT s;
UPDATE accounts SET tags = '{b}';
ROLLBACK TO SAVEPOINT s;
COMMIT;
SELECT action, old_values, new_values FROM ev OFFSET 7;

-- delete: the whole old row, critical, final status
DELETE FROM accounts;
SELECT action, row_key, status_from, status_to, critical, old_values FROM ev OFFSET 8;

-- truncate: one event per statement
INSERT INTO accounts (id, status) VALUES (2, 'new'), (3, 'new');
TRUNCATE accounts;
SELECT action, row_key, critical, old_values, new_values FROM ev OFFSET 9;

-- session facts
SELECT db_user = current_user AS db_user_ok, application_name, backend_pid = pg_backend_pid() AS pid_ok,
	   txid > 0 AS txid_ok, occurred_at <= now() AS time_ok
FROM activity_monitor.activity ORDER BY id DESC LIMIT 1;
BEGIN;
INSERT INTO accounts (id) VALUES (4);
SELECT txid = txid_current() AS same_txid FROM activity_monitor.activity ORDER BY id DESC LIMIT 1;
COMMIT;

-- db_user is the role's name at the time of the change, also after a rename
CREATE ROLE am_clerk;
GRANT ALL ON accounts TO am_clerk;
SET ROLE am_clerk;
INSERT INTO accounts (id) VALUES (5);
RESET ROLE;
ALTER ROLE am_clerk RENAME TO am_clerk2;
SET ROLE am_clerk2;
INSERT INTO accounts (id) VALUES (6);
RESET ROLE;
-- back and forth between roles: each change names its own
INSERT INTO accounts (id) VALUES (7);
SET ROLE am_clerk2;
INSERT INTO accounts (id) VALUES (8);
RESET ROLE;
SELECT row_key, db_user, pg_typeof(db_user), actor_id = session_user AS actor_is_session_user
FROM activity_monitor.activity WHERE row_key IN ('5', '6', '8') AND action = 'insert' ORDER BY id;
SELECT db_user = current_user AS db_user_ok FROM activity_monitor.activity
WHERE row_key = '7' AND action = 'insert';
DELETE FROM accounts WHERE id IN (5, 6, 7, 8);
REVOKE ALL ON accounts FROM am_clerk2;
DROP ROLE am_clerk2;

-- composite keys, numbers, NULLs, unicode, wide (toasted) values
CREATE TABLE game_rounds (
	provider text, round_id int, stake numeric(12,2), won float8, note text, big text,
	PRIMARY KEY (provider, round_id));
SELECT activity_monitor.track('game_rounds', 'game');
INSERT INTO game_rounds VALUES ('evo,"x"', 7, 1.25, 'NaN', 'olá 世界 🎲', NULL);
INSERT INTO game_rounds VALUES ('p2', 1, NULL, 2.5, NULL, repeat('x', 100000));
UPDATE game_rounds SET note = 'same big' WHERE provider = 'p2';
UPDATE game_rounds SET big = big || 'y' WHERE provider = 'p2';
SELECT action, row_key, subject_id,
	   CASE WHEN length(new_values::text) > 200 THEN length(new_values ->> 'big')::text ELSE new_values::text END AS new_values,
	   CASE WHEN length(old_values::text) > 200 THEN length(old_values ->> 'big')::text ELSE old_values::text END AS old_values
FROM ev WHERE table_name = 'public.game_rounds';

-- UPDATE of the key
UPDATE game_rounds SET round_id = 8 WHERE round_id = 7;
SELECT action, row_key, old_values, new_values FROM ev WHERE table_name = 'public.game_rounds' AND action = 'update' AND old_values ? 'round_id';

-- ALTER TABLE after tracking: the next row sees the new shape
ALTER TABLE game_rounds ADD COLUMN currency char(3) DEFAULT 'EUR';
ALTER TABLE game_rounds DROP COLUMN note;
INSERT INTO game_rounds (provider, round_id, stake) VALUES ('p3', 1, 5);
SELECT new_values FROM activity_monitor.activity WHERE table_name = 'public.game_rounds' ORDER BY id DESC LIMIT 1;

-- multi-row statements and COPY
CREATE TABLE payments (id serial PRIMARY KEY, account_id bigint, amount numeric, status text);
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');
INSERT INTO payments (account_id, amount, status) SELECT g, g * 10, 'pending' FROM generate_series(1, 5) g;
COPY payments (account_id, amount, status) FROM stdin;
6	60	pending
7	70	pending
\.
UPDATE payments SET status = 'completed' WHERE id % 2 = 0;
SELECT action, count(*), count(*) FILTER (WHERE critical) AS critical,
	   string_agg(DISTINCT status_to, ',') AS status_to
FROM activity_monitor.activity WHERE table_name = 'public.payments' GROUP BY action ORDER BY action;

-- critical is chosen: a status transition is critical only into a status
-- of critical_statuses (none by default, as payments above); an insert is no
-- transition; critical columns, deletes and truncates stay critical
CREATE TABLE orders (id int PRIMARY KEY, status text, amount numeric);
SELECT activity_monitor.track('orders', 'payment', status_column => 'status',
		critical_columns => '{amount}', critical_statuses => '{refunded,chargeback}');
SELECT table_name, status_column, critical_columns, critical_statuses
FROM activity_monitor.tracked_tables WHERE table_name = 'public.orders';
INSERT INTO orders VALUES (1, 'pending', 10), (2, 'pending', 20), (3, 'refunded', 30);
UPDATE orders SET status = 'completed' WHERE id = 1;
UPDATE orders SET status = 'refunded' WHERE id = 1;
UPDATE orders SET status = 'chargeback' WHERE id = 2;
UPDATE orders SET status = NULL WHERE id = 2;
UPDATE orders SET amount = 31 WHERE id = 3;
DELETE FROM orders WHERE id = 3;
-- NULL: a transition into any status is critical (0.1.0's behaviour)
SELECT activity_monitor.track('orders', 'payment', status_column => 'status',
		critical_statuses => NULL);
SELECT critical_statuses IS NULL AS every_status FROM activity_monitor.tracked_tables
WHERE table_name = 'public.orders';
UPDATE orders SET status = 'completed' WHERE id = 1;
UPDATE orders SET status = 'pending' WHERE id = 2;
UPDATE orders SET amount = 11 WHERE id = 1;
-- re-tracking without it: back to the default, none
SELECT activity_monitor.track('orders', 'payment', status_column => 'status');
UPDATE orders SET status = 'refunded' WHERE id = 1;
TRUNCATE orders;
SELECT action, status_from, status_to, critical, new_values
FROM activity_monitor.activity WHERE table_name = 'public.orders' ORDER BY id;

-- partitioned tables: events name the root; a cross-partition update is delete + insert
CREATE TABLE user_sessions (id int, account_id int, region text, status text,
	PRIMARY KEY (id, region)) PARTITION BY LIST (region);
CREATE TABLE user_sessions_eu PARTITION OF user_sessions FOR VALUES IN ('eu');
CREATE TABLE user_sessions_us (status text, account_id int, region text NOT NULL, id int NOT NULL);
ALTER TABLE user_sessions ATTACH PARTITION user_sessions_us FOR VALUES IN ('us');
SELECT activity_monitor.track('user_sessions', 'login', subject_column => 'account_id', status_column => 'status');
INSERT INTO user_sessions VALUES (1, 100, 'eu', 'active'), (2, 200, 'us', 'active');
UPDATE user_sessions SET status = 'closed' WHERE id = 2;
UPDATE user_sessions SET region = 'us' WHERE id = 1;
SELECT kind, action, table_name, row_key, subject_id, status_from, status_to, old_values, new_values
FROM ev WHERE table_name = 'public.user_sessions';

-- re-track replaces settings, running sessions see it at once
SELECT activity_monitor.track('payments', 'provider', ignore_columns => '{amount}');
UPDATE payments SET amount = amount + 1;
UPDATE payments SET status = 'refunded' WHERE id = 1;
SELECT kind, action, subject_id, status_to, critical, new_values
FROM activity_monitor.activity WHERE kind = 'provider' ORDER BY id;

-- untrack: no more capture
SELECT activity_monitor.untrack('payments');
UPDATE payments SET status = 'x';
SELECT count(*) FROM activity_monitor.activity WHERE table_name = 'public.payments' AND new_values ->> 'status' = 'x';
SELECT count(*) FROM pg_trigger WHERE tgrelid = 'payments'::regclass AND tgname LIKE 'activity_monitor%';

-- a dropped table stops being tracked
DROP TABLE game_rounds;
SELECT table_name FROM activity_monitor.tracked_tables ORDER BY 1;
