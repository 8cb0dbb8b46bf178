-- pgbench transaction of the capture benchmark (pgbench -M simple -n -f):
-- a payment inserted as pending, then completed, the account balance
-- moved, and one time in five a login session opened: 3.2 tracked row
-- changes per transaction on average.
\set aid random(1, 10000)
\set cents random(100, 50000)
\set login random(1, 5)
BEGIN;
INSERT INTO payments (account_id, amount, currency, status) VALUES (:aid, :cents / 100.0, 'EUR', 'pending') RETURNING id AS pid \gset
UPDATE payments SET status = 'completed', updated_at = now() WHERE id = :pid;
UPDATE accounts SET balance = balance + :cents / 100.0, updated_at = now() WHERE id = :aid;
\if :login = 1
INSERT INTO user_sessions (account_id, ip, status) VALUES (:aid, '10.1.0.0'::inet + :aid, 'active');
\endif
END;
