-- activity_monitor demo: the rule pack a gaming back office watches.
--
-- Channels: fraud, security, compliance, operations (the demo's consumer
-- listens on all four).  Thresholds are chosen so that ordinary play never
-- reaches them; simulate.sql plants one scenario per rule.

-- fraud -----------------------------------------------------------------------

SELECT activity_monitor.create_rule('large_withdrawal',
	'$.action == "update" && $.new.kind == "withdrawal" && $.new.status == "completed" && $.new.amount > 5000',
	severity => 'critical', tables => '{public.payments}', channel => 'fraud',
	description => 'A withdrawal above 5,000 was paid out.');

SELECT activity_monitor.create_rule('deposit_velocity',
	'$.action == "insert" && $.new.kind == "deposit"',
	severity => 'warning', tables => '{public.payments}', channel => 'fraud',
	within => '1 hour', threshold => 10000, measure => 'sum', measure_path => '$.new.amount',
	cooldown => '6 hours',
	description => 'An account deposited 10,000 or more within an hour (money laundering, stolen cards).');

SELECT activity_monitor.create_rule('shared_ip',
	'$.action == "insert" && $.new.status == "active"',
	severity => 'warning', tables => '{public.user_sessions}', channel => 'fraud',
	within => '1 hour', threshold => 5, measure => 'distinct', measure_path => '$.subject_id',
	group_by => '$.new.ip', cooldown => '6 hours',
	description => 'Five or more accounts logged in from one IP within an hour (multi-accounting, bonus abuse).');

-- security --------------------------------------------------------------------

SELECT activity_monitor.create_rule('failed_login_burst',
	'$.action == "insert" && $.new.status == "failed"',
	severity => 'warning', kinds => '{login}', channel => 'security',
	within => '10 minutes', threshold => 5, cooldown => '30 minutes',
	description => 'Five or more failed logins on one account within 10 minutes (password guessing).');

SELECT activity_monitor.create_rule('failed_login_ip_burst',
	'$.action == "insert" && $.new.status == "failed"',
	severity => 'critical', kinds => '{login}', channel => 'security',
	within => '10 minutes', threshold => 10, group_by => '$.new.ip', cooldown => '30 minutes',
	description => 'Ten or more failed logins from one IP within 10 minutes, whatever the accounts (credential stuffing).');

-- compliance ------------------------------------------------------------------

SELECT activity_monitor.create_rule('large_manual_adjustment',
	'$.action == "insert" && $.actor_type == "employee" && $.new.amount.abs() > 1000',
	severity => 'critical', tables => '{public.backoffice_adjustments}', channel => 'compliance',
	measure_path => '$.new.amount',
	description => 'An employee adjusted a balance by more than 1,000 in one go.');

SELECT activity_monitor.create_rule('employee_daily_adjustments',
	'$.action == "insert" && $.actor_type == "employee"',
	severity => 'warning', tables => '{public.backoffice_adjustments}', channel => 'compliance',
	within => '1 day', threshold => 5000, measure => 'sum', measure_path => '$.new.amount',
	group_by => '$.actor_id', cooldown => '1 day',
	description => 'One employee''s manual adjustments add up to 5,000 or more within a day (many small ones, too).');

SELECT activity_monitor.create_rule('vip_account_changed_by_employee',
	'$.action == "update" && $.actor_type == "employee" && $.old.vip == true',
	severity => 'warning', tables => '{public.accounts}', channel => 'compliance',
	description => 'An employee changed a VIP account (VIP accounts are the VIP team''s; any other change is reviewed).');

SELECT activity_monitor.create_rule('self_excluded_activity',
	'$.action == "insert" && $.new.self_excluded == true && $.new.status != "failed"',
	severity => 'critical', tables => '{public.user_sessions,public.payments}', channel => 'compliance',
	description => 'A self-excluded player logged in or made a payment (the platform should have refused it).');

-- operations ------------------------------------------------------------------

SELECT activity_monitor.create_rule('provider_callback_failures',
	'$.action == "insert" && ($.new.status == "failed" || $.new.status == "rollback")',
	severity => 'warning', tables => '{public.provider_callbacks}', channel => 'operations',
	within => '10 minutes', threshold => 20, group_by => '$.new.provider', cooldown => '1 hour',
	description => 'A game provider sent 20 or more failed or rolled-back callbacks within 10 minutes (outage, or an integration abused).');
