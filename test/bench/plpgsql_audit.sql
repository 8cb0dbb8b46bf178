-- The in-repo PL/pgSQL reference audit trigger (used by variant_plpgsql.sql
-- and micro.sh): supa_audit's shape -- one table of full old and new rows as
-- jsonb with table, op, txid and session user, a BRIN index on the time and
-- a btree on the table -- without supa_audit's per-row catalog look-up of
-- the primary key.  SECURITY DEFINER as in supa_audit; no SET search_path
-- (a per-call GUC save and restore would handicap the reference).  Attach it with
--   CREATE TRIGGER ... AFTER INSERT OR UPDATE OR DELETE ON t
--       FOR EACH ROW EXECUTE FUNCTION audit.insert_update_delete_trigger();
CREATE SCHEMA audit;

CREATE TABLE audit.record_version (
	id				bigserial PRIMARY KEY,
	op				text NOT NULL,
	ts				timestamptz NOT NULL DEFAULT now(),
	table_oid		oid NOT NULL,
	table_schema	name NOT NULL,
	table_name		name NOT NULL,
	txid			bigint NOT NULL DEFAULT txid_current(),
	session_user_name name NOT NULL DEFAULT session_user,
	record			jsonb,
	old_record		jsonb
);
CREATE INDEX record_version_ts ON audit.record_version USING brin (ts);
CREATE INDEX record_version_table_oid ON audit.record_version (table_oid);

CREATE FUNCTION audit.insert_update_delete_trigger()
RETURNS trigger
LANGUAGE plpgsql
SECURITY DEFINER
AS $fn$
BEGIN
	INSERT INTO audit.record_version (op, table_oid, table_schema, table_name, record, old_record)
	VALUES (TG_OP, TG_RELID, TG_TABLE_SCHEMA, TG_TABLE_NAME,
			CASE WHEN TG_OP <> 'DELETE' THEN to_jsonb(NEW) END,
			CASE WHEN TG_OP <> 'INSERT' THEN to_jsonb(OLD) END);
	RETURN NULL;
END
$fn$;
