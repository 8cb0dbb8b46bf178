-- The DDL guard (issue 10, "capture cannot be switched off or bypassed
-- silently"): every way a tracked table's owner could switch capture off,
-- bypass it or make a setting miss its column is refused with SQLSTATE
-- 42501 while writes in between are captured; the same DDL by a member of
-- activity_monitor_admin and by a superuser is allowed and recorded as a
-- critical event; column settings follow renames and drops; a redacted
-- column never shows in row_key, old/new values or matched.
BEGIN;
SELECT plan(131);
\ir ../lib/matched.sql
SET LOCAL client_min_messages = warning;

-- Test roles are cluster-wide; the transaction rolls them back.
CREATE ROLE am_g_owner NOLOGIN;
GRANT USAGE, CREATE ON SCHEMA public TO am_g_owner;
CREATE SCHEMA g_owned AUTHORIZATION am_g_owner;

-- wallet: composite key with a redacted column; games: partitioned.
CREATE TABLE wallet (id int, pin text, balance numeric, status text, note text,
					 PRIMARY KEY (id, pin));
ALTER TABLE wallet OWNER TO am_g_owner;
SELECT activity_monitor.track('wallet', 'payment', subject_column => 'id', status_column => 'status',
	critical_columns => '{balance}', redact_columns => '{pin}');
CREATE TABLE games (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE games_1 PARTITION OF games FOR VALUES FROM (0) TO (100);
CREATE TABLE games_2 PARTITION OF games FOR VALUES FROM (100) TO (200);
ALTER TABLE games OWNER TO am_g_owner;
ALTER TABLE games_1 OWNER TO am_g_owner;
ALTER TABLE games_2 OWNER TO am_g_owner;
SELECT activity_monitor.track('games', 'game');
CREATE TABLE g_owned.vault (id int PRIMARY KEY, v text);
ALTER TABLE g_owned.vault OWNER TO am_g_owner;
SELECT activity_monitor.track('g_owned.vault', 'admin');
-- tables the owner may use to attack: a parent to inherit from, a
-- partitioned table to attach wallet to, a filled table to attach to games
CREATE TABLE g_parent (id int);
CREATE TABLE g_other (LIKE wallet) PARTITION BY LIST (id);
CREATE TABLE g_fake (id int PRIMARY KEY, v text);
INSERT INTO g_fake VALUES (150, 'planted');
ALTER TABLE g_parent OWNER TO am_g_owner;
ALTER TABLE g_other OWNER TO am_g_owner;
ALTER TABLE g_fake OWNER TO am_g_owner;
GRANT activity_monitor_reader TO am_g_owner;

CREATE FUNCTION pg_temp.updates(tbl text) RETURNS bigint LANGUAGE sql AS
	$$ SELECT count(*) FROM activity_monitor.activity WHERE table_name = tbl AND action = 'update' $$;
CREATE FUNCTION pg_temp.ddl_events() RETURNS bigint LANGUAGE sql AS
	$$ SELECT count(*) FROM activity_monitor.activity WHERE action = 'ddl' $$;
CREATE TEMP TABLE triggers_before AS
	SELECT tgrelid::regclass::text AS rel, tgname, tgenabled FROM pg_trigger
	WHERE tgname LIKE 'activity_monitor%' ORDER BY 1, 2;
CREATE TEMP TABLE tracked_before AS SELECT * FROM activity_monitor.tracked;
GRANT SELECT ON triggers_before, tracked_before TO PUBLIC;

INSERT INTO wallet VALUES (1, 'secret-pin-1', 100, 'open', 'n');
INSERT INTO games VALUES (1, 'a'), (101, 'b');

-- ---------------------------------------------------------------------------
-- The table's owner: refused, capture goes on
-- ---------------------------------------------------------------------------
SET ROLE am_g_owner;

-- the reproduction: disable, change a balance, re-enable
SELECT throws_ok('ALTER TABLE wallet DISABLE TRIGGER activity_monitor_capture', '42501',
	'permission denied to disable trigger "activity_monitor_capture" of table "public.wallet"',
	'owner: DISABLE TRIGGER activity_monitor_capture is refused');
UPDATE wallet SET balance = 1 WHERE id = 1;
SELECT throws_ok('ALTER TABLE wallet ENABLE TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: ENABLE TRIGGER activity_monitor_capture is refused (a mode change)');
SELECT is(pg_temp.updates('public.wallet'), 1::bigint, 'owner: the balance change in between is captured');

SELECT throws_ok('ALTER TABLE wallet ENABLE REPLICA TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: ENABLE REPLICA TRIGGER is refused');
SELECT throws_ok('ALTER TABLE wallet ENABLE ALWAYS TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: ENABLE ALWAYS TRIGGER is refused');
SELECT throws_ok('ALTER TABLE wallet DISABLE TRIGGER activity_monitor_truncate', '42501', NULL,
	'owner: DISABLE TRIGGER activity_monitor_truncate is refused');
SELECT throws_ok('ALTER TABLE wallet DISABLE TRIGGER ALL', '42501',
	'permission denied to disable all triggers of table "public.wallet"',
	'owner: DISABLE TRIGGER ALL is refused');
SELECT throws_ok('ALTER TABLE wallet DISABLE TRIGGER USER', '42501', NULL,
	'owner: DISABLE TRIGGER USER is refused');
SELECT throws_ok('ALTER TABLE wallet ADD COLUMN x int, DISABLE TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: a guarded subcommand among others is refused');
SELECT throws_ok('ALTER TABLE IF EXISTS wallet DISABLE TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: ALTER TABLE IF EXISTS ... DISABLE TRIGGER is refused');
SELECT lives_ok('ALTER TABLE IF EXISTS no_such_table DISABLE TRIGGER activity_monitor_capture',
	'owner: ALTER TABLE IF EXISTS of a missing table still skips');
SELECT throws_ok('DROP TRIGGER activity_monitor_capture ON wallet', '42501',
	'permission denied to drop trigger "activity_monitor_capture" of table "public.wallet"',
	'owner: DROP TRIGGER activity_monitor_capture is refused');
SELECT throws_ok('DROP TRIGGER IF EXISTS activity_monitor_truncate ON wallet', '42501', NULL,
	'owner: DROP TRIGGER IF EXISTS activity_monitor_truncate is refused');
SELECT throws_ok('ALTER TRIGGER activity_monitor_capture ON wallet RENAME TO quiet', '42501', NULL,
	'owner: ALTER TRIGGER ... RENAME is refused');
SELECT throws_ok('ALTER TRIGGER activity_monitor_capture ON wallet DEPENDS ON EXTENSION plpgsql', '42501', NULL,
	'owner: ALTER TRIGGER ... DEPENDS ON EXTENSION is refused (dropping the extension would drop the trigger)');
-- replacing a capture trigger by CREATE OR REPLACE TRIGGER (review item 1)
CREATE FUNCTION g_noop() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NULL; END$$;
SELECT throws_ok('CREATE OR REPLACE TRIGGER activity_monitor_capture AFTER INSERT OR UPDATE OR DELETE ON wallet
	FOR EACH ROW EXECUTE FUNCTION g_noop()', '42501',
	'permission denied to replace trigger "activity_monitor_capture" of table "public.wallet"',
	'owner: CREATE OR REPLACE TRIGGER of the capture trigger is refused');
SELECT throws_ok('CREATE OR REPLACE TRIGGER activity_monitor_capture AFTER INSERT ON wallet
	FOR EACH ROW EXECUTE FUNCTION activity_monitor.capture()', '42501', NULL,
	'owner: CREATE OR REPLACE TRIGGER changing the capture trigger''s events is refused');
SELECT throws_ok('CREATE OR REPLACE TRIGGER activity_monitor_capture AFTER INSERT OR UPDATE OR DELETE ON games
	FOR EACH ROW EXECUTE FUNCTION g_noop()', '42501', NULL,
	'owner: CREATE OR REPLACE TRIGGER on a tracked partitioned table is refused');
SELECT throws_ok('CREATE OR REPLACE TRIGGER activity_monitor_truncate AFTER TRUNCATE ON games_1
	FOR EACH STATEMENT EXECUTE FUNCTION g_noop()', '42501', NULL,
	'owner: CREATE OR REPLACE TRIGGER of a partition''s TRUNCATE trigger is refused');
SELECT lives_ok('CREATE TRIGGER g_own_trigger AFTER UPDATE ON wallet FOR EACH ROW EXECUTE FUNCTION g_noop()',
	'owner: a trigger of another name is the owner''s business');
UPDATE wallet SET balance = 2 WHERE id = 1;

-- columns the settings name
SELECT throws_ok('ALTER TABLE wallet RENAME COLUMN pin TO p', '42501',
	'permission denied to rename column "pin" of table "public.wallet", named in its activity_monitor settings',
	'owner: RENAME COLUMN of a redacted column is refused');
SELECT throws_ok('ALTER TABLE wallet RENAME status TO st', '42501', NULL,
	'owner: RENAME of the status column is refused');
SELECT throws_ok('ALTER TYPE wallet RENAME ATTRIBUTE pin TO p', '42501', NULL,
	'owner: ALTER TYPE ... RENAME ATTRIBUTE of a redacted column is refused');
SELECT throws_ok('ALTER VIEW wallet RENAME COLUMN pin TO p', '42501', NULL,
	'owner: ALTER VIEW ... RENAME COLUMN of a redacted column is refused');
SELECT throws_ok('ALTER TABLE wallet DROP COLUMN balance', '42501', NULL,
	'owner: DROP COLUMN of a critical column is refused');
SELECT throws_ok('ALTER TABLE wallet DROP COLUMN IF EXISTS status', '42501', NULL,
	'owner: DROP COLUMN IF EXISTS of the status column is refused');
SELECT lives_ok('ALTER TABLE wallet DROP COLUMN IF EXISTS no_such_column',
	'owner: DROP COLUMN IF EXISTS of a column the table lacks skips, as PostgreSQL does');
-- rewriting or erasing every row's value (review item 2)
SELECT throws_ok('ALTER TABLE wallet ALTER COLUMN balance TYPE numeric USING balance + 5000', '42501',
	'permission denied to change the type of column "balance" of table "public.wallet", named in its activity_monitor settings',
	'owner: ALTER COLUMN ... TYPE ... USING of a critical column is refused');
SELECT throws_ok($$ALTER TABLE wallet ALTER COLUMN note TYPE varchar USING 'rewritten'$$, '42501',
	'permission denied to change the type of column "note" of table "public.wallet"',
	'owner: ALTER COLUMN ... TYPE of any column is refused');
SELECT throws_ok('ALTER TABLE wallet DROP COLUMN note', '42501',
	'permission denied to drop column "note" of table "public.wallet"',
	'owner: DROP COLUMN of any column is refused');
SELECT throws_ok('ALTER TABLE games ALTER COLUMN v TYPE varchar', '42501', NULL,
	'owner: ALTER COLUMN ... TYPE of a partitioned tracked table is refused');
SELECT throws_ok('ALTER TABLE wallet RENAME COLUMN note TO remark', '42501',
	'permission denied to rename column "note" of table "public.wallet"',
	'owner: RENAME COLUMN of a column no setting names is refused too (renames can swap values)');
SELECT lives_ok('ALTER TABLE wallet ADD COLUMN extra int',
	'owner: other ALTER TABLE is allowed');

-- the table itself, its name, schema, inheritance
SELECT throws_ok('DROP TABLE wallet', '42501', NULL, 'owner: DROP TABLE of a tracked table is refused');
SELECT throws_ok('ALTER TABLE wallet RENAME TO wallet_old', '42501', NULL,
	'owner: renaming a tracked table is refused (a same-named table would take its writes)');
SELECT throws_ok('ALTER TABLE wallet SET SCHEMA g_owned', '42501', NULL,
	'owner: ALTER TABLE ... SET SCHEMA of a tracked table is refused');
SELECT throws_ok('ALTER TABLE wallet INHERIT g_parent', '42501', NULL,
	'owner: ALTER TABLE ... INHERIT on a tracked table is refused');
SELECT throws_ok('CREATE TABLE g_child () INHERITS (wallet)', '42501', NULL,
	'owner: CREATE TABLE ... INHERITS a tracked table is refused');
-- (allowed since issue 12: it keeps its settings and triggers, see
-- partitions.sql; here wallet's columns no longer match g_other's)
SELECT throws_ok('ALTER TABLE g_other ATTACH PARTITION wallet FOR VALUES IN (1)', '42804', NULL,
	'owner: attaching a tracked table below an untracked one is not the guard''s to refuse');
SELECT throws_ok('DROP SCHEMA g_owned CASCADE', '42501', NULL,
	'owner: DROP SCHEMA holding a tracked table is refused');
SELECT throws_ok('ALTER SCHEMA g_owned RENAME TO g_elsewhere', '42501', NULL,
	'owner: renaming the schema of a tracked table is refused');
SELECT throws_ok('DROP OWNED BY am_g_owner', '42501', NULL,
	'owner: DROP OWNED reaching a tracked table is refused');

-- partitions
SELECT throws_ok('ALTER TABLE games DETACH PARTITION games_2', '42501',
	'permission denied to detach partition "games_2" from table "public.games"',
	'owner: DETACH PARTITION of a tracked table is refused');
SELECT throws_ok('ALTER TABLE games_1 DISABLE TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: disabling the trigger cloned onto a partition is refused');
SELECT throws_ok('ALTER TABLE games_1 DISABLE TRIGGER activity_monitor_truncate', '42501', NULL,
	'owner: disabling the TRUNCATE trigger of a partition is refused');
SELECT throws_ok('ALTER TABLE ONLY games DISABLE TRIGGER activity_monitor_capture', '42501', NULL,
	'owner: ALTER TABLE ONLY of the partitioned table is refused');
SELECT throws_ok('DROP TRIGGER activity_monitor_truncate ON games_2', '42501', NULL,
	'owner: DROP TRIGGER on a partition is refused');
SELECT throws_ok('DROP TABLE games_2', '42501',
	'permission denied to drop table "public.games_2", a partition of a tracked table',
	'owner: DROP TABLE of a partition (its rows gone without an event) is refused');
SELECT throws_ok('ALTER TABLE games ATTACH PARTITION g_fake FOR VALUES FROM (200) TO (300)', '42501', NULL,
	'owner: ATTACH PARTITION of a filled table (rows that were never captured) is refused');
UPDATE games SET v = v || '!';

RESET ROLE;
SELECT results_eq('SELECT tgrelid::regclass::text, tgname, tgenabled FROM pg_trigger
				   WHERE tgname LIKE ''activity_monitor%'' ORDER BY 1, 2',
	'SELECT * FROM triggers_before',
	'after the owner''s attempts every capture trigger is there, enabled as before');
SELECT results_eq('SELECT * FROM activity_monitor.tracked ORDER BY tbl::text',
	'SELECT * FROM tracked_before ORDER BY tbl::text', 'and every setting is unchanged');
SELECT is(pg_temp.updates('public.wallet'), 2::bigint, 'owner: both balance changes were captured');
SELECT is(pg_temp.updates('public.games'), 2::bigint, 'owner: the writes to both partitions were captured');
SELECT results_eq($$SELECT pg_catalog.format_type(atttypid, atttypmod) FROM pg_attribute
				   WHERE attrelid = 'wallet'::regclass AND attname IN ('balance', 'note') ORDER BY attname$$,
	$$VALUES ('numeric'), ('text')$$, 'the owner changed no column type');
SELECT is((SELECT count(*) FROM wallet WHERE balance > 5000 OR note = 'rewritten'), 0::bigint,
	'and rewrote no value');
SELECT is(pg_temp.ddl_events(), 0::bigint, 'nothing refused was recorded as done');
SELECT is(count(*), 1::bigint, 'games_2 is still a partition of games')
FROM pg_inherits WHERE inhrelid = 'games_2'::regclass AND inhparent = 'games'::regclass;

-- ---------------------------------------------------------------------------
-- A member of activity_monitor_admin (who owns the table): allowed, recorded
-- ---------------------------------------------------------------------------
GRANT activity_monitor_admin TO am_g_owner;
SET ROLE am_g_owner;
SELECT lives_ok('ALTER TABLE wallet DISABLE TRIGGER activity_monitor_capture',
	'admin member: DISABLE TRIGGER is allowed');
SELECT lives_ok('ALTER TABLE wallet ENABLE TRIGGER activity_monitor_capture',
	'admin member: ENABLE TRIGGER is allowed');
RESET ROLE;
SELECT is(pg_temp.ddl_events(), 2::bigint, 'admin member: both are recorded');
SELECT results_eq(
	$$SELECT kind, table_name, critical, db_user::text COLLATE "default", new_values ->> 'command', new_values ->> 'operation',
			 new_values ->> 'relation', new_values ->> 'role'
	  FROM activity_monitor.activity WHERE action = 'ddl' ORDER BY id$$,
	$$VALUES ('admin', 'public.wallet', true, session_user::text COLLATE "default", 'ALTER TABLE',
			  'disable trigger "activity_monitor_capture" of table "public.wallet"', 'public.wallet', 'am_g_owner'),
			 ('admin', 'public.wallet', true, session_user::text COLLATE "default", 'ALTER TABLE',
			  'enable trigger "activity_monitor_capture" of table "public.wallet"', 'public.wallet', 'am_g_owner')$$,
	'admin member: a critical admin event per guarded command, naming the table, the command, the session user and the role');
SELECT is((SELECT txid FROM activity_monitor.activity WHERE action = 'ddl' ORDER BY id LIMIT 1),
	txid_current(), 'the event is written in the DDL''s own transaction');

-- settings follow a renamed redacted column, and the value stays masked
SET ROLE am_g_owner;
SELECT lives_ok('ALTER TABLE wallet RENAME COLUMN pin TO pin_code',
	'admin member: RENAME COLUMN of the redacted column is allowed');
RESET ROLE;
SELECT is((SELECT redact_columns FROM activity_monitor.tracked WHERE tbl = 'wallet'::regclass),
	'{pin_code}'::name[], 'the redacted column''s new name is in the settings');
INSERT INTO wallet (id, pin_code, balance, status) VALUES (2, 'secret-pin-2', 5, 'open');
UPDATE wallet SET pin_code = 'secret-pin-3' WHERE id = 2;
SELECT is((SELECT new_values ->> 'pin_code' FROM activity_monitor.activity
		   WHERE table_name = 'public.wallet' AND action = 'insert' ORDER BY id DESC LIMIT 1),
	'[redacted]', 'after the rename an insert logs the value masked');
SELECT is((SELECT old_values ->> 'pin_code' || '/' || (new_values ->> 'pin_code') FROM activity_monitor.activity
		   WHERE table_name = 'public.wallet' AND action = 'update' ORDER BY id DESC LIMIT 1),
	'[redacted]/[redacted]', 'and an update of it logs both values masked');
SELECT is((SELECT row_key FROM activity_monitor.activity
		   WHERE table_name = 'public.wallet' AND action = 'update' ORDER BY id DESC LIMIT 1),
	'["2","[redacted]"]', 'a composite key holding the redacted column is masked in row_key');

-- the status column renamed by the admin, dropped critical column
SET ROLE am_g_owner;
SELECT lives_ok('ALTER TABLE wallet RENAME COLUMN status TO state',
	'admin member: RENAME of the status column is allowed');
SELECT lives_ok('ALTER TABLE wallet DROP COLUMN balance',
	'admin member: DROP COLUMN of a critical column is allowed');
RESET ROLE;
SELECT results_eq(
	$$SELECT subject_column, status_column, critical_columns, redact_columns
	  FROM activity_monitor.tracked WHERE tbl = 'wallet'::regclass$$,
	$$VALUES ('id'::name, 'state'::name, '{}'::name[], '{pin_code}'::name[])$$,
	'settings: the status column renamed, the dropped critical column removed');
UPDATE wallet SET state = 'closed' WHERE id = 2;
SELECT is((SELECT status_from || '>' || status_to FROM activity_monitor.activity
		   WHERE table_name = 'public.wallet' AND action = 'update' ORDER BY id DESC LIMIT 1),
	'open>closed', 'the renamed status column is still the status');

SET ROLE am_g_owner;
SELECT lives_ok('ALTER TABLE games DETACH PARTITION games_2',
	'admin member: DETACH PARTITION is allowed');
RESET ROLE;
SELECT is((SELECT new_values ->> 'operation' FROM activity_monitor.activity
		   WHERE action = 'ddl' AND table_name = 'public.games'),
	'detach partition "games_2" from table "public.games"', 'admin member: the detach is recorded');
SELECT is(pg_temp.ddl_events(), 6::bigint, 'admin member: every allowed guarded command is recorded');

-- ---------------------------------------------------------------------------
-- A superuser: allowed, recorded; track() and untrack() are not DDL events
-- ---------------------------------------------------------------------------
REVOKE activity_monitor_admin FROM am_g_owner;
SELECT lives_ok('ALTER TABLE wallet DISABLE TRIGGER ALL', 'superuser: DISABLE TRIGGER ALL is allowed');
SELECT lives_ok('ALTER TABLE wallet ENABLE TRIGGER ALL', 'superuser: ENABLE TRIGGER ALL is allowed');
SELECT results_eq(
	$$SELECT critical, new_values ->> 'operation', new_values ->> 'role'
	  FROM activity_monitor.activity WHERE action = 'ddl' ORDER BY id DESC LIMIT 2$$,
	$$VALUES (true, 'enable all triggers of table "public.wallet"', current_user::text COLLATE "default"),
			 (true, 'disable all triggers of table "public.wallet"', current_user::text COLLATE "default")$$,
	'superuser: recorded as critical events with the role');
SELECT lives_ok($$SELECT activity_monitor.track('wallet', 'payment', redact_columns => '{pin_code}')$$,
	'track() again replaces the triggers');
SELECT lives_ok($$SELECT activity_monitor.untrack('g_owned.vault')$$, 'untrack() drops them');
SELECT is(pg_temp.ddl_events(), 8::bigint, 'track() and untrack() themselves are not recorded as DDL');
SET ROLE am_g_owner;
SELECT lives_ok('ALTER TABLE g_owned.vault DISABLE TRIGGER ALL',
	'an untracked table is the owner''s own business again');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Redaction everywhere: row_key (one-column key), matched
-- ---------------------------------------------------------------------------
CREATE TABLE tokens (token text PRIMARY KEY, owner_id int, amount numeric);
SELECT activity_monitor.track('tokens', 'login', subject_column => 'owner_id', redact_columns => '{token}');
SELECT activity_monitor.create_rule('g_tokens', '$.new.amount > 0', tables => '{tokens}',
	group_by => '$.row_key', measure => 'sum', measure_path => '$.new.token');
INSERT INTO tokens VALUES ('secret-token-1', 7, 3);
SELECT is((SELECT row_key FROM activity_monitor.activity WHERE table_name = 'public.tokens'),
	'[redacted]', 'a redacted one-column key is masked in row_key');
SELECT is((SELECT pg_temp.match(matched, (SELECT id::text FROM activity_monitor.alert_rule WHERE name = 'g_tokens'))
		   FROM activity_monitor.activity WHERE table_name = 'public.tokens'),
	'{"k": "[redacted]", "v": "[redacted]"}'::jsonb,
	'matched: a group key and a measure read from a redacted column are masked');
SELECT is(count(*), 0::bigint, 'no activity column anywhere holds a secret in clear')
FROM activity_monitor.activity a WHERE a::text LIKE '%secret%';

-- a DETACH by a superuser, then the detached table is no longer guarded
SELECT lives_ok('ALTER TABLE games DETACH PARTITION games_1', 'superuser: DETACH PARTITION is allowed');
SET ROLE am_g_owner;
SELECT lives_ok('DROP TABLE games_2', 'a detached partition is no longer guarded');
RESET ROLE;
SELECT is(pg_temp.ddl_events(), 9::bigint, 'superuser: the detach is recorded');

-- ---------------------------------------------------------------------------
-- Typed tables and drops by CASCADE (review item 6)
-- ---------------------------------------------------------------------------
CREATE TYPE g_acct_t AS (id int, pwh text, note text);
ALTER TYPE g_acct_t OWNER TO am_g_owner;
CREATE TABLE g_typed OF g_acct_t (PRIMARY KEY (id));
ALTER TABLE g_typed OWNER TO am_g_owner;
SELECT activity_monitor.track('g_typed', 'login', redact_columns => '{pwh}');
CREATE DOMAIN g_dom AS text;
ALTER DOMAIN g_dom OWNER TO am_g_owner;
ALTER TABLE tokens ADD COLUMN d g_dom;
SET ROLE am_g_owner;
SELECT throws_ok('ALTER TYPE g_acct_t RENAME ATTRIBUTE pwh TO p CASCADE', '42501',
	'permission denied to rename column "pwh" of table "public.g_typed", named in its activity_monitor settings',
	'type owner: RENAME ATTRIBUTE ... CASCADE of a redacted column of a tracked typed table is refused');
SELECT throws_ok('ALTER TYPE g_acct_t DROP ATTRIBUTE note CASCADE', '42501',
	'permission denied to drop column "note" of table "public.g_typed"',
	'type owner: DROP ATTRIBUTE ... CASCADE reaching a tracked typed table is refused');
SELECT throws_ok('ALTER TYPE g_acct_t ALTER ATTRIBUTE note TYPE varchar CASCADE', '42501', NULL,
	'type owner: ALTER ATTRIBUTE ... TYPE ... CASCADE reaching a tracked typed table is refused');
SELECT throws_ok('DROP TYPE g_acct_t CASCADE', '42501',
	'permission denied to drop tracked table "public.g_typed"',
	'type owner: DROP TYPE ... CASCADE dropping a tracked typed table is refused');
SELECT throws_ok('DROP DOMAIN g_dom CASCADE', '42501',
	'permission denied to drop column "d" of table "public.tokens"',
	'domain owner: DROP DOMAIN ... CASCADE dropping a column of a tracked table (not even its own) is refused');
RESET ROLE;
SELECT results_eq($$SELECT attname::text COLLATE "default" FROM pg_attribute WHERE attrelid = 'g_typed'::regclass AND attnum > 0
				   ORDER BY attnum$$, $$VALUES ('id'), ('pwh'), ('note')$$,
	'the typed table keeps its columns and names');
SELECT is((SELECT redact_columns FROM activity_monitor.tracked WHERE tbl = 'g_typed'::regclass),
	'{pwh}'::name[], 'and its settings');
SELECT is(pg_temp.ddl_events(), 9::bigint, 'nothing refused was recorded');
SELECT lives_ok('DROP DOMAIN g_dom CASCADE', 'superuser: DROP DOMAIN ... CASCADE is allowed');
SELECT lives_ok('DROP TYPE g_acct_t CASCADE', 'superuser: DROP TYPE ... CASCADE is allowed');
SELECT results_eq(
	$$SELECT table_name, new_values ->> 'command', new_values ->> 'operation'
	  FROM activity_monitor.activity WHERE action = 'ddl' AND critical ORDER BY id DESC LIMIT 2$$,
	$$VALUES ('public.g_typed', 'DROP TYPE', 'drop tracked table "public.g_typed"'),
			 ('public.tokens', 'DROP DOMAIN', 'drop column "d" of table "public.tokens"')$$,
	'superuser: both drops are recorded as critical events');
SELECT is((SELECT count(*) FROM activity_monitor.tracked WHERE tbl::oid NOT IN (SELECT oid FROM pg_class)),
	0::bigint, 'no settings row is left for the dropped typed table');
SELECT lives_ok('DROP TABLE tokens', 'superuser: DROP TABLE of a tracked table');
SELECT is(pg_temp.ddl_events(), 12::bigint, 'recorded once, by the guard of the named table');

-- a generated column computed from a redacted one is redacted (review item 10)
SELECT lives_ok($$ALTER TABLE wallet ADD COLUMN pin_copy text GENERATED ALWAYS AS ('x' || pin_code) STORED$$,
	'a generated column copying the redacted column can be added');
INSERT INTO wallet (id, pin_code, state) VALUES (9, 'secret-pin-9', 'open');
UPDATE wallet SET pin_code = 'secret-pin-10' WHERE id = 9;
SELECT is((SELECT (new_values ->> 'pin_copy') || '/' || (old_values ->> 'pin_copy') FROM activity_monitor.activity
		   WHERE table_name = 'public.wallet' AND action = 'update' ORDER BY id DESC LIMIT 1),
	'[redacted]/[redacted]', 'the generated copy of a redacted column is masked');
SELECT is(count(*), 0::bigint, 'no activity row holds the secret through the generated column')
FROM activity_monitor.activity a WHERE a::text LIKE '%secret-pin-%';

-- any column renamed, the primary key dropped (an attacker's review,
-- 2026-12-06): three renames swap two columns' values without a row event,
-- a rename takes a column away from the rules that read it by name, and
-- without its primary key an update's event names no row (row_key NULL)
CREATE TABLE g_ledger (id int PRIMARY KEY, amount numeric, fee numeric);
ALTER TABLE g_ledger OWNER TO am_g_owner;
SELECT activity_monitor.track('g_ledger', 'payment');
INSERT INTO g_ledger VALUES (1, 100, 1);
-- and the types of its values: an enum's value renamed gives every stored
-- value of it another meaning (swap "approved" and "rejected"), an
-- attribute of a composite type dropped or renamed changes what every
-- stored value holds; directly, through a domain, an array or a composite
CREATE TYPE g_st AS ENUM ('pending', 'approved', 'rejected');
CREATE DOMAIN g_st_d AS g_st;
CREATE TYPE g_addr AS (city text, zip text, st g_st);
CREATE TYPE g_free AS ENUM ('a', 'b');
ALTER TYPE g_st OWNER TO am_g_owner;
ALTER DOMAIN g_st_d OWNER TO am_g_owner;
ALTER TYPE g_addr OWNER TO am_g_owner;
ALTER TYPE g_free OWNER TO am_g_owner;
CREATE TABLE g_pay (id int PRIMARY KEY, st g_st_d);
CREATE TABLE g_cust (id int PRIMARY KEY, addrs g_addr[]);
ALTER TABLE g_pay OWNER TO am_g_owner;
ALTER TABLE g_cust OWNER TO am_g_owner;
SELECT activity_monitor.track('g_pay', 'payment', status_column => 'st');
SELECT activity_monitor.track('g_cust', 'profile');
-- a table's row type held in a tracked table's column
CREATE TABLE g_home (id int, city text);
ALTER TABLE g_home OWNER TO am_g_owner;
CREATE TABLE g_cust2 (id int PRIMARY KEY, home g_home);
SELECT activity_monitor.track('g_cust2', 'profile');
INSERT INTO g_cust2 VALUES (1, ROW(1, 'Sliema'));
-- through an inheritance parent, a domain dropped with CASCADE, a tracked
-- partition's key dropped at its untracked parent (an attacker's review of
-- the above, helper-42)
CREATE TABLE g_ip (a int, b int);
CREATE TABLE g_ic () INHERITS (g_ip);
CREATE DOMAIN g_dd AS int;
CREATE TABLE g_hx (a int, b g_dd);
CREATE TABLE g_pa (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE g_pa1 PARTITION OF g_pa FOR VALUES FROM (0) TO (100);
ALTER TABLE g_ip OWNER TO am_g_owner;
ALTER TABLE g_ic OWNER TO am_g_owner;
ALTER DOMAIN g_dd OWNER TO am_g_owner;
ALTER TABLE g_hx OWNER TO am_g_owner;
ALTER TABLE g_pa OWNER TO am_g_owner;
ALTER TABLE g_pa1 OWNER TO am_g_owner;
CREATE TABLE g_tb (id int PRIMARY KEY, c1 g_ic, c2 g_hx);
SELECT activity_monitor.track('g_tb', 'payment');
SELECT activity_monitor.track('g_pa1', 'payment');
INSERT INTO g_tb VALUES (1, ROW(1, 2), ROW(1, 2));
CREATE TABLE g_ip2 (id int PRIMARY KEY);
CREATE TABLE g_ic2 (id int PRIMARY KEY) INHERITS (g_ip2);
ALTER TABLE g_ip2 OWNER TO am_g_owner;
ALTER TABLE g_ic2 OWNER TO am_g_owner;
SELECT activity_monitor.track('g_ic2', 'profile');
INSERT INTO g_pay VALUES (1, 'rejected');
INSERT INTO g_cust VALUES (1, ARRAY[ROW('Valletta', 'VLT', 'approved')::g_addr]);
SET ROLE am_g_owner;
SELECT throws_ok($$ALTER TYPE g_st RENAME VALUE 'rejected' TO 'tmp'$$, '42501',
	'permission denied to rename value "rejected" of type "g_st", held in a column of table "public.g_pay"',
	'owner: ALTER TYPE ... RENAME VALUE of an enum a tracked table holds (through a domain) is refused');
SELECT throws_ok('ALTER TYPE g_addr RENAME ATTRIBUTE city TO town', '42501',
	'permission denied to rename attribute "city" of type "g_addr", held in a column of table "public.g_cust"',
	'owner: ALTER TYPE ... RENAME ATTRIBUTE of a composite a tracked table holds (in an array) is refused');
SELECT throws_ok('ALTER TYPE g_addr DROP ATTRIBUTE zip', '42501',
	'permission denied to drop attribute "zip" of type "g_addr", held in a column of table "public.g_cust"',
	'owner: ALTER TYPE ... DROP ATTRIBUTE of such a composite is refused');
SELECT lives_ok('ALTER TYPE g_addr DROP ATTRIBUTE IF EXISTS no_such_attribute',
	'owner: ALTER TYPE ... DROP ATTRIBUTE IF EXISTS of an attribute the composite lacks skips');
SELECT throws_ok('ALTER TABLE g_home RENAME COLUMN city TO town', '42501',
	'permission denied to rename attribute "city" of type "g_home", held in a column of table "public.g_cust2"',
	'owner: RENAME COLUMN of an untracked table whose row type a tracked table holds is refused');
SELECT throws_ok('ALTER TABLE g_home DROP COLUMN city', '42501', NULL,
	'owner: DROP COLUMN of such a table is refused');
SELECT throws_ok('ALTER TABLE g_ip RENAME COLUMN a TO t', '42501',
	'permission denied to rename attribute "a" of type "g_ic", held in a column of table "public.g_tb"',
	'owner: RENAME COLUMN of a parent whose child''s row type a tracked table holds is refused');
SELECT throws_ok('DROP DOMAIN g_dd CASCADE', '42501',
	'permission denied to drop attribute "b" of type "g_hx", held in a column of table "public.g_tb"',
	'owner: DROP DOMAIN ... CASCADE dropping a column of a row type a tracked table holds is refused');
SELECT throws_ok('ALTER TABLE g_pa DROP CONSTRAINT g_pa_pkey', '42501',
	'permission denied to drop the primary key "g_pa_pkey" of table "public.g_pa"',
	'owner: dropping the key of an untracked parent, a tracked partition''s too, is refused');
SELECT lives_ok('ALTER TABLE g_ip2 DROP CONSTRAINT g_ip2_pkey',
	'owner: dropping the key of an untracked inheritance parent is allowed (a child keeps its own; helper-43)');
SELECT lives_ok($$ALTER TYPE g_free RENAME VALUE 'a' TO 'c'$$,
	'owner: RENAME VALUE of an enum no tracked table holds is allowed');
SELECT lives_ok($$ALTER TYPE g_st ADD VALUE 'refunded'$$, 'owner: ADD VALUE is allowed');
SELECT throws_ok('ALTER TABLE g_ledger RENAME COLUMN amount TO tmp', '42501',
	'permission denied to rename column "amount" of table "public.g_ledger"',
	'owner: RENAME COLUMN of a column no setting names is refused');
SELECT throws_ok('ALTER TABLE g_ledger RENAME fee TO amount_fee', '42501', NULL,
	'owner: RENAME (without COLUMN) of a column is refused');
SELECT throws_ok('ALTER TABLE g_ledger DROP CONSTRAINT g_ledger_pkey', '42501',
	'permission denied to drop the primary key "g_ledger_pkey" of table "public.g_ledger"',
	'owner: dropping the primary key is refused');
SELECT lives_ok('ALTER TABLE g_ledger ADD COLUMN memo text', 'owner: ADD COLUMN is allowed');
SELECT lives_ok('ALTER TABLE g_ledger RENAME CONSTRAINT g_ledger_pkey TO g_ledger_key',
	'owner: renaming the key''s constraint is allowed');
RESET ROLE;
SELECT results_eq('SELECT amount, fee FROM g_ledger', $$VALUES (100::numeric, 1::numeric)$$,
	'the owner moved no value to another column');
SELECT is(count(*), 1::bigint, 'and the primary key is there')
FROM pg_constraint WHERE conrelid = 'g_ledger'::regclass AND contype = 'p';
SELECT results_eq($$SELECT st::text, (SELECT a[1]::text FROM g_cust, LATERAL (SELECT addrs) x(a)) FROM g_pay$$,
	$$VALUES ('rejected', '(Valletta,VLT,approved)')$$, 'and every stored value reads as before');
SELECT is((SELECT to_jsonb(t) FROM g_tb t), '{"id": 1, "c1": {"a": 1, "b": 2}, "c2": {"a": 1, "b": 2}}'::jsonb,
	'and so does every value of the row types');
GRANT activity_monitor_admin TO am_g_owner;
SET ROLE am_g_owner;
SELECT lives_ok('ALTER TABLE g_ledger RENAME COLUMN fee TO charge', 'admin member: RENAME COLUMN is allowed');
SELECT lives_ok('ALTER TABLE g_ledger DROP CONSTRAINT g_ledger_key', 'admin member: dropping the primary key is allowed');
SELECT lives_ok($$ALTER TYPE g_st RENAME VALUE 'rejected' TO 'declined'$$, 'admin member: RENAME VALUE is allowed');
SELECT lives_ok('ALTER TYPE g_addr DROP ATTRIBUTE zip', 'admin member: DROP ATTRIBUTE is allowed');
RESET ROLE;
SELECT results_eq(
	$$SELECT table_name, new_values ->> 'operation' FROM activity_monitor.activity
	  WHERE action = 'ddl' AND table_name IN ('public.g_pay', 'public.g_cust') ORDER BY 1, 2$$,
	$$VALUES ('public.g_cust', 'drop attribute "zip" of type "g_addr", held in a column of table "public.g_cust"'),
			 ('public.g_cust', 'rename value "rejected" of type "g_st", held in a column of table "public.g_cust"'),
			 ('public.g_pay', 'rename value "rejected" of type "g_st", held in a column of table "public.g_pay"')$$,
	'admin member: both are recorded, against each table that holds the values (g_cust through g_addr)');
SELECT results_eq(
	$$SELECT new_values ->> 'operation', critical FROM activity_monitor.activity
	  WHERE action = 'ddl' AND table_name = 'public.g_ledger' ORDER BY id$$,
	$$VALUES ('rename column "fee" of table "public.g_ledger"', true),
			 ('drop the primary key "g_ledger_key" of table "public.g_ledger"', true)$$,
	'admin member: both are recorded as critical admin events');

SELECT * FROM finish();
ROLLBACK;
