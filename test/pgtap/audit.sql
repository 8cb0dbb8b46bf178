-- The audit of the auditors (issue 11): every change to the monitoring is an
-- admin event written in the transaction that makes it: kind admin, the
-- function as action, the extension object as table_name, the declared
-- actor, the session user as db_user, the arguments as new_values, critical;
-- shown by admin_actions and critical_changes.  A rolled-back or failed
-- change leaves none, and no role but the extension's functions can write
-- one.
BEGIN;
SELECT plan(42);
SET LOCAL client_min_messages = warning;

CREATE ROLE am_a_admin NOLOGIN IN ROLE activity_monitor_admin;
CREATE ROLE am_a_responder NOLOGIN IN ROLE activity_monitor_responder;
CREATE ROLE am_a_reader NOLOGIN IN ROLE activity_monitor_reader;
CREATE TABLE wallet (id int PRIMARY KEY, owner text, status text);
GRANT SELECT ON wallet TO am_a_admin;

-- the latest admin event, as admin_actions shows it
CREATE FUNCTION pg_temp.last_admin() RETURNS activity_monitor.admin_actions LANGUAGE sql AS
	$$ SELECT * FROM activity_monitor.admin_actions WHERE kind = 'admin' ORDER BY id DESC LIMIT 1 $$;
CREATE FUNCTION pg_temp.admin_events() RETURNS bigint LANGUAGE sql AS
	$$ SELECT count(*) FROM activity_monitor.activity WHERE kind = 'admin' $$;
GRANT EXECUTE ON FUNCTION pg_temp.last_admin(), pg_temp.admin_events() TO PUBLIC;

SELECT is(pg_temp.admin_events(), 0::bigint, 'CREATE EXTENSION records no admin event');

-- ---------------------------------------------------------------------------
-- A rolled-back and a failed change leave nothing
-- ---------------------------------------------------------------------------
SAVEPOINT s;
SELECT activity_monitor.track('wallet', 'payment');
ROLLBACK TO SAVEPOINT s;
SELECT is(pg_temp.admin_events(), 0::bigint, 'a rolled-back track() leaves no event');
SELECT throws_ok($$SELECT activity_monitor.drop_rule('no such rule')$$, '42704');
SELECT throws_ok($$SELECT activity_monitor.configure(premake => 0)$$, '22023');
SELECT is(pg_temp.admin_events(), 0::bigint, 'a failed drop_rule() or configure() leaves no event');

-- ---------------------------------------------------------------------------
-- Each change, by an admin with a declared actor
-- ---------------------------------------------------------------------------
SET ROLE am_a_admin;
SELECT activity_monitor.set_actor('employee', 'emp-7', 'ticket 42', '{"section": "monitoring"}');

SELECT activity_monitor.track('wallet', 'payment', subject_column => 'owner', status_column => 'status');
SELECT results_eq($$SELECT action, table_name, row_key, employee_id, reason, actor_type, db_user::text,
						   critical, old_values, new_values->>'tbl', new_values->>'kind',
						   new_values->>'status_column', new_values->>'role'
					FROM pg_temp.last_admin()$$,
	$$VALUES ('track', 'activity_monitor.tracked', 'public.wallet', 'emp-7', 'ticket 42', 'employee',
			  session_user::text COLLATE "default", true, NULL::jsonb, 'public.wallet', 'payment', 'status', 'am_a_admin')$$,
	'track(): admin event with the declared actor, the session user and the role that acted');
SELECT is((SELECT actor_context FROM pg_temp.last_admin()), '{"section": "monitoring"}'::jsonb,
	'the declared context is kept');

SELECT activity_monitor.track('wallet', 'payment', subject_column => 'owner');
SELECT results_eq($$SELECT action, old_values->>'status_column', new_values ? 'status_column',
						   new_values->>'status_column' FROM pg_temp.last_admin()$$,
	$$VALUES ('track', 'status', true, NULL::text)$$,
	'track() again: old_values hold the settings it replaced');

SELECT activity_monitor.configure(premake => 3);
SELECT results_eq($$SELECT action, table_name, (old_values->>'premake')::int, (new_values->>'premake')::int,
						   new_values ? 'retention' FROM pg_temp.last_admin()$$,
	$$VALUES ('configure', 'activity_monitor.config', 2, 3, true)$$,
	'configure(): the previous settings and every argument');

