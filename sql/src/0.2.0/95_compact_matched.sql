-- The "matched" document of events captured from 0.2.0 on is compact: the
-- group key once (most rules of an event share it), each rule's measure
-- under its id (src/rules.c, matched_document).  Events stored before keep
-- 0.1.0's form, which the worker and test_rule() still read.
COMMENT ON COLUMN activity_monitor.activity.matched IS
	'alert rules whose predicate matched: {"k": group key, "rule id": measure, ...}, a rule whose group key differs or whose measure is an array as "rule id": [group key, measure] (0.1.0: {"rule id": {"k": group key, "v": measure}})';
