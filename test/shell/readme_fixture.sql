-- Fixture for test/shell/readme_examples.sh: the platform tables and roles the
-- README's SQL examples refer to.  Runs in a fresh database before the first
-- example (the extension is not installed yet when README creates it).

-- Cluster-wide roles granted in "Installing into an existing server"; the
-- test drops them at the end only if it created them.
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'dba_team') THEN
		CREATE ROLE dba_team NOLOGIN;
	END IF;
END
$$;
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'backoffice_app') THEN
		CREATE ROLE backoffice_app NOLOGIN;
	END IF;
END
$$;
DO $$
BEGIN
	IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'security_team') THEN
		CREATE ROLE security_team NOLOGIN;
	END IF;
END
$$;

CREATE TABLE public.accounts (
	id            bigint PRIMARY KEY,
	status        text NOT NULL DEFAULT 'active',
	balance       numeric(12,2) NOT NULL DEFAULT 0,
	kyc_level     int NOT NULL DEFAULT 0,
	password_hash text,
	updated_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.payments (
	id         bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES public.accounts,
	status     text NOT NULL DEFAULT 'pending',
	amount     numeric(12,2) NOT NULL,
	kind       text NOT NULL
);

CREATE TABLE public.user_sessions (
	id         bigserial PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES public.accounts,
	status     text NOT NULL DEFAULT 'active',
	ip         inet
);

-- The account the examples name (id 1001, subject '1001').
INSERT INTO public.accounts (id, status, balance, kyc_level, password_hash)
VALUES (1001, 'active', 100, 1, 'x'), (1002, 'active', 0, 0, 'y');
