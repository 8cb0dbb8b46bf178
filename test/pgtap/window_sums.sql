-- Sum windows add integer measures as integers and every other number as
-- numeric (window.c): whatever the mix, the measure is exact and a rule
-- fires where the running sum, computed here in SQL, first reaches its
-- threshold.  Through test_rule(), the worker's own definition of what
-- fires (am_alerts_match), over the events of this transaction: measures
-- in and out of int4's range, decimals, numeric strings of 18 digits whose
-- total leaves int64, negative amounts that bring a sum back under its
-- threshold, fractional thresholds, sums equal to the threshold; and a
-- window of one second that drops its events (pg_sleep), the integer part
-- of its total leaving int64 on the way out.
BEGIN;
SELECT plan(11);
SET LOCAL client_min_messages = warning;

CREATE TABLE ledger (id int PRIMARY KEY, acct text, amount numeric, label text);
SELECT activity_monitor.track('ledger', 'payment', subject_column => 'acct');

INSERT INTO ledger VALUES
	-- integers, a fractional threshold (15.5): 5, 12, 9, 19
	(1, 'int', 5, NULL), (2, 'int', 7, NULL), (3, 'int', -3, NULL), (4, 'int', 10, NULL),
	-- decimals reaching 15.5 exactly
	(5, 'dec', 10.25, NULL), (6, 'dec', 5.25, NULL),
	-- an integer and a decimal
	(7, 'mix', 15, NULL), (8, 'mix', 0.5, NULL),
	-- beyond int4, back under, over again: 3e9, 1, 21
	(9, 'big', 3000000000, NULL), (10, 'big', -2999999999, NULL), (11, 'big', 20, NULL),
	-- a whole number written with a scale
	(12, 'scaled', 15.0, NULL), (13, 'scaled', 0.50, NULL),
	-- integers whose sum is the threshold itself (16)
	(14, 'eq', 5, NULL), (15, 'eq', 7, NULL), (16, 'eq', 4, NULL);
-- numeric strings: twelve of 9e17 leave int64 at the eleventh (9.9e18)
INSERT INTO ledger SELECT 100 + g, 'text', NULL, '900000000000000000' FROM generate_series(1, 12) g;
INSERT INTO ledger VALUES (200, 'text2', NULL, '-7'), (201, 'text2', NULL, '12.5'), (202, 'text2', NULL, '11'),
	(203, 'text2', NULL, '16');

-- what each rule must fire, computed from the rows: the running sum by
-- account in id order, where it first reaches the threshold
CREATE FUNCTION pg_temp.truth(col text, threshold numeric)
RETURNS TABLE (event_id bigint, group_key text, value numeric)
LANGUAGE plpgsql AS $$
BEGIN
	RETURN QUERY EXECUTE format($q$
		SELECT a.id, s.acct, s.after
		FROM (SELECT l.id, l.acct,
					 sum(m) OVER (PARTITION BY l.acct ORDER BY l.id) AS after,
					 sum(m) OVER (PARTITION BY l.acct ORDER BY l.id) - coalesce(m, 0) AS before
			  FROM (SELECT *, %s AS m FROM ledger) l) s
		JOIN activity_monitor.activity a ON a.table_name = 'public.ledger' AND a.row_key = s.id::text
		WHERE s.after >= $1 AND coalesce(s.before, 0) < $1
		ORDER BY 1$q$, col) USING threshold;
END
$$;
CREATE FUNCTION pg_temp.fired(path text, threshold numeric)
RETURNS TABLE (event_id bigint, group_key text, value numeric)
LANGUAGE sql AS $$
	SELECT t.event_id, t.group_key, t.value
	FROM activity_monitor.test_rule('$.action == "insert"', now() - interval '1 hour',
		now() + interval '1 hour', tables => '{ledger}', within => '1 hour',
		threshold => threshold, measure => 'sum', measure_path => path::jsonpath,
		group_by => '$.subject_id') t
	ORDER BY 1
$$;

SELECT set_eq($$SELECT * FROM pg_temp.fired('$.new.amount', 15.5)$$,
			  $$SELECT * FROM pg_temp.truth('amount', 15.5)$$,
			  'numbers: integers, decimals and numbers beyond int4 sum exactly (threshold 15.5)');
