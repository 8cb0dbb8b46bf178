-- activity_monitor demo: the simulator of a day on the platform.
--
-- run.sh loads this file, then, for each hour of the day, runs the statements
-- demo.hour_plan(h) returns, one by one, as separate client requests (psql's
-- \gexec): ordinary traffic (players log in, deposit, bet, withdraw and log
-- out; the payment processor and the game providers answer; employees work in
-- the back office during their shifts) and, woven in, the hour's suspicious
-- scenario, if any: one per rule of the pack (rules.sql).  The steps of the
-- hour's visits, back-office tasks and scenario are interleaved by a
-- simulated clock, so players are online at the same time.  Every platform
-- write is an ordinary INSERT/UPDATE in its own transaction, with the actor
-- the application would declare (set_actor) and its application_name.
--
-- Ordinary traffic stays below every threshold by construction: deposits of
-- at most 300 (a player visits at most once an hour), withdrawals of at most
-- 1,500, at most two mistyped passwords per player per day, two players per
-- household IP, at most six failed provider callbacks per provider per day,
-- goodwill credits of at most 150 and 1,500 per employee per day, and
-- employees do not touch VIP accounts.
--
-- demo.planted lists what each scenario is expected to trip; run.sh compares
-- it with the alerts the worker actually fired (it never prints an alert from
-- it).

CREATE SCHEMA demo;

CREATE TABLE demo.players (
	account_id		int PRIMARY KEY REFERENCES accounts,
	home_ip			inet NOT NULL,
	device			text NOT NULL,
	reserved		boolean NOT NULL DEFAULT false,	-- a scenario's character: no ordinary play
	failed_logins	int NOT NULL DEFAULT 0
);
INSERT INTO demo.players (account_id, home_ip, device, reserved)
SELECT a.id,
	   ('10.20.' || (a.id / 2) / 100 || '.' || (a.id / 2) % 100)::inet,	-- two players per household
	   (ARRAY['ios', 'android', 'web'])[a.id % 3 + 1],
	   a.id IN (1020, 1077, 1150, 1213, 1234, 1241, 1252, 1263, 1301, 1302, 1303, 1304, 1305, 1306,
			  1320, 1321, 1322)
FROM accounts a;

CREATE TABLE demo.employees (
	id				text PRIMARY KEY,
	name			text NOT NULL,
	team			text NOT NULL,
	shift_from		int NOT NULL,
	shift_to		int NOT NULL,
	ip				text NOT NULL,
	adjusted_today	numeric NOT NULL DEFAULT 0
);
INSERT INTO demo.employees (id, name, team, shift_from, shift_to, ip) VALUES
	('emp-01', 'Alice Martin', 'payments', 6, 14, '192.168.10.11'),
	('emp-02', 'Bob Kowalski', 'payments', 14, 23, '192.168.10.12'),
	('emp-03', 'Chen Wei', 'kyc', 8, 17, '192.168.10.13'),
	('emp-04', 'Dana Novak', 'support', 7, 15, '192.168.10.14'),
	('emp-05', 'Eli Haddad', 'support', 15, 23, '192.168.10.15'),
	('emp-06', 'Femi Adeyemi', 'risk', 9, 18, '192.168.10.16');

CREATE TABLE demo.providers (
	name			text PRIMARY KEY,
	failures_today	int NOT NULL DEFAULT 0
);
INSERT INTO demo.providers (name) VALUES ('spinworks'), ('luckylabs'), ('reelforge'), ('novagames');

CREATE TABLE demo.planted (
	rule_name		text NOT NULL,
	group_key		text NOT NULL,
	hour			int NOT NULL,
	scenario		text NOT NULL,
	PRIMARY KEY (rule_name, group_key)
);

-- the hour being planned: statements at simulated minutes
CREATE TABLE demo.plan (
	t				float8 NOT NULL,
	seq				serial,
	stmt			text NOT NULL
);

-- ---------------------------------------------------------------------------
-- Who acts (for the rest of the transaction, as an application would say it)
-- ---------------------------------------------------------------------------

