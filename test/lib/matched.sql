-- pg_temp.match(matched, rule id): one rule's entry of an event's "matched"
-- document as {"k": group key, "v": measure}, read in SQL, apart from the C
-- reader (src/rules.c, am_matched_entry): the compact form of 0.2.0
-- ({"k": shared key, "id": measure or [key, measure]}) and 0.1.0's
-- ({"id": {"k": key, "v": measure}}).  NULL when the rule did not match.
-- Included by the pgTAP files with \ir ../lib/matched.sql.
CREATE FUNCTION pg_temp.match(m jsonb, id text) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE
		WHEN NOT m ? id THEN NULL
		WHEN NOT m ? 'k' THEN m -> id
		WHEN jsonb_typeof(m -> id) = 'array' THEN jsonb_build_object('k', m -> id -> 0, 'v', m -> id -> 1)
		ELSE jsonb_build_object('k', m -> 'k', 'v', m -> id)
	END
$$;
