-- A detection rule book as a fraud team writes it for payments: ten rules
-- of each detection v2 type (sequences per account, absences per payment,
-- first seen per account), each on its own statuses and amounts, on the
-- table named by the psql variable book_table (micro.sh's am_book and
-- am_book_only), whose name prefixes the rules' names.  A
-- change matches a few of them, not all: a payment inserted pending, in
-- EUR, under 500, matches 4 of the 30 (two sequence steps, one absence
-- start, one first-seen rule); its update to completed 7 (three sequence
-- steps, three absences' missing step, one first-seen rule), as
-- test/shell/bench_smoke.sh checks.  (variant_activity_monitor_detection
-- .sql is the other end: thirty that all match every change.)
\set tbl '{' :book_table '}'

-- Sequences, per account, within an hour.
SELECT activity_monitor.create_rule(:'book_table' || '_seq_' || name, 'true', tables => :'tbl',
	steps => steps::jsonpath[], within => '1 hour')
FROM (VALUES
	('card_testing', ARRAY['$.status_to == "failed"', '$.status_to == "failed"', '$.status_to == "completed"']),
	('refund_then_deposit', ARRAY['$.status_to == "refunded"', '$.action == "insert" && $.new.amount > 500']),
	('after_chargeback', ARRAY['$.status_to == "chargeback"', '$.action == "insert"']),
	('micro_then_large', ARRAY['$.action == "insert" && $.new.amount < 1', '$.action == "insert" && $.new.amount > 1000']),
	('failed_then_foreign', ARRAY['$.status_to == "failed"', '$.action == "insert" && $.new.currency != "EUR"']),
	('reversed_then_completed', ARRAY['$.status_to == "reversed"', '$.status_to == "completed"']),
	('large_refunded', ARRAY['$.action == "insert" && $.new.amount > 900', '$.status_to == "refunded"']),
	('repeated_failure', ARRAY['$.action == "insert"', '$.status_to == "failed"', '$.status_to == "failed"']),
	('large_then_refund_request', ARRAY['$.status_to == "completed" && $.new.amount > 2000', '$.status_to == "refund_requested"']),
	('crypto_completed', ARRAY['$.action == "insert" && $.new.currency == "BTC"', '$.status_to == "completed"'])
) r(name, steps);

-- Absences, per payment, within 30 minutes.
SELECT activity_monitor.create_rule(:'book_table' || '_abs_' || name, 'true', tables => :'tbl',
	group_by => '$.row_key', steps => ARRAY[start]::jsonpath[], missing => missing::jsonpath,
	within => '30 minutes')
FROM (VALUES
	('stuck', '$.status_to == "pending"', '$.status_to == "completed" || $.status_to == "failed"'),
	('refund_unprocessed', '$.status_to == "refund_requested"', '$.status_to == "refunded"'),
	('review_undecided', '$.status_to == "review"', '$.status_to == "approved" || $.status_to == "rejected"'),
	('chargeback_open', '$.status_to == "chargeback"', '$.status_to == "chargeback_resolved"'),
	('processing', '$.status_to == "processing"', '$.status_to == "completed" || $.status_to == "failed"'),
	('large_unsettled', '$.action == "insert" && $.new.amount > 1000', '$.status_to == "completed" || $.status_to == "failed"'),
	('on_hold', '$.status_to == "on_hold"', '$.status_to == "released"'),
	('authorized', '$.status_to == "authorized"', '$.status_to == "captured"'),
	('disputed', '$.status_to == "disputed"', '$.status_to == "resolved"'),
	('kyc_hold', '$.status_to == "pending_kyc"', '$.status_to == "kyc_done"')
) r(name, start, missing);

-- First seen, per account, over 30 days.
SELECT activity_monitor.create_rule(:'book_table' || '_seen_' || name, predicate::jsonpath, tables => :'tbl',
	measure_path => measure::jsonpath, lookback => '30 days')
FROM (VALUES
	('currency', '$.action == "insert"', '$.new.currency'),
	('large_currency', '$.action == "insert" && $.new.amount > 1000', '$.new.currency'),
	('withdrawal_currency', '$.action == "insert" && $.new.amount < 0', '$.new.currency'),
	('status', '$.action == "update"', '$.status_to'),
	('refund_currency', '$.status_to == "refunded"', '$.new.currency'),
	('failed_currency', '$.status_to == "failed"', '$.new.currency'),
	('large_status', '$.new.amount > 1000', '$.status_to'),
	('employee', '$.actor_type == "employee"', '$.actor_id'),
	('foreign_currency', '$.new.currency != "EUR"', '$.new.currency'),
	('deleter', '$.action == "delete"', '$.actor_id')
) r(name, predicate, measure);