CREATE FUNCTION demo.as_player(acc int, ip inet, device text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM activity_monitor.set_actor('user', 'u-' || acc,
		context => jsonb_build_object('ip', host(ip), 'device', device));
	PERFORM set_config('application_name', 'player-' || device, true);
END
$$;

CREATE FUNCTION demo.as_service(name text, ctx jsonb DEFAULT NULL) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	PERFORM activity_monitor.set_actor('service', name, context => ctx);
	PERFORM set_config('application_name', name, true);
END
$$;

CREATE FUNCTION demo.as_employee(emp text, reason text) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	e demo.employees;
BEGIN
	SELECT * INTO STRICT e FROM demo.employees WHERE id = emp;
	PERFORM activity_monitor.set_actor('employee', emp, reason => reason,
		context => jsonb_build_object('ip', e.ip, 'section', e.team, 'device', 'backoffice-web',
									  'request_id', 'r-' || substr(md5(random()::text), 1, 8)));
	PERFORM set_config('application_name', 'backoffice', true);
END
$$;

-- ---------------------------------------------------------------------------
-- What players do, and what the payment processor and the providers answer
-- ---------------------------------------------------------------------------

CREATE PROCEDURE demo.failed_login(acc int, ip inet, device text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_service('auth-api', jsonb_build_object('ip', host(ip), 'device', device));
	INSERT INTO user_sessions (account_id, ip, device, status) VALUES (acc, ip, device, 'failed');
	COMMIT;
END
$$;

CREATE PROCEDURE demo.login(acc int, ip inet, device text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	INSERT INTO user_sessions (account_id, ip, device, status, session_token, last_seen_at)
	VALUES (acc, ip, device, 'active', md5(random()::text), now());
	COMMIT;
END
$$;

CREATE PROCEDURE demo.logout(acc int, ip inet, device text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	UPDATE user_sessions SET status = 'closed', ended_at = now(), last_seen_at = now()
	WHERE id = (SELECT max(id) FROM user_sessions WHERE account_id = acc AND status = 'active');
	COMMIT;
END
$$;

CREATE PROCEDURE demo.deposit(acc int, amt numeric, ip inet, device text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	INSERT INTO payments (account_id, kind, amount, method)
	VALUES (acc, 'deposit', amt, (ARRAY['card', 'e-wallet', 'bank_transfer'])[1 + floor(random() * 3)::int]);
	COMMIT;
END
$$;

-- the payment processor confirms (or declines) the account's pending deposits
CREATE PROCEDURE demo.confirm_deposits(acc int) LANGUAGE plpgsql AS $$
DECLARE
	d record;
BEGIN
	FOR d IN SELECT id, amount FROM payments
			 WHERE account_id = acc AND kind = 'deposit' AND status = 'pending' ORDER BY id LOOP
		PERFORM demo.as_service('payments-service');
		IF random() < 0.04 THEN
			UPDATE payments SET status = 'failed', updated_at = now() WHERE id = d.id;
		ELSE
			UPDATE payments SET status = 'completed', updated_at = now() WHERE id = d.id;
			UPDATE accounts SET balance = balance + d.amount, updated_at = now() WHERE id = acc;
		END IF;
		COMMIT;
	END LOOP;
END
$$;

-- A withdrawal request reserves the funds; the payments team decides later.
CREATE PROCEDURE demo.request_withdrawal(acc int, amt numeric, ip inet, device text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	INSERT INTO payments (account_id, kind, amount, method) VALUES (acc, 'withdrawal', amt, 'bank_transfer');
	UPDATE accounts SET balance = balance - amt, updated_at = now() WHERE id = acc;
	COMMIT;
END
$$;

-- an ordinary cash-out: half the balance, at most 1,500, if there is something to take
CREATE PROCEDURE demo.cash_out(acc int, ip inet, device text) LANGUAGE plpgsql AS $$
DECLARE
	bal numeric;
BEGIN
	SELECT balance INTO bal FROM accounts WHERE id = acc;
	IF bal > 100 THEN
		CALL demo.request_withdrawal(acc, least(round(bal / 2, 0), round((50 + random() * 1450)::numeric, 0)),
									 ip, device);
	END IF;
END
$$;

-- a bet: the round opens and the stake leaves the balance
CREATE PROCEDURE demo.bet(acc int, ip inet, device text, prov text) LANGUAGE plpgsql AS $$
DECLARE
	stake numeric;
BEGIN
	SELECT least(balance, round((1 + random() * 19)::numeric, 2)) INTO stake FROM accounts WHERE id = acc;
	IF stake < 1 THEN
		RETURN;			-- nothing left to bet
	END IF;
	PERFORM demo.as_player(acc, ip, device);
	INSERT INTO game_rounds (account_id, provider, game, stake)
	VALUES (acc, prov, (ARRAY['Book of Gold', 'Lucky Sevens', 'Mega Reels', 'Blackjack VIP', 'Roulette Live'])[1 + floor(random() * 5)::int], stake);
	UPDATE accounts SET balance = balance - stake, updated_at = now() WHERE id = acc;
	COMMIT;
END
$$;

-- the provider's callback for the account's open round: the result, or a
-- failure / rollback that cancels the round and gives the stake back
CREATE PROCEDURE demo.settle(acc int, prov text, fail boolean) LANGUAGE plpgsql AS $$
DECLARE
	r	game_rounds;
	win	numeric;
BEGIN
	SELECT * INTO r FROM game_rounds WHERE account_id = acc AND provider = prov AND status = 'open'
	ORDER BY id DESC LIMIT 1;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM demo.as_service('provider-gateway', jsonb_build_object('provider', prov));
	IF fail THEN
		INSERT INTO provider_callbacks (provider, round_id, account_id, amount, status, signature)
		VALUES (prov, r.id, acc, r.stake, CASE WHEN random() < 0.5 THEN 'failed' ELSE 'rollback' END, md5(random()::text));
		UPDATE game_rounds SET status = 'cancelled', settled_at = now() WHERE id = r.id;
		UPDATE accounts SET balance = balance + r.stake, updated_at = now() WHERE id = acc;
	ELSE
		win := CASE WHEN random() < 0.45 THEN round(r.stake * (0.5 + random() * 3)::numeric, 2) ELSE 0 END;
		INSERT INTO provider_callbacks (provider, round_id, account_id, amount, status, signature)
		VALUES (prov, r.id, acc, win, 'ok', md5(random()::text));
		UPDATE game_rounds SET status = 'settled', payout = win, settled_at = now() WHERE id = r.id;
		IF win > 0 THEN
			UPDATE accounts SET balance = balance + win, updated_at = now() WHERE id = acc;
		END IF;
	END IF;
	COMMIT;
END
$$;

-- ---------------------------------------------------------------------------
-- What employees do
-- ---------------------------------------------------------------------------

-- an ordinary account an employee may handle: not VIP, not a scenario's
CREATE FUNCTION demo.any_account(cond text DEFAULT 'true') RETURNS int LANGUAGE plpgsql AS $$
DECLARE
	acc int;
BEGIN
	EXECUTE 'SELECT a.id FROM accounts a JOIN demo.players p ON p.account_id = a.id
			 WHERE NOT a.vip AND NOT p.reserved AND a.status = ''active'' AND ' || cond ||
			' ORDER BY random() LIMIT 1' INTO acc;
	RETURN acc;
END
$$;

-- payments team: the oldest pending withdrawal up to 5,000 (larger ones go
-- to a senior review): paid out, or rejected and the funds given back
CREATE PROCEDURE demo.review_withdrawal(emp text) LANGUAGE plpgsql AS $$
DECLARE
	w record;
BEGIN
	SELECT id, account_id, amount INTO w FROM payments
	WHERE kind = 'withdrawal' AND status = 'pending' AND amount <= 5000 ORDER BY id LIMIT 1;
	IF NOT FOUND THEN
		RETURN;
	END IF;
	PERFORM demo.as_employee(emp, 'withdrawal review');
	IF random() < 0.92 THEN
		UPDATE payments SET status = 'completed', updated_at = now() WHERE id = w.id;
		COMMIT;
	ELSE
		UPDATE payments SET status = 'failed', updated_at = now() WHERE id = w.id;
		COMMIT;
		PERFORM demo.as_service('payments-service');
		UPDATE accounts SET balance = balance + w.amount, updated_at = now() WHERE id = w.account_id;
		COMMIT;
	END IF;
END
$$;

CREATE PROCEDURE demo.approve_withdrawal(emp text, acc int, why text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, why);
	UPDATE payments SET status = 'completed', updated_at = now()
	WHERE id = (SELECT max(id) FROM payments WHERE account_id = acc AND kind = 'withdrawal' AND status = 'pending');
	COMMIT;
END
$$;

CREATE PROCEDURE demo.kyc_upgrade(emp text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, 'KYC documents verified');
	UPDATE accounts SET kyc_level = kyc_level + 1, updated_at = now() WHERE id = demo.any_account('a.kyc_level < 3');
	COMMIT;
END
$$;

-- a manual balance adjustment: the record and the balance, in one transaction
CREATE PROCEDURE demo.adjust(emp text, acc int, amt numeric, why text, kind text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, why);
	INSERT INTO backoffice_adjustments (account_id, employee_id, amount, reason) VALUES (acc, emp, amt, kind);
	UPDATE accounts SET balance = balance + amt, updated_at = now() WHERE id = acc;
	UPDATE demo.employees SET adjusted_today = adjusted_today + amt WHERE id = emp;
	COMMIT;
END
$$;

-- support: a small goodwill credit, within the employee's daily budget
CREATE PROCEDURE demo.goodwill(emp text) LANGUAGE plpgsql AS $$
DECLARE
	amt numeric := round((10 + random() * 140)::numeric, 0);
BEGIN
	IF (SELECT adjusted_today + amt <= 1500 FROM demo.employees WHERE id = emp) THEN
		CALL demo.adjust(emp, demo.any_account(), amt,
						 'goodwill credit, ticket ' || (4000 + floor(random() * 999))::int, 'goodwill');
	END IF;
END
$$;

CREATE PROCEDURE demo.password_reset(emp text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, 'password reset requested by phone');
	UPDATE accounts SET password_hash = md5(random()::text), updated_at = now() WHERE id = demo.any_account();
	COMMIT;
END
$$;

CREATE PROCEDURE demo.change_email(emp text, acc int, email text, why text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, why);
	UPDATE accounts SET email = change_email.email, updated_at = now() WHERE id = acc;
	COMMIT;
END
$$;

CREATE PROCEDURE demo.close_stale_session(emp text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, 'stale session closed');
	UPDATE user_sessions SET status = 'closed', ended_at = now()
	WHERE id = (SELECT min(id) FROM user_sessions WHERE status = 'active' AND started_at < now() - interval '3 seconds');
	COMMIT;
END
$$;

CREATE PROCEDURE demo.suspend_account(emp text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_employee(emp, 'chargeback received');
	UPDATE accounts SET status = 'suspended', updated_at = now() WHERE id = demo.any_account();
	COMMIT;
END
$$;

-- an attacker who got in changes the password and the e-mail
CREATE PROCEDURE demo.take_over(acc int, ip inet, device text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	UPDATE accounts SET password_hash = md5(random()::text), email = 'player' || acc || '@mail-drop.example',
		   updated_at = now()
	WHERE id = acc;
	COMMIT;
END
$$;

-- a high-stake round the provider never answers
CREATE PROCEDURE demo.high_bet(acc int, ip inet, device text, prov text, stake numeric) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	INSERT INTO game_rounds (account_id, provider, game, stake) VALUES (acc, prov, 'Roulette Live', stake);
	UPDATE accounts SET balance = balance - stake, updated_at = now() WHERE id = acc;
	COMMIT;
END
$$;

-- the account's owner (or who holds the session) changes the e-mail, or the password
CREATE PROCEDURE demo.player_change(acc int, ip inet, device text, col text) LANGUAGE plpgsql AS $$
BEGIN
	PERFORM demo.as_player(acc, ip, device);
	IF col = 'email' THEN
		UPDATE accounts SET email = 'p' || acc || '@mail-drop.example', updated_at = now() WHERE id = acc;
	ELSE
		UPDATE accounts SET password_hash = md5(random()::text), updated_at = now() WHERE id = acc;
	END IF;
	COMMIT;
END
$$;

CREATE PROCEDURE demo.plant(rule text, key text, h int, what text) LANGUAGE sql AS $$
	INSERT INTO demo.planted VALUES (rule, key, h, what);
$$;

-- ---------------------------------------------------------------------------
-- Planning an hour: statements at simulated minutes
-- ---------------------------------------------------------------------------

CREATE FUNCTION demo.at(t float8, stmt text) RETURNS void LANGUAGE sql AS $$
	INSERT INTO demo.plan (t, stmt) VALUES (t, stmt);
$$;

-- an ordinary player's visit, starting at minute t
CREATE FUNCTION demo.plan_visit(acc int, t float8) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	p		demo.players;
	who		text;
	prov	text;
	fail	boolean;
BEGIN
	SELECT * INTO STRICT p FROM demo.players WHERE account_id = acc;
	who := format('%s, %L, %L', acc, p.home_ip, p.device);
	IF p.failed_logins < 2 AND random() < 0.07 THEN		-- a mistyped password
		UPDATE demo.players SET failed_logins = failed_logins + 1 WHERE account_id = acc;
		PERFORM demo.at(t, format('CALL demo.failed_login(%s)', who));
		t := t + 0.3;
	END IF;
	PERFORM demo.at(t, format('CALL demo.login(%s)', who));
	IF random() < 0.3 OR (SELECT balance < 5 FROM accounts WHERE id = acc) THEN
		t := t + 0.5 + random();
		PERFORM demo.at(t, format('CALL demo.deposit(%s, %s, %L, %L)', acc,
								  round((20 + random() * 280)::numeric, 0), p.home_ip, p.device));
		PERFORM demo.at(t + 0.2, format('CALL demo.confirm_deposits(%s)', acc));
	END IF;
	FOR i IN 1 .. 1 + floor(random() * 4)::int LOOP
		SELECT name INTO prov FROM demo.providers ORDER BY random() LIMIT 1;
		fail := false;
		IF random() < 0.015 THEN
			UPDATE demo.providers SET failures_today = failures_today + 1
			WHERE name = prov AND failures_today < 6
			RETURNING true INTO fail;
			fail := coalesce(fail, false);
		END IF;
		t := t + 0.5 + random() * 2;
		PERFORM demo.at(t, format('CALL demo.bet(%s, %L)', who, prov));
		PERFORM demo.at(t + 0.1 + random() * 0.5, format('CALL demo.settle(%s, %L, %L)', acc, prov, fail));
	END LOOP;
	t := t + 1;
	IF random() < 0.12 THEN
		PERFORM demo.at(t, format('CALL demo.cash_out(%s)', who));
	END IF;
	IF random() < 0.85 THEN			-- the others leave without logging out
		PERFORM demo.at(t + 0.5, format('CALL demo.logout(%s)', who));
	END IF;
END
$$;

-- an employee's hour
CREATE FUNCTION demo.plan_employee(e demo.employees) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	IF e.team = 'payments' THEN
		FOR i IN 1 .. least(12, (SELECT count(*) FROM payments WHERE kind = 'withdrawal' AND status = 'pending'))::int LOOP
			PERFORM demo.at(random() * 60, format('CALL demo.review_withdrawal(%L)', e.id));
		END LOOP;
	ELSIF e.team = 'kyc' THEN
		FOR i IN 1 .. 2 + floor(random() * 3)::int LOOP
			PERFORM demo.at(random() * 60, format('CALL demo.kyc_upgrade(%L)', e.id));
		END LOOP;
	ELSIF e.team = 'support' THEN
		IF random() < 0.6 THEN
			PERFORM demo.at(random() * 60, format('CALL demo.goodwill(%L)', e.id));
		END IF;
		IF random() < 0.4 THEN
			PERFORM demo.at(random() * 60, format('CALL demo.password_reset(%L)', e.id));
		END IF;
		IF random() < 0.7 THEN
			PERFORM demo.at(random() * 60, format('CALL demo.close_stale_session(%L)', e.id));
		END IF;
	ELSIF e.team = 'risk' THEN
		IF random() < 0.3 THEN
			PERFORM demo.at(random() * 60, format('CALL demo.suspend_account(%L)', e.id));
		END IF;
	END IF;
END
$$;

-- the hour's suspicious scenario, from minute 20 on: statements one after
-- the other, every 0.4 simulated minutes
CREATE FUNCTION demo.plan_scenario(h int) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
	s		text[] := '{}';
	p		record;
	acc		int;
	who		text;
BEGIN
	CASE h
	WHEN 2 THEN		-- credential stuffing: one IP tries 14 accounts, once each
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'failed_login_ip_burst', '198.51.100.66', h,
						 'credential stuffing: 198.51.100.66 tries 14 accounts once each');
		FOR acc IN 1101 .. 1114 LOOP
			s := s || format('CALL demo.failed_login(%s, %L, %L)', acc, '198.51.100.66', 'python-requests');
		END LOOP;
	WHEN 4 THEN		-- a provider outage: spinworks fails or rolls back 24 rounds in a row
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'provider_callback_failures', 'spinworks', h,
						 'provider outage: spinworks fails or rolls back 24 rounds');
		FOR p IN SELECT d.* FROM demo.players d JOIN accounts a ON a.id = d.account_id
				 WHERE NOT d.reserved AND a.status = 'active' AND NOT a.self_excluded
				 ORDER BY random() LIMIT 24 LOOP
			s := s || format('CALL demo.login(%s, %L, %L)', p.account_id, p.home_ip, p.device)
				   || format('CALL demo.bet(%s, %L, %L, %L)', p.account_id, p.home_ip, p.device, 'spinworks')
				   || format('CALL demo.settle(%s, %L, true)', p.account_id, 'spinworks')
				   || format('CALL demo.logout(%s, %L, %L)', p.account_id, p.home_ip, p.device);
		END LOOP;
	WHEN 7 THEN		-- password guessing on account 1150; the attacker gets in and takes it over
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'failed_login_burst', '1150', h,
						 'password guessing: 7 failed logins on account 1150, then a login and a new password')
			   || format('CALL demo.plant(%L, %L, %s, %L)', 'new_device_login', '1150', h,
						 'the attacker logs in to account 1150 from a device it never used');
		who := format('1150, %L, %L', '203.0.113.77', 'web');
		FOR i IN 1 .. 7 LOOP
			s := s || format('CALL demo.failed_login(%s)', who);
		END LOOP;
		s := s || format('CALL demo.login(%s)', who) || format('CALL demo.take_over(%s)', who);
	WHEN 8 THEN		-- account takeover: a login from a new device, e-mail, password, withdrawal
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'account_takeover', '1322', h,
						 'account 1322: e-mail, then password changed, then a withdrawal, from a new device')
			   || format('CALL demo.plant(%L, %L, %s, %L)', 'new_device_login', '1322', h,
						 'account 1322 logs in from a device it never used');
		who := format('1322, %L, %L', '203.0.113.90', 'tor-browser');
		s := s || format('CALL demo.login(%s)', who)
			   || format('CALL demo.player_change(%s, %L)', who, 'email')
			   || format('CALL demo.player_change(%s, %L)', who, 'password')
			   || format('CALL demo.request_withdrawal(1322, 300, %L, %L)', '203.0.113.90', 'tor-browser');
	WHEN 9 THEN		-- a withdrawal above the review limit that nobody reviews
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'stuck_withdrawal', '1320', h,
						 'account 1320 asks for 6,000; the senior review never happens');
		SELECT * INTO p FROM demo.players WHERE account_id = 1320;
		s := s || format('CALL demo.request_withdrawal(1320, 6000, %L, %L)', p.home_ip, p.device);
	WHEN 11 THEN	-- a provider that never settles a high-stake round
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'missing_settlement', '1321', h,
						 'account 1321 stakes 800 at novagames, which never settles the round');
		SELECT * INTO p FROM demo.players WHERE account_id = 1321;
		who := format('1321, %L, %L', p.home_ip, p.device);
		s := s || format('CALL demo.login(%s)', who)
			   || format('CALL demo.high_bet(%s, %L, 800)', who, 'novagames');
	WHEN 10 THEN	-- deposit velocity: 6 x 2,000 within minutes
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'deposit_velocity', '1213', h,
						 'deposit velocity: account 1213 deposits 6 x 2,000');
		SELECT * INTO p FROM demo.players WHERE account_id = 1213;
		s := s || format('CALL demo.login(1213, %L, %L)', p.home_ip, p.device);
		FOR i IN 1 .. 6 LOOP
			s := s || format('CALL demo.deposit(1213, 2000, %L, %L)', p.home_ip, p.device)
				   || 'CALL demo.confirm_deposits(1213)'::text;
		END LOOP;
		s := s || format('CALL demo.logout(1213, %L, %L)', p.home_ip, p.device);
	WHEN 13 THEN	-- an employee's many small credits, each below the per-adjustment limit
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'employee_daily_adjustments', 'emp-04', h,
						 'emp-04 credits 6 x 950 to accounts 1241, 1252, 1263 (each below the 1,000 limit)');
		FOR i IN 0 .. 5 LOOP
			s := s || format('CALL demo.adjust(%L, %s, 950, %L, %L)', 'emp-04', (ARRAY[1241, 1252, 1263])[i % 3 + 1],
							 'goodwill credit, ticket ' || 4711 + i, 'goodwill');
		END LOOP;
	WHEN 14 THEN	-- an employee changes the e-mail of a VIP account
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'vip_account_changed_by_employee', '1020', h,
						 'emp-04 changes the e-mail of VIP account 1020')
			   || format('CALL demo.change_email(%L, 1020, %L, %L)', 'emp-04', 'vip1020@fastmail-drop.example',
						 'customer called: new e-mail address');
	WHEN 16 THEN	-- multi-accounting: six accounts play from one IP
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'shared_ip', '192.0.2.150', h,
						 'multi-accounting: accounts 1301-1306 log in from 192.0.2.150');
		FOR acc IN 1301 .. 1306 LOOP
			who := format('%s, %L, %L', acc, '192.0.2.150', (SELECT device FROM demo.players WHERE account_id = acc));
			s := s || format('CALL demo.login(%s)', who) || format('CALL demo.bet(%s, %L)', who, 'luckylabs')
				   || format('CALL demo.settle(%s, %L, false)', acc, 'luckylabs') || format('CALL demo.logout(%s)', who);
		END LOOP;
	WHEN 18 THEN	-- a large manual credit
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'large_manual_adjustment', '1234', h,
						 'emp-05 credits 2,500 to account 1234')
			   || format('CALL demo.adjust(%L, 1234, 2500, %L, %L)', 'emp-05',
						 'compensation: jackpot not paid, ticket 5120', 'compensation');
	WHEN 19 THEN	-- a self-excluded player gets in and deposits
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'self_excluded_activity', '1399', h,
						 'self-excluded account 1399 logs in and deposits 200');
		SELECT * INTO p FROM demo.players WHERE account_id = 1399;
		who := format('1399, %L, %L', p.home_ip, p.device);
		s := s || format('CALL demo.login(%s)', who)
			   || format('CALL demo.deposit(1399, 200, %L, %L)', p.home_ip, p.device)
			   || 'CALL demo.confirm_deposits(1399)'::text
			   || format('CALL demo.bet(%s, %L)', who, 'reelforge')
			   || format('CALL demo.settle(1399, %L, false)', 'reelforge')
			   || format('CALL demo.logout(%s)', who);
	WHEN 21 THEN	-- a large withdrawal, approved in a senior review
		s := s || format('CALL demo.plant(%L, %L, %s, %L)', 'large_withdrawal', '1077', h,
						 'account 1077 withdraws 7,500, approved by emp-02');
		SELECT * INTO p FROM demo.players WHERE account_id = 1077;
		who := format('1077, %L, %L', p.home_ip, p.device);
		s := s || format('CALL demo.login(%s)', who)
			   || format('CALL demo.request_withdrawal(1077, 7500, %L, %L)', p.home_ip, p.device)
			   || format('CALL demo.logout(%s)', who)
			   || format('CALL demo.approve_withdrawal(%L, 1077, %L)', 'emp-02',
						 'senior withdrawal review: source of funds checked');
	ELSE
		NULL;
	END CASE;
	FOR i IN 1 .. coalesce(array_length(s, 1), 0) LOOP
		PERFORM demo.at(20 + i * 0.4, s[i]);
	END LOOP;