SELECT is((SELECT count(*) FROM pg_temp.fired('$.new.amount', 15.5)), 7::bigint,
		  'seven crossings of 15.5: int, dec, mix, big twice, scaled, eq');
SELECT results_eq($$SELECT value FROM pg_temp.fired('$.new.amount', 16) WHERE group_key = 'eq'$$,
				  $$VALUES (16::numeric)$$, 'a sum of integers equal to the threshold reaches it');
SELECT is((SELECT value FROM pg_temp.fired('$.new.amount', 15.5) WHERE group_key = 'big' ORDER BY event_id DESC LIMIT 1),
		  21::numeric, 'back under the threshold and over it again: 3e9 - 2999999999 + 20');
SELECT set_eq($$SELECT * FROM pg_temp.fired('$.new.amount', 16)$$,
			  $$SELECT * FROM pg_temp.truth('amount', 16)$$,
			  'an integer threshold (16)');
SELECT results_eq($$SELECT group_key, value FROM pg_temp.fired('$.new.label', 0.001)$$,
				  $$VALUES ('text', 900000000000000000::numeric), ('text2', 5.5)$$,
				  'a threshold below one (0.001): -7 takes a sum under it, 12.5 over it');
SELECT set_eq($$SELECT * FROM pg_temp.fired('$.new.label', 1e19)$$,
			  $$SELECT * FROM pg_temp.truth('label::numeric', 1e19)$$,
			  'numeric strings: a total beyond int64 stays exact');
SELECT is((SELECT value FROM pg_temp.fired('$.new.label', 1e19)),
		  10800000000000000000::numeric, 'twelve strings of 9e17 sum to 1.08e19');
SELECT set_eq($$SELECT * FROM pg_temp.fired('$.new.label', 16.5)$$,
			  $$SELECT * FROM pg_temp.truth('label::numeric', 16.5)$$,
			  'numeric strings, negative and decimal (threshold 16.5)');

-- A window of one second: at the last event every earlier one leaves it,
-- 9e17 first (the integer part, -8.4e18, would pass int64's minimum), a
-- decimal among them; what is left is the last event alone.
INSERT INTO ledger VALUES (300, 'trim', NULL, '900000000000000000'), (301, 'trim', NULL, '0.5');
INSERT INTO ledger SELECT 400 + g, 'trim', NULL, '-93000000000000000' FROM generate_series(1, 100) g;
SELECT pg_sleep(1.2);
INSERT INTO ledger VALUES (600, 'trim', NULL, '1');
CREATE FUNCTION pg_temp.trim_truth(threshold numeric)
RETURNS TABLE (event_id bigint, group_key text, value numeric)
LANGUAGE sql AS $$
	WITH e AS (SELECT a.id, a.occurred_at AS at, l.acct, l.label::numeric AS m
			   FROM ledger l JOIN activity_monitor.activity a
				 ON a.table_name = 'public.ledger' AND a.row_key = l.id::text
			   WHERE l.acct = 'trim'),
		 s AS (SELECT e.id, e.acct, e.m,
					  (SELECT sum(e2.m) FROM e e2
					   WHERE e2.at > e.at - interval '1 second' AND (e2.at, e2.id) <= (e.at, e.id)) AS after
			   FROM e)
	SELECT id, acct, after FROM s WHERE after >= threshold AND after - m < threshold ORDER BY 1
$$;
CREATE FUNCTION pg_temp.trim_fired(threshold numeric)
RETURNS TABLE (event_id bigint, group_key text, value numeric)
LANGUAGE sql AS $$
	SELECT t.event_id, t.group_key, t.value
	FROM activity_monitor.test_rule('$.action == "insert" && $.new.acct == "trim"', now() - interval '1 hour',
		now() + interval '1 hour', tables => '{ledger}', within => '1 second',
		threshold => threshold, measure => 'sum', measure_path => '$.new.label',
		group_by => '$.subject_id') t
	ORDER BY 1
$$;
SELECT set_eq($$SELECT * FROM pg_temp.trim_fired(1)$$, $$SELECT * FROM pg_temp.trim_truth(1)$$,
			  'a window that drops its events: the sums as computed in SQL');
SELECT results_eq($$SELECT value FROM pg_temp.trim_fired(1)$$,
				  $$VALUES (900000000000000000::numeric), (1::numeric)$$,
				  'fires at 9e17, and at the last event alone once the rest left the window');

SELECT * FROM finish();
ROLLBACK;
