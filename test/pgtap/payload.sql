-- alert_payload(alert, full) in C (src/notify.c) against the PL/pgSQL it
-- replaced in 0.2.0 (kept here verbatim as test_ref.payload, with the
-- _cut() it called as test_ref.cut): the same text for every alert below,
-- long and multibyte free text, NULLs, numbers long, tiny, NaN and
-- infinite, in a session whose TimeZone is not UTC; each cut step (500,
-- 125, 31 and 7 characters) is reached, the last two through fields that
-- are never cut (kind: a row made by hand, as the worker's never are).  Then the worker's
-- wrapper alert_payload(alert), by the rule's full_payload
-- (test/shell/notify.sh compares the worker's NOTIFY, built in C by its
-- rule cache, with it).
BEGIN;
SELECT plan(9);
SET LOCAL client_min_messages = warning;
SET LOCAL TimeZone = 'America/St_Johns';

CREATE SCHEMA test_ref;
CREATE FUNCTION test_ref.cut(s text, lim int)
RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT CASE WHEN pg_catalog.length(s) > lim THEN pg_catalog.left(s, lim) || '…' ELSE s END
$fn$;
CREATE FUNCTION test_ref.payload(a activity_monitor.alerts, full_payload boolean)
RETURNS text
LANGUAGE plpgsql STABLE
SET search_path = pg_catalog, pg_temp
SET TimeZone = 'UTC'
AS $fn$
DECLARE
	lim		int := 500;
	p		text;
BEGIN
	LOOP
		IF full_payload THEN
			p := pg_catalog.json_build_object(
				'alert_id', a.id, 'rule', test_ref.cut(a.rule_name, lim),
				'severity', a.severity, 'channel', a.channel,
				'group_key', test_ref.cut(a.group_key, lim),
				'value', CASE WHEN pg_catalog.length(a.value::text) <= 40 THEN pg_catalog.to_jsonb(a.value)
							  ELSE pg_catalog.to_jsonb(test_ref.cut(a.value::text, 40)) END,
				'event_id', a.event_id, 'kind', a.kind, 'action', a.action,
				'table', test_ref.cut(a.table_name, lim),
				'subject_id', test_ref.cut(a.subject_id, lim),
				'actor_type', a.actor_type, 'actor_id', test_ref.cut(a.actor_id, lim),
				'occurred_at', a.occurred_at, 'fired_at', a.fired_at)::text;
		ELSE
			p := pg_catalog.json_build_object(
				'alert_id', a.id, 'rule', test_ref.cut(a.rule_name, lim),
				'severity', a.severity, 'fired_at', a.fired_at)::text;
		END IF;
		EXIT WHEN pg_catalog.octet_length(p) < 8000 OR lim < 10;
		lim := lim / 4;
	END LOOP;
	RETURN p;
END
$fn$;

-- Free text of every length that makes the loop stop at another step, with
-- characters JSON escapes and multibyte ones; values of every shape.
CREATE TEMP TABLE texts AS
SELECT t FROM (VALUES (NULL), (''), ('plain'), ('quote " back \ tab	 nl
 ctl ' || chr(1)), (repeat('é', 499)), (repeat('é', 501)), (repeat('€x', 1200)),
	(repeat('a"', 3000)), (repeat('ß', 20000)), (repeat('🎲', 3000))) v(t);
CREATE TEMP TABLE nums AS
SELECT n FROM (VALUES (NULL::numeric), (0), (-1.50), (12345678901234567890.123456789),
	(1e-30), (repeat('9', 40)::numeric), (repeat('9', 41)::numeric), (-repeat('9', 40)::numeric),
	('NaN'::numeric), ('Infinity'::numeric), ('-Infinity'::numeric)) v(n);

INSERT INTO activity_monitor.alerts (rule_id, rule_name, severity, channel, fired_at, group_key,
	value, event_id, event_ids, occurred_at, kind, action, table_name, subject_id, actor_type, actor_id)
SELECT 1, coalesce(r.t, 'r'), 'warning', 'activity_monitor_alerts',
	'2026-12-06 12:34:56.789012+00'::timestamptz + i * interval '1 second', g.t, n.n, i, ARRAY[i],
	'2026-07-01 23:59:59.5+02'::timestamptz, 'payment', 'update', coalesce(g.t, 'public.t'),
	g.t, 'user', g.t
FROM (SELECT r.t AS rt, g.t, n.n, row_number() OVER () * 7919 AS i
	  FROM texts r, texts g, nums n) x(rt, t, n, i), LATERAL (SELECT x.rt AS t) r, LATERAL (SELECT x.t) g(t), LATERAL (SELECT x.n) n(n);

-- kind (never cut) long enough that the loop stops at 31, and at 7
INSERT INTO activity_monitor.alerts (rule_id, rule_name, severity, channel, group_key, value,
	event_id, event_ids, occurred_at, kind, action, table_name, subject_id, actor_type, actor_id)
SELECT 1, repeat('🎲', 200), 'warning', 'c', repeat('🎲', 200), 1, 1, '{1}', now(), repeat('k', k),
	'update', repeat('🎲', 200), repeat('🎲', 200), 'user', repeat('🎲', 200)
FROM (VALUES (5800), (9000)) v(k);
SELECT is((SELECT array_agg(length(activity_monitor.alert_payload(a, true)::json ->> 'group_key') ORDER BY id)
		   FROM activity_monitor.alerts a WHERE length(kind) > 5000),
		  '{32,8}'::int[], 'the loop stops at 31 characters, then at 7 (and "…")');

SELECT is((SELECT count(*) FROM activity_monitor.alerts a
		   WHERE activity_monitor.alert_payload(a, true) IS DISTINCT FROM test_ref.payload(a, true)),
		  0::bigint, 'the whole alert: the same text as the PL/pgSQL reference, for every alert');
SELECT is((SELECT count(*) FROM activity_monitor.alerts a
		   WHERE activity_monitor.alert_payload(a, false) IS DISTINCT FROM test_ref.payload(a, false)
			  OR activity_monitor.alert_payload(a, NULL) IS DISTINCT FROM test_ref.payload(a, NULL)),
		  0::bigint, 'the public payload (full_payload false or NULL): the same text');
SELECT is((SELECT count(*) FROM activity_monitor.alerts), 1102::bigint, 'alerts compared');
SELECT ok((SELECT bool_and(octet_length(activity_monitor.alert_payload(a, true)) < 8000
						   AND activity_monitor.alert_payload(a, true)::json IS NOT NULL)
		   FROM activity_monitor.alerts a
		   WHERE octet_length(coalesce(group_key, '')) < 4000 AND length(kind) < 100),
		  'every payload of free text under 4,000 bytes a field (and a kind of the vocabulary) is valid JSON under 8,000 bytes');
SELECT is(activity_monitor.alert_payload(NULL, true), test_ref.payload(NULL, true),
		  'a NULL alert: every field null, as the reference');
SELECT is((SELECT activity_monitor.alert_payload(a, true)::json ->> 'fired_at'
		   FROM activity_monitor.alerts a ORDER BY id LIMIT 1),
		  (SELECT to_char(fired_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US') || '+00:00'
		   FROM activity_monitor.alerts ORDER BY id LIMIT 1),
		  'times in UTC in a session that is not');

-- alert_payload(alert): full or not by the rule's setting.
DELETE FROM activity_monitor.alerts;
SELECT activity_monitor.create_rule('pl_short', '$.new.v == "x"') AS short_id \gset
SELECT activity_monitor.create_rule('pl_full', '$.new.v == "x"', full_payload => true) AS full_id \gset
INSERT INTO activity_monitor.alerts (rule_id, rule_name, severity, channel, group_key, value,
	event_id, event_ids, occurred_at, kind, action, table_name)
VALUES (:short_id, 'pl_short', 'info', 'c', 'k', 1, 1, '{1}', now(), 'profile', 'insert', 'public.t'),
	(:full_id, 'pl_full', 'info', 'c', 'k', 1, 1, '{1}', now(), 'profile', 'insert', 'public.t');
SELECT is((SELECT array_agg(activity_monitor.alert_payload(a) ORDER BY rule_name) FROM activity_monitor.alerts a),
		  (SELECT array_agg(test_ref.payload(a, rule_name = 'pl_full') ORDER BY rule_name) FROM activity_monitor.alerts a),
		  'alert_payload(alert): the whole alert for a full_payload rule, else the public payload');
SELECT isnt((SELECT activity_monitor.alert_payload(a) FROM activity_monitor.alerts a WHERE rule_name = 'pl_full'),
			(SELECT activity_monitor.alert_payload(a, false) FROM activity_monitor.alerts a WHERE rule_name = 'pl_full'),
			'(the two payloads differ)');

SELECT * FROM finish();
ROLLBACK;
