-- Variant "none": no capture, the baseline every other variant is divided by.
-- records: nothing
-- requires:
CREATE FUNCTION bench_capture_stats(OUT bytes bigint, OUT changes bigint)
LANGUAGE sql AS $$ SELECT 0::bigint, 0::bigint $$;