SELECT activity_monitor.maintain();
SELECT results_eq($$SELECT action, table_name, new_values ? 'now', new_values ? 'created'
					FROM pg_temp.last_admin()$$,
	$$VALUES ('maintain', 'activity_monitor.activity', true, true)$$,
	'maintain(): its "now" and what it did');

SELECT activity_monitor.create_rule('audit_big', '$.new.amount > 10', severity => 'critical');
SELECT results_eq($$SELECT action, table_name, row_key, new_values->>'predicate', new_values->>'severity',
						   (new_values->>'id')::bigint
					FROM pg_temp.last_admin()$$,
	$$SELECT 'create_rule', 'activity_monitor.alert_rule', 'audit_big', '($."new"."amount" > 10)',
			 'critical', id FROM activity_monitor.rules WHERE name = 'audit_big'$$,
	'create_rule(): its definition and id');

SELECT activity_monitor.set_rule_enabled('audit_big', false);
SELECT results_eq($$SELECT action, row_key, old_values, new_values FROM pg_temp.last_admin()$$,
	$$VALUES ('set_rule_enabled', 'audit_big', '{"enabled": true}'::jsonb,
			  '{"name": "audit_big", "enabled": false, "role": "am_a_admin"}'::jsonb)$$,
	'set_rule_enabled(): before and after');

SELECT activity_monitor.set_rule_full_payload('audit_big', true);
SELECT results_eq($$SELECT action, old_values, new_values->'full_payload' FROM pg_temp.last_admin()$$,
	$$VALUES ('set_rule_full_payload', '{"full_payload": false}'::jsonb, 'true'::jsonb)$$,
	'set_rule_full_payload(): before and after');

SELECT activity_monitor.drop_rule('audit_big');
SELECT results_eq($$SELECT action, row_key, old_values->>'predicate', old_values->>'enabled'
					FROM pg_temp.last_admin()$$,
	$$VALUES ('drop_rule', 'audit_big', '($."new"."amount" > 10)', 'false')$$,
	'drop_rule(): the rule it dropped, whole');

SELECT activity_monitor.start_worker();
SELECT results_eq($$SELECT action, table_name, row_key FROM pg_temp.last_admin()$$,
	$$VALUES ('start_worker', 'activity_monitor.worker_state', current_database()::text COLLATE "default")$$,
	'start_worker()');

-- capture-trigger DDL an admin may run (the guard allows and records it)
RESET ROLE;
GRANT CREATE ON SCHEMA public TO am_a_admin;
ALTER TABLE wallet OWNER TO am_a_admin;
SET ROLE am_a_admin;
ALTER TABLE wallet DISABLE TRIGGER activity_monitor_capture;
SELECT results_eq($$SELECT kind, action, table_name, employee_id, critical, new_values->>'command'
					FROM pg_temp.last_admin()$$,
	$$VALUES ('admin', 'ddl', 'public.wallet', 'emp-7', true, 'ALTER TABLE')$$,
	'DISABLE TRIGGER of a capture trigger by an admin: an admin event');
ALTER TABLE wallet ENABLE TRIGGER activity_monitor_capture;
ALTER TABLE wallet RENAME COLUMN owner TO holder;
SELECT results_eq($$SELECT action, new_values->>'operation' FROM pg_temp.last_admin()$$,
	$$VALUES ('ddl', 'rename column "owner" of table "public.wallet", named in its activity_monitor settings')$$,
	'RENAME of a configured column: an admin event');

SELECT activity_monitor.untrack('wallet');
SELECT results_eq($$SELECT action, row_key, old_values->>'subject_column', new_values->>'tbl'
					FROM pg_temp.last_admin()$$,
	$$VALUES ('untrack', 'public.wallet', 'holder', 'public.wallet')$$,
	'untrack(): the settings it removed');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- Alerts: acknowledge and resolve, by a responder without a declared actor
-- ---------------------------------------------------------------------------
INSERT INTO activity_monitor.alerts (id, rule_name, severity, channel, event_id, event_ids,
									 occurred_at, kind, action, table_name)
