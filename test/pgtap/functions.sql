-- Properties of the extension's functions (issue 12): no dead code, every
-- immutable function parallel safe.
BEGIN;
SELECT plan(2);
SET LOCAL client_min_messages = warning;

SELECT hasnt_function('activity_monitor', '_num', ARRAY['jsonb'],
	'_num() is gone: the alert engine reads measures in C');
SELECT is_empty(
	$$SELECT p.oid::regprocedure FROM pg_proc p
	  WHERE p.pronamespace = 'activity_monitor'::regnamespace AND p.provolatile = 'i' AND p.proparallel <> 's'$$,
	'every immutable function of the extension is PARALLEL SAFE');

SELECT * FROM finish();
ROLLBACK;
