-- Variant "activity_monitor_detection": activity_monitor_rules' ten rules,
-- plus ten rules of each detection v2 type (issue 14), so that every change
-- is evaluated by all forty in the trigger and the matches by the worker:
-- sequences per account (a payment inserted, then completed, then one above
-- 499.50: rare), absences per payment (inserted pending, completed in the
-- same transaction: each wait is cancelled), first seen (an account's login
-- IP, a payment's currency).
-- records: as activity_monitor, plus the alert rules each change matched
-- requires: activity_monitor
-- preload: activity
\ir variant_activity_monitor_rules.sql

SELECT count(activity_monitor.create_rule('seq' || i, 'true', kinds => '{payment}',
	steps => ARRAY['$.action == "insert"', '$.status_to == "completed"',
				   '$.action == "insert" && $.new.amount > 499.5']::jsonpath[],
	within => '1 hour', cooldown => '1 hour'))
FROM generate_series(1, 10) i;
SELECT count(activity_monitor.create_rule('abs' || i, '$.table == "public.payments"', group_by => '$.row_key',
	steps => ARRAY['$.status_to == "pending"']::jsonpath[],
	missing => '$.status_to == "completed" || $.status_to == "failed"', within => '30 minutes'))
FROM generate_series(1, 10) i;
SELECT count(activity_monitor.create_rule('seen_ip' || i, '$.action == "insert"', tables => '{user_sessions}',
	measure_path => '$.new.ip', lookback => '30 days'))
FROM generate_series(1, 5) i;
SELECT count(activity_monitor.create_rule('seen_currency' || i, '$.action == "insert"', tables => '{payments}',
	measure_path => '$.new.currency', lookback => '30 days'))
FROM generate_series(1, 5) i;