VALUES (900001, 'r', 'warning', 'c', 1, '{1}', now(), 'payment', 'insert', 'public.wallet');
SET ROLE am_a_responder;
RESET activity_monitor.actor_type;
RESET activity_monitor.actor_id;
RESET activity_monitor.actor_reason;
RESET activity_monitor.actor_context;
SELECT activity_monitor.acknowledge(900001, 'looking');
SELECT results_eq($$SELECT action, table_name, row_key, old_values, new_values->>'status',
						   new_values->>'note', actor_type, db_user::text, new_values->>'role'
					FROM pg_temp.last_admin()$$,
	$$VALUES ('acknowledge', 'activity_monitor.alerts', '900001', '{"status": "open"}'::jsonb,
			  'acknowledged', 'looking', 'service', session_user::text COLLATE "default", 'am_a_responder')$$,
	'acknowledge(): the alert, its previous status and the note');
SELECT activity_monitor.resolve(900001);
SELECT results_eq($$SELECT action, old_values, new_values->>'status' FROM pg_temp.last_admin()$$,
	$$VALUES ('resolve', '{"status": "acknowledged"}'::jsonb, 'resolved')$$,
	'resolve()');
SELECT throws_ok($$SELECT activity_monitor.resolve(900001)$$, '55000');
RESET ROLE;

-- ---------------------------------------------------------------------------
-- What the views show, how many, and that nobody can forge one
-- ---------------------------------------------------------------------------
SELECT results_eq($$SELECT action FROM activity_monitor.admin_actions WHERE kind = 'admin' ORDER BY id$$,
	$$VALUES ('track'), ('track'), ('configure'), ('maintain'), ('create_rule'), ('set_rule_enabled'),
			 ('set_rule_full_payload'), ('drop_rule'), ('start_worker'), ('ddl'), ('ddl'), ('ddl'),
			 ('untrack'), ('acknowledge'), ('resolve')$$,
	'admin_actions: one event per change, in order');
SELECT is((SELECT count(*) FROM activity_monitor.critical_changes WHERE kind = 'admin'), 15::bigint,
	'critical_changes shows them all');
SELECT is((SELECT count(*) FROM activity_monitor.activity
		   WHERE kind = 'admin' AND (NOT critical OR txid <> txid_current() OR new_values IS NULL
									 AND action <> 'start_worker')),
	0::bigint, 'every admin event is critical, has its arguments and is in the changing transaction');

SET ROLE am_a_admin;
SELECT throws_ok($$SELECT activity_monitor._record_admin('activity_monitor.tracked', 'track', 'x', NULL, NULL)$$,
	'42501', NULL, 'an admin cannot write an admin event of its own');
RESET ROLE;
SET ROLE am_a_reader;
SELECT throws_ok($$SELECT activity_monitor._record_admin('x', 'y', NULL, NULL, NULL)$$,
	'42501', NULL, 'nor can a reader');
SELECT is((SELECT count(*) FROM activity_monitor.admin_actions WHERE kind = 'admin'), 15::bigint,
	'a reader sees the admin events');
RESET ROLE;
SELECT ok(NOT has_function_privilege('public', 'activity_monitor._record_admin(text, text, text, jsonb, jsonb)',
									 'EXECUTE'), 'PUBLIC cannot execute _record_admin');

-- ---------------------------------------------------------------------------
-- Rules apply to admin events: a rule on kind admin fires when a rule is
-- disabled; a rule limited to tables never matches one
-- ---------------------------------------------------------------------------
SELECT activity_monitor.create_rule('rule_switched_off',
	'$.action == "set_rule_enabled" && $.new.enabled == false', kinds => '{admin}');
SELECT activity_monitor.create_rule('on_wallet_only', '$.kind == "admin"', tables => '{wallet}');
SELECT activity_monitor.create_rule('victim', '$.new.x > 1');
SELECT activity_monitor.set_rule_enabled('victim', false);
SELECT is((SELECT matched ? (SELECT id::text FROM activity_monitor.rules WHERE name = 'rule_switched_off')
		   FROM pg_temp.last_admin() l JOIN activity_monitor.activity a USING (id)), true,
	'a rule on kind admin matches the event of a rule switched off');
