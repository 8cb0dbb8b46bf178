-- Compiled predicates (issue 17, src/predicate.c): the same predicates match
-- the same documents as jsonpath's own evaluation.  Thousands of random
-- predicates of the compiled shape (comparisons of plain paths with
-- constants, either side, joined by &&, || and !) over random documents
-- (numbers, strings, booleans, nulls, arrays, nested objects, arrays of
-- objects, missing members) are evaluated both ways and must agree,
-- unknown (NULL) included; predicates of any other shape stay generic; and
-- rules evaluated in the capture trigger give the matches and errors
-- jsonb_path_match gives on the event document.
BEGIN;
SELECT plan(9);
SET LOCAL client_min_messages = warning;
SELECT setseed(0.17);

CREATE TEMP TABLE vals (v text);
INSERT INTO vals VALUES ('0'), ('1'), ('-1'), ('2.5'), ('1000'), ('1e3'), ('10'), ('""'), ('"x"'),
	('"completed"'), ('"pending"'), ('"é"'), ('"abc"'), ('"ab"'), ('"10"'), ('true'), ('false'),
	('null'), ('[1, 2, 3]'), ('["completed", "x"]'), ('[]'), ('[null]'), ('[[1], 2]'), ('{"k": 1}'),
	('{"k": "completed"}'), ('[{"k": 1}, {"k": 5}, 3]'), ('[{"k": [1, 7]}]');
CREATE TEMP TABLE paths (p text);
INSERT INTO paths VALUES ('$'), ('$.a'), ('$.b'), ('$.new.amount'), ('$.new.status'), ('$.new.tags'),
	('$.new.obj.k'), ('$.arr.k'), ('$.missing'), ('$."new"."n"'), ('$.a.k'), ('$.new');
CREATE TEMP TABLE consts (c text);
INSERT INTO consts VALUES ('0'), ('1'), ('-1'), ('2.5'), ('1000'), ('10'), ('""'), ('"x"'),
	('"completed"'), ('"é"'), ('"ab"'), ('"10"'), ('true'), ('false'), ('null');

-- a random value, member or document
CREATE FUNCTION pg_temp.rval() RETURNS text LANGUAGE sql VOLATILE AS
	$$ SELECT v FROM vals ORDER BY random() LIMIT 1 $$;
CREATE FUNCTION pg_temp.member(k text) RETURNS text LANGUAGE sql VOLATILE AS
	$$ SELECT CASE WHEN random() < 0.15 THEN NULL ELSE format('%s: %s', to_json(k), pg_temp.rval()) END $$;
CREATE FUNCTION pg_temp.doc() RETURNS jsonb LANGUAGE sql VOLATILE AS $$
	SELECT ('{' || concat_ws(', ',
		pg_temp.member('a'), pg_temp.member('b'), pg_temp.member('arr'),
		CASE WHEN random() < 0.2 THEN NULL
			 WHEN random() < 0.2 THEN '"new": ' || pg_temp.rval()
			 ELSE '"new": {' || concat_ws(', ', pg_temp.member('amount'), pg_temp.member('status'),
										  pg_temp.member('tags'), pg_temp.member('obj'), pg_temp.member('n'),
										  CASE WHEN random() < 0.3 THEN '"obj": {"k": ' || pg_temp.rval() || '}' END) || '}'
		END) || '}')::jsonb
$$;
-- a random comparison, and a random predicate of depth d
CREATE FUNCTION pg_temp.cmp() RETURNS text LANGUAGE sql VOLATILE AS $$
	SELECT CASE WHEN random() < 0.2 THEN format('%s %s %s', c, op, p) ELSE format('%s %s %s', p, op, c) END
	FROM (SELECT (SELECT p FROM paths ORDER BY random() LIMIT 1) p,
				 (SELECT c FROM consts ORDER BY random() LIMIT 1) c,
				 (ARRAY['==', '!=', '<', '<=', '>', '>='])[1 + floor(random() * 6)::int] op) x
$$;
CREATE FUNCTION pg_temp.pred(d int) RETURNS text LANGUAGE plpgsql VOLATILE AS $$
DECLARE
	r	double precision := random();
BEGIN
	IF d = 0 OR r < 0.4 THEN
		RETURN pg_temp.cmp();
	ELSIF r < 0.65 THEN
		RETURN format('(%s && %s)', pg_temp.pred(d - 1), pg_temp.pred(d - 1));
	ELSIF r < 0.9 THEN
		RETURN format('(%s || %s)', pg_temp.pred(d - 1), pg_temp.pred(d - 1));
	ELSE
		RETURN format('!(%s)', pg_temp.pred(d - 1));
	END IF;
