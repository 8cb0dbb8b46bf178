-- Variant "activity_monitor_rules": activity_monitor tracked as in
-- variant_activity_monitor.sql, plus 10 enabled alert rules that apply to the
-- payment table (five per event, five windowed), so that every payment change
-- is evaluated by all ten in the trigger and the matches by the worker.
-- records: as activity_monitor, plus the alert rules each payment change matched
-- requires: activity_monitor
-- preload: activity
\ir variant_activity_monitor.sql

-- Ten rules on payments: five per-event, five windowed (count, sum, distinct).
SELECT activity_monitor.create_rule('large_payment', '$.new.amount > 900', tables => '{payments}');
SELECT activity_monitor.create_rule('completed_large', '$.action == "update" && $.new.status == "completed" && $.new.amount > 950', tables => '{payments}', severity => 'critical');
SELECT activity_monitor.create_rule('refund', '$.status_to == "refunded"', tables => '{payments}');
SELECT activity_monitor.create_rule('foreign_currency', '$.new.currency != "EUR"', tables => '{payments}');
SELECT activity_monitor.create_rule('employee_payment', '$.actor_type == "employee"', kinds => '{payment}');
SELECT activity_monitor.create_rule('payment_burst', '$.action == "insert"', kinds => '{payment}', within => '1 minute', threshold => 1000);
SELECT activity_monitor.create_rule('deposit_velocity', '$.action == "insert"', kinds => '{payment}', within => '1 hour', threshold => 1e9, measure => 'sum', measure_path => '$.new.amount');
SELECT activity_monitor.create_rule('completion_burst', '$.status_to == "completed"', kinds => '{payment}', within => '10 minutes', threshold => 1000);
SELECT activity_monitor.create_rule('many_amounts', '$.action == "insert"', kinds => '{payment}', within => '1 hour', threshold => 1000, measure => 'distinct', measure_path => '$.new.amount');
SELECT activity_monitor.create_rule('failed_payments', '$.status_to == "failed"', kinds => '{payment}', within => '1 hour', threshold => 5);
