-- activity_monitor demo: a small online gaming platform, and how it is tracked.
--
-- The platform's own tables live in "public"; the simulator (simulate.sql)
-- lives in "demo".  Run in a fresh database as a superuser.

CREATE EXTENSION activity_monitor;

-- Players.  password_hash is recorded as "[redacted]" when it changes;
-- updated_at (touched on every write) is not recorded at all.
CREATE TABLE accounts (
	id				int PRIMARY KEY,
	username		text NOT NULL UNIQUE,
	email			text NOT NULL,
	country			text NOT NULL,
	status			text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'closed')),
	balance			numeric(12,2) NOT NULL DEFAULT 0,
	kyc_level		int NOT NULL DEFAULT 0 CHECK (kyc_level BETWEEN 0 AND 3),
	vip				boolean NOT NULL DEFAULT false,
	self_excluded	boolean NOT NULL DEFAULT false,	-- responsible gaming: the player asked to be kept out
	password_hash	text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);

-- Deposits and withdrawals.  A withdrawal reserves the funds when it is
-- requested; the payments team approves it (completed) or rejects it (failed,
-- the funds go back).
CREATE TABLE payments (
	id				bigserial PRIMARY KEY,
	account_id		int NOT NULL REFERENCES accounts,
	kind			text NOT NULL CHECK (kind IN ('deposit', 'withdrawal')),
	amount			numeric(12,2) NOT NULL CHECK (amount > 0),
	method			text NOT NULL,
	status			text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'completed', 'failed', 'refunded')),
	self_excluded	boolean NOT NULL DEFAULT false,	-- the account's flag when the payment was made
	created_at		timestamptz NOT NULL DEFAULT now(),
	updated_at		timestamptz NOT NULL DEFAULT now()
);

-- Logins (status active, closed at logout) and failed login attempts (failed).
CREATE TABLE user_sessions (
	id				bigserial PRIMARY KEY,
	account_id		int NOT NULL REFERENCES accounts,
	ip				inet NOT NULL,
	device			text NOT NULL,
	status			text NOT NULL CHECK (status IN ('active', 'closed', 'failed')),
	session_token	text,
	self_excluded	boolean NOT NULL DEFAULT false,	-- the account's flag when the session started
	started_at		timestamptz NOT NULL DEFAULT now(),
	last_seen_at	timestamptz,
	ended_at		timestamptz
);

CREATE TABLE game_rounds (
	id				bigserial PRIMARY KEY,
	account_id		int NOT NULL REFERENCES accounts,
	provider		text NOT NULL,
	game			text NOT NULL,
	stake			numeric(10,2) NOT NULL,
	payout			numeric(10,2),
	status			text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'settled', 'cancelled')),
	started_at		timestamptz NOT NULL DEFAULT now(),
	settled_at		timestamptz
);

-- What the game providers tell the platform about each round.
CREATE TABLE provider_callbacks (
	id				bigserial PRIMARY KEY,
	provider		text NOT NULL,
	round_id		bigint REFERENCES game_rounds,
	account_id		int REFERENCES accounts,
	amount			numeric(10,2),
	status			text NOT NULL CHECK (status IN ('ok', 'failed', 'rollback')),
	signature		text NOT NULL,
	received_at		timestamptz NOT NULL DEFAULT now()
);

-- Manual balance corrections made by employees in the back office.
CREATE TABLE backoffice_adjustments (
	id				bigserial PRIMARY KEY,
	account_id		int NOT NULL REFERENCES accounts,
	employee_id		text NOT NULL,
	amount			numeric(12,2) NOT NULL,
	reason			text NOT NULL,
	created_at		timestamptz NOT NULL DEFAULT now()
);

-- The platform stamps each login and payment with the account's
-- self-exclusion flag, so that a rule can see it on the event itself (a rule
-- sees one event: the written row, old and new).
CREATE FUNCTION stamp_self_exclusion() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	NEW.self_excluded := coalesce((SELECT a.self_excluded FROM accounts a WHERE a.id = NEW.account_id), false);
	RETURN NEW;
END
$$;
CREATE TRIGGER stamp_self_exclusion BEFORE INSERT ON user_sessions
	FOR EACH ROW EXECUTE FUNCTION stamp_self_exclusion();
CREATE TRIGGER stamp_self_exclusion BEFORE INSERT ON payments
	FOR EACH ROW EXECUTE FUNCTION stamp_self_exclusion();

-- The players the platform already has when monitoring is switched on (not
-- recorded: capture starts with track() below).  Every 20th account is VIP;
-- three players have excluded themselves.
INSERT INTO accounts (id, username, email, country, balance, kyc_level, vip, self_excluded, password_hash)
SELECT i, 'player' || i, 'player' || i || '@mail.example',
	   (ARRAY['DE', 'SE', 'FI', 'MT', 'IE', 'NL', 'PT', 'EE'])[i % 8 + 1],
	   CASE WHEN i = 1077 THEN 9500 ELSE 20 + (i * 37) % 480 END,
	   i % 4, i % 20 = 0, i IN (1187, 1333, 1399), md5('secret' || i)
FROM generate_series(1001, 1400) i;

-- What activity_monitor records, table by table.  critical_statuses: the
-- status transitions compliance reviews (an account suspended or closed, a
-- payment failed or refunded, a round cancelled); routine ones (a payment
-- completing, a logout, a round settling) are recorded, not flagged critical.
SELECT activity_monitor.track('public.accounts', kind => 'profile',
		subject_column => 'id', status_column => 'status',
		critical_columns => '{kyc_level,vip,self_excluded,email}',
		ignore_columns => '{updated_at}', redact_columns => '{password_hash}',
		critical_statuses => '{suspended,closed}');
SELECT activity_monitor.track('public.payments', kind => 'payment',
		subject_column => 'account_id', status_column => 'status',
		critical_columns => '{amount}', ignore_columns => '{updated_at}',
		critical_statuses => '{failed,refunded}');
SELECT activity_monitor.track('public.user_sessions', kind => 'login',
		subject_column => 'account_id', status_column => 'status',
		ignore_columns => '{last_seen_at}', redact_columns => '{session_token}');
SELECT activity_monitor.track('public.game_rounds', kind => 'game',
		subject_column => 'account_id', status_column => 'status',
		critical_statuses => '{cancelled}');
SELECT activity_monitor.track('public.provider_callbacks', kind => 'provider',
		subject_column => 'account_id', status_column => 'status',
		redact_columns => '{signature}', critical_statuses => '{failed,rollback}');
SELECT activity_monitor.track('public.backoffice_adjustments', kind => 'admin',
		subject_column => 'account_id', critical_columns => '{amount}');

-- Each player's last session before today, from their usual IP and device
-- (captured: the first-seen rule of the pack backfills them as history).
INSERT INTO user_sessions (account_id, ip, device, status, started_at, ended_at)
SELECT a.id, ('10.20.' || (a.id / 2) / 100 || '.' || (a.id / 2) % 100)::inet,
	   (ARRAY['ios', 'android', 'web'])[a.id % 3 + 1], 'closed',
	   now() - interval '1 day', now() - interval '23 hours'
FROM accounts a;