END
$$;

CREATE TEMP TABLE docs AS SELECT g AS id, pg_temp.doc() AS d FROM generate_series(1, 40) g;
CREATE TEMP TABLE preds AS SELECT g AS id, pg_temp.pred(3)::jsonpath AS p FROM generate_series(1, 3000) g;

SELECT is((SELECT count(*) FROM preds WHERE activity_monitor._predicate_plan(p) <> 'compiled'), 0::bigint,
	'every random predicate of the shape is compiled');
CREATE TEMP TABLE outcomes AS
	SELECT p.id AS pid, d.id AS did, p.p, d.d,
		   jsonb_path_match(d.d, p.p, silent => true) AS want,
		   activity_monitor._predicate_match(p.p, d.d) AS got
	FROM preds p CROSS JOIN docs d;
SELECT is((SELECT count(*) FROM outcomes WHERE got IS DISTINCT FROM want), 0::bigint,
	'120,000 evaluations: the compiled result is jsonb_path_match''s, unknown included');
SELECT results_eq($$SELECT p::text, d::text, want, got FROM outcomes WHERE got IS DISTINCT FROM want LIMIT 5$$,
	$$SELECT NULL::text, NULL::text, NULL::boolean, NULL::boolean WHERE false$$,
	'(the first disagreements, if any)');
-- the sample covers each outcome
SELECT ok((SELECT count(*) FILTER (WHERE want) > 1000 AND count(*) FILTER (WHERE NOT want) > 1000
				  AND count(*) FILTER (WHERE want IS NULL) > 1000 FROM outcomes),
	'the sample has many true, false and unknown outcomes');

-- other shapes stay generic
SELECT is(array_agg(activity_monitor._predicate_plan(p::jsonpath) ORDER BY p), array_fill('generic'::text, ARRAY[11]),
	'filters, methods, subscripts, wildcards, strict mode, regexes, exists, two paths, is unknown, arithmetic, variables: generic')
FROM unnest(ARRAY['$.a.size() > 1', '$.a[0] == 1', '$.* == 1', '$ ? (@.a > 1)', 'strict $.a == 1',
				  '$.a like_regex "x"', 'exists($.a)', '$.a == $.b', '($.a > 1) is unknown', '$.a + 1 > 2',
				  '$.a > $x']) p;
SELECT throws_ok($$SELECT activity_monitor._predicate_match('$.a.size() > 1', '{}')$$, '0A000',
	'predicate is not compiled');

-- ---------------------------------------------------------------------------
-- In the capture trigger: rules made of the random predicates (compiled)
-- and the same predicates wrapped so as to stay generic (a filter on $
-- selects the same document) match the same events with the same errors
-- ---------------------------------------------------------------------------
CREATE TABLE pr_t (id int PRIMARY KEY, a jsonb, b jsonb, arr jsonb, amount jsonb, status jsonb, tags jsonb);
SELECT activity_monitor.track('pr_t', 'payment');
SELECT activity_monitor.create_rule('c' || id, p, tables => '{pr_t}') FROM preds WHERE id <= 150;
-- (p) && exists($) is p (exists($) is true), and not compiled
SELECT activity_monitor.create_rule('g' || id, format('(%s) && exists($)', p)::jsonpath, tables => '{pr_t}')
FROM preds WHERE id <= 150;
SELECT is((SELECT count(*) FROM activity_monitor.rules WHERE name LIKE 'c%' AND evaluation = 'compiled'),
	150::bigint, 'the rules view shows the compiled rules');
SELECT is((SELECT count(*) FROM activity_monitor.rules WHERE name LIKE 'g%' AND evaluation = 'generic'),
	150::bigint, 'and the generic ones');
INSERT INTO pr_t SELECT id, d->'a', d->'b', d->'arr', d->'new'->'amount', d->'new'->'status', d->'new'->'tags'
FROM docs;
UPDATE pr_t SET amount = '5', status = '"completed"' WHERE id % 3 = 0;
SELECT is((SELECT count(*) FROM activity_monitor.activity a
		   CROSS JOIN activity_monitor.rules c
		   JOIN activity_monitor.rules g ON g.name = 'g' || substr(c.name, 2)
		   WHERE a.table_name = 'public.pr_t' AND c.name LIKE 'c%'
			 AND ((a.matched ? c.id::text) IS DISTINCT FROM (a.matched ? g.id::text)
				  OR (c.id = ANY (a.rule_errors)) IS DISTINCT FROM (g.id = ANY (a.rule_errors)))),
	0::bigint, 'compiled and generic rules match the same captured events, with the same errors');

SELECT * FROM finish();
ROLLBACK;
