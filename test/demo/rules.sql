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
	'$.action == "insert" && $.new.self_excluded == true && $.new.status != "failed" && $.new.status != "closed"',
	severity => 'critical', tables => '{public.user_sessions,public.payments}', channel => 'compliance',
	description => 'A self-excluded player logged in or made a payment (the platform should have refused it).');

-- operations ------------------------------------------------------------------

SELECT activity_monitor.create_rule('provider_callback_failures',
	'$.action == "insert" && ($.new.status == "failed" || $.new.status == "rollback")',
	severity => 'warning', tables => '{public.provider_callbacks}', channel => 'operations',
	within => '10 minutes', threshold => 20, group_by => '$.new.provider', cooldown => '1 hour',
	description => 'A game provider sent 20 or more failed or rolled-back callbacks within 10 minutes (outage, or an integration abused).');

-- detection v2: sequences, absences, first seen ---------------------------------
-- (deadlines are the demo's: its day passes in seconds; production values in
-- each description)

SELECT activity_monitor.create_rule('account_takeover', 'true',
	severity => 'critical', kinds => '{profile,payment}', channel => 'security',
	steps => ARRAY['$.table == "public.accounts" && $.changed[*] == "email"',
				   '$.table == "public.accounts" && $.changed[*] == "password_hash"',
				   '$.table == "public.payments" && $.action == "insert" && $.new.kind == "withdrawal"']::jsonpath[],
	within => '1 hour',
	description => 'E-mail changed, then password changed, then a withdrawal requested, within an hour (account takeover).');

SELECT activity_monitor.create_rule('new_device_login',
	'$.action == "insert" && ($.new.status == "active" || $.new.status == "closed")',
	severity => 'info', tables => '{public.user_sessions}', channel => 'security',
	measure_path => '$.new.device', lookback => '30 days',
	description => 'A login from a device the account has not used in 30 days (yesterday''s sessions count: backfilled).');

SELECT activity_monitor.create_rule('stuck_withdrawal',
	'$.new.kind == "withdrawal" && $.new.amount > 5000',
	severity => 'warning', tables => '{public.payments}', channel => 'operations',
	steps => ARRAY['$.action == "insert"']::jsonpath[],
	missing => '$.new.status == "completed" || $.new.status == "failed"',
	within => '12 seconds',
	description => 'A withdrawal above 5,000 not completed or failed in time: the senior review did not happen (30 minutes in production, 12 s in the demo).');

SELECT activity_monitor.create_rule('missing_settlement',
	'$.new.stake >= 500',
	severity => 'warning', tables => '{public.game_rounds}', channel => 'operations',
	steps => ARRAY['$.action == "insert"']::jsonpath[],
	missing => '$.new.status == "settled" || $.new.status == "cancelled"',
	within => '12 seconds',
	description => 'A high-stake round the provider has not settled or cancelled in time (10 minutes in production, 12 s in the demo).');