SELECT is((SELECT count(*) FROM activity_monitor.activity
		   WHERE kind = 'admin' AND matched ? (SELECT id::text FROM activity_monitor.rules
											   WHERE name = 'on_wallet_only')), 0::bigint,
	'a rule limited to tables matches no admin event');
-- a rule for every kind does not see them: acknowledging must not fire it
SELECT activity_monitor.create_rule('every_critical', '$.critical == true');
SELECT activity_monitor.set_rule_enabled('victim', true);
SELECT is((SELECT count(*) FROM activity_monitor.activity
		   WHERE kind = 'admin' AND matched ? (SELECT id::text FROM activity_monitor.rules
											   WHERE name = 'every_critical')), 0::bigint,
	'a rule for every kind (kinds NULL) matches no admin event');
-- the watchdog switched off sees its own switching off, and its own drop
SELECT activity_monitor.set_rule_enabled('rule_switched_off', false);
SELECT is((SELECT matched ? (SELECT id::text FROM activity_monitor.rules WHERE name = 'rule_switched_off')
		   FROM pg_temp.last_admin() l JOIN activity_monitor.activity a USING (id)), true,
	'the rule switched off matches the event of its own switching off');
SELECT activity_monitor.set_rule_enabled('rule_switched_off', true);
SELECT activity_monitor.create_rule('rule_dropped', '$.action == "drop_rule"', kinds => '{admin}');
SELECT id AS dropped_id FROM activity_monitor.rules WHERE name = 'rule_dropped' \gset
SELECT activity_monitor.drop_rule('rule_dropped');
SELECT is((SELECT matched ? :'dropped_id' FROM pg_temp.last_admin() l JOIN activity_monitor.activity a USING (id)),
	true, 'a rule watching for drops matches its own drop');
SELECT throws_ok($$SELECT activity_monitor.create_rule('nul', '$.a == 1', tables => '{NULL}')$$, '22004',
	'kinds and tables must not contain null');

-- a read-only transaction cannot change the monitoring (it could not record it)
SAVEPOINT ro;
SET LOCAL transaction_read_only = on;
SELECT throws_ok($$SELECT activity_monitor.start_worker()$$, '25006',
	'cannot change the monitoring in a read-only transaction');
ROLLBACK TO SAVEPOINT ro;

-- ---------------------------------------------------------------------------
-- The index admin_actions reads: its predicate is the view's WHERE
-- ---------------------------------------------------------------------------
SELECT is((SELECT count(*) FROM pg_index i
		   JOIN pg_partition_tree('activity_monitor.activity') t ON t.relid = i.indrelid AND t.isleaf
		   WHERE pg_get_expr(i.indpred, i.indrelid)
				 = '((actor_type = ''employee''::text) OR (kind = ''admin''::text))'),
	(SELECT count(*) FROM pg_partition_tree('activity_monitor.activity') WHERE isleaf),
	'every partition has the index of admin_actions');
SELECT ok((SELECT count(*) FROM pg_partition_tree('activity_monitor.activity') WHERE isleaf) > 1,
	'(there are partitions)');

-- and the remaining checks of each action, by name
SELECT is((SELECT count(DISTINCT action) FROM activity_monitor.activity WHERE kind = 'admin'), 12::bigint,
	'twelve kinds of change recorded');
SELECT is((SELECT count(*) FROM activity_monitor.activity WHERE kind = 'admin' AND action = 'ddl'
		   AND table_name = 'public.wallet' AND row_key = 'public.wallet'), 3::bigint,
	'the three DDL events name the tracked table');
SELECT is((SELECT count(*) FROM activity_monitor.activity WHERE kind = 'admin' AND action <> 'ddl'
		   AND table_name NOT LIKE 'activity_monitor.%'), 0::bigint,
	'the other events name an object of the extension');
SELECT is((SELECT count(*) FROM activity_monitor.activity WHERE kind = 'admin'
		   AND db_user <> session_user::text), 0::bigint, 'db_user is the session user');
SELECT is((SELECT count(*) FROM activity_monitor.activity WHERE kind = 'admin'
		   AND actor_type = 'employee' AND actor_id = 'emp-7' AND actor_reason = 'ticket 42'), 13::bigint,
	'the thirteen changes made under set_actor carry the actor');

SELECT * FROM finish();
ROLLBACK;