END
$$;

-- One hour of the day: ordinary visits (more in the evening; a player at most
-- once an hour), the back office's tasks and the hour's scenario, in the
-- order of the simulated clock.
CREATE FUNCTION demo.hour_plan(h int) RETURNS SETOF text LANGUAGE plpgsql AS $$
DECLARE
	visits	int := (ARRAY[20, 14, 9, 8, 8, 9, 15, 24, 33, 39, 42, 45, 48, 48, 51, 54, 60, 69, 81, 90, 93, 84, 63, 39])[h + 1];
	acc		int;
	e		demo.employees;
BEGIN
	PERFORM setseed(h / 24.0);
	TRUNCATE demo.plan;
	FOR acc IN SELECT a.id FROM accounts a JOIN demo.players p ON p.account_id = a.id
			   WHERE a.status = 'active' AND NOT a.self_excluded AND NOT p.reserved
			   ORDER BY random() LIMIT visits LOOP
		PERFORM demo.plan_visit(acc, random() * 55);
	END LOOP;
	FOR e IN SELECT * FROM demo.employees WHERE h >= shift_from AND h < shift_to ORDER BY id LOOP
		PERFORM demo.plan_employee(e);
	END LOOP;
	PERFORM demo.plan_scenario(h);
	RETURN QUERY SELECT stmt FROM demo.plan ORDER BY t, seq;
END
$$;
