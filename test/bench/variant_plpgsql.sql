-- Variant "plpgsql": the in-repo reference, a PL/pgSQL jsonb audit trigger
-- in supa_audit's shape (one table of full old and new rows as jsonb) but
-- without supa_audit's per-row catalog look-up of the primary key: what a
-- careful DBA would write by hand.
-- records: full old and new row (jsonb), table, op, txid, session user
-- requires: plpgsql
-- preload: audit
\ir plpgsql_audit.sql

CREATE TRIGGER audit_i_u_d AFTER INSERT OR UPDATE OR DELETE ON accounts
	FOR EACH ROW EXECUTE FUNCTION audit.insert_update_delete_trigger();
CREATE TRIGGER audit_i_u_d AFTER INSERT OR UPDATE OR DELETE ON payments
	FOR EACH ROW EXECUTE FUNCTION audit.insert_update_delete_trigger();
CREATE TRIGGER audit_i_u_d AFTER INSERT OR UPDATE OR DELETE ON user_sessions
	FOR EACH ROW EXECUTE FUNCTION audit.insert_update_delete_trigger();

CREATE FUNCTION bench_capture_stats(OUT bytes bigint, OUT changes bigint)
LANGUAGE sql AS $$
	SELECT pg_total_relation_size('audit.record_version'),
		   (SELECT count(*) FROM audit.record_version)
$$;
