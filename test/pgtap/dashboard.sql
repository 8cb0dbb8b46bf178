-- The dashboard view and the rollup behind it.
BEGIN;
SELECT plan(12);
SET LOCAL client_min_messages = warning;

CREATE TABLE sessions (id serial PRIMARY KEY, account_id int, status text, ip text);
CREATE TABLE payments (id serial PRIMARY KEY, account_id int, amount numeric, status text);
SELECT activity_monitor.track('sessions', 'login', subject_column => 'account_id', status_column => 'status');
SELECT activity_monitor.track('payments', 'payment', subject_column => 'account_id', status_column => 'status');

INSERT INTO sessions (account_id, status) SELECT g, 'active' FROM generate_series(1, 5) g;
INSERT INTO sessions (account_id, status) VALUES (9, 'failed');
UPDATE sessions SET status = 'closed' WHERE id = 1;
DELETE FROM sessions WHERE id = 2;
SELECT activity_monitor.set_actor('employee', 'emp-7', reason => 'refund');
INSERT INTO payments (account_id, amount, status) VALUES (3, 10, 'pending');
UPDATE payments SET status = 'refunded';
SELECT activity_monitor.set_actor('employee', 'emp-8');
UPDATE payments SET amount = 11;
SELECT activity_monitor.set_actor('user', 'u-1');
UPDATE payments SET amount = 12;

SELECT is(activity_monitor._rollup(now() - interval '1 hour') > 0, true, 'the rollup counts the minutes');
SELECT is((SELECT sum(events) FROM activity_monitor.activity_minute)::int,
		  (SELECT count(*) FROM activity_monitor.activity)::int, 'every event is in the rollup');
SELECT is(_rollup, 0::bigint, 'a rollup of an empty range counts nothing')
FROM activity_monitor._rollup(now() + interval '1 hour');

SELECT is(active_sessions, 3::numeric, 'active sessions: 5 started, 1 closed, 1 deleted, 1 failed attempt not counted')
FROM activity_monitor.dashboard;
SELECT is((SELECT e FROM jsonb_array_elements(events) e WHERE e ->> 'kind' = 'login' AND e ->> 'actor_type' = 'service'),
		  '{"kind": "login", "actor_type": "service", "last_5m": 8, "last_hour": 8, "last_day": 8}'::jsonb,
		  'events by kind and actor type over 5 minutes, an hour and a day')
FROM activity_monitor.dashboard;
SELECT is(busiest_employees, '[{"employee_id": "emp-7", "actions": 2}, {"employee_id": "emp-8", "actions": 1}]'::jsonb,
		  'busiest employees, most actions first')
FROM activity_monitor.dashboard;
SELECT is(jsonb_array_length(latest_critical),
		  (SELECT count(*)::int FROM activity_monitor.activity WHERE critical),
		  'latest critical changes (at most 10)')
FROM activity_monitor.dashboard;

INSERT INTO activity_monitor.alerts (rule_name, severity, channel, event_id, event_ids, occurred_at, kind, action, table_name, status)
VALUES ('r', 'critical', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'open'),
	   ('r', 'warning', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'acknowledged'),
	   ('r', 'critical', 'c', 1, '{1}', now(), 'login', 'insert', 'public.sessions', 'resolved');
SELECT is(open_alerts, '{"critical": 1, "warning": 1, "info": 0}'::jsonb, 'open alerts by severity')
FROM activity_monitor.dashboard;

-- The counts are computed once per rollup and read by every dashboard
-- query; without a rollup's row the dashboard computes the same itself.
SELECT row(events, active_sessions, busiest_employees)::text AS counts_live FROM activity_monitor.dashboard \gset
SELECT is((SELECT row(events, active_sessions, busiest_employees)::text FROM activity_monitor.dashboard_counts),
		  :'counts_live', 'the rollup stored the dashboard''s counts');
UPDATE activity_monitor.dashboard_counts SET events = '[{"kind": "marker"}]';
SELECT is(events, '[{"kind": "marker"}]'::jsonb, 'the dashboard reads the counts the rollup stored')
FROM activity_monitor.dashboard;
DELETE FROM activity_monitor.dashboard_counts;
SELECT is(row(events, active_sessions, busiest_employees)::text, :'counts_live',
		  'without a stored row, the dashboard computes the same counts')
FROM activity_monitor.dashboard;

SELECT ok(has_table_privilege('activity_monitor_reader', 'activity_monitor.dashboard', 'SELECT'),
		  'the reader role can read the dashboard');

SELECT * FROM finish();
ROLLBACK;
