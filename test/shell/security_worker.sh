#!/usr/bin/env bash
# The worker (a superuser) cannot be used as a ladder by a database owner
# who is not a superuser (issue 10), nor be stopped by one:
#   - operator shadowing: the owner sets the database's search_path to
#     "public, pg_catalog" and plants, in public, operators (and functions)
#     the worker's SQL would use, each of which runs ALTER ROLE ... SUPERUSER
#     when a superuser calls it.  The worker works (partitions, alerts) and
#     nobody's privileges change;
#   - the owner sets default_transaction_read_only, statement_timeout,
#     lock_timeout, role (to the owner), exit_on_error and planner switches
#     on the database: the worker still runs as the superuser, writes its
#     alerts and survives its own caught errors;
#   - schema squatting: the owner pre-creates the schema activity_monitor
#     (empty, or with a planted function), then a superuser runs CREATE
#     EXTENSION: it is refused (42501, with a hint) and changes nothing; a
#     non-empty schema of the superuser's own is refused too (55000); an
#     empty one of the superuser's own is used.
# Every role's attributes and memberships are compared before and after.
set -euo pipefail
db=am_sec_worker
. "$AM_ROOT/test/lib/shell.sh"
squat=am_sec_squat
cleanup() {
	psql -X -q -d postgres -c "SET client_min_messages = warning" \
		-c "DROP DATABASE IF EXISTS $db WITH (FORCE)" -c "DROP DATABASE IF EXISTS $squat WITH (FORCE)" \
		-c "DROP ROLE IF EXISTS am_mallory" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup
# every role's attributes and memberships (but the memberships among the
# extension's roles, which CREATE EXTENSION makes)
roles() {
	psql -X -At -d postgres -c "SELECT string_agg(format('%s:%s%s%s%s%s', rolname, rolsuper, rolcreaterole,
		rolcreatedb, rolreplication, rolbypassrls), ' ' ORDER BY rolname) FROM pg_roles
		WHERE rolname NOT LIKE 'activity\_monitor\_%' OR rolsuper OR rolcreaterole OR rolcreatedb OR rolreplication OR rolbypassrls" \
		-c "SELECT string_agg(format('%s>%s', roleid::regrole, member::regrole), ' ' ORDER BY 1) FROM pg_auth_members
		WHERE member::regrole::text NOT LIKE 'activity\_monitor\_%'"
}
psql -X -q -d postgres -v ON_ERROR_STOP=1 -c "CREATE ROLE am_mallory LOGIN" \
	-c "CREATE DATABASE $db OWNER am_mallory" -c "CREATE DATABASE $squat OWNER am_mallory" >/dev/null
before=$(roles)

echo "# operator shadowing by the database owner"
psql -X -q -v ON_ERROR_STOP=1 -d "$db" -U am_mallory <<'SQL' >/dev/null
ALTER DATABASE am_sec_worker SET search_path = public, pg_catalog;
ALTER DATABASE am_sec_worker SET default_transaction_read_only = on;
ALTER DATABASE am_sec_worker SET statement_timeout = '1ms';
ALTER DATABASE am_sec_worker SET lock_timeout = '1ms';
ALTER DATABASE am_sec_worker SET role = 'am_mallory';
ALTER DATABASE am_sec_worker SET session_authorization = 'am_mallory';
ALTER DATABASE am_sec_worker SET exit_on_error = on;
ALTER DATABASE am_sec_worker SET enable_indexscan = off;
SET default_transaction_read_only = off;
-- climb(): when a superuser runs it, make am_mallory a superuser
CREATE FUNCTION public.climb() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
	RAISE LOG 'climb() called by % in % (%)', current_user, pg_catalog.current_setting('application_name'), pg_catalog.current_query();
	IF (SELECT rolsuper FROM pg_catalog.pg_roles WHERE rolname = current_user) THEN
		EXECUTE 'ALTER ROLE am_mallory SUPERUSER';
	END IF;
END $$;
CREATE FUNCTION public.pl(a int, b int) RETURNS int LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.+) b; END $$;
CREATE FUNCTION public.pl(a bigint, b int) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.+) b; END $$;
CREATE FUNCTION public.pl(a bigint, b bigint) RETURNS bigint LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.+) b; END $$;
CREATE FUNCTION public.eq(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION public.eq(a text, b text) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.=) b; END $$;
CREATE FUNCTION public.gt(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.>) b; END $$;
CREATE FUNCTION public.ge(a timestamptz, b timestamptz) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.>=) b; END $$;
CREATE FUNCTION public.mi(a timestamptz, b interval) RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.-) b; END $$;
CREATE FUNCTION public.lt(a bigint, b bigint) RETURNS boolean LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN a OPERATOR(pg_catalog.<) b; END $$;
CREATE OPERATOR public.+ (LEFTARG = int, RIGHTARG = int, FUNCTION = public.pl);
CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = int, FUNCTION = public.pl);
CREATE OPERATOR public.+ (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.pl);
CREATE OPERATOR public.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.eq);
CREATE OPERATOR public.= (LEFTARG = text, RIGHTARG = text, FUNCTION = public.eq);
CREATE OPERATOR public.> (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.gt);
CREATE OPERATOR public.>= (LEFTARG = timestamptz, RIGHTARG = timestamptz, FUNCTION = public.ge);
CREATE OPERATOR public.- (LEFTARG = timestamptz, RIGHTARG = interval, FUNCTION = public.mi);
CREATE OPERATOR public.< (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = public.lt);
-- functions the worker's SQL might call unqualified
CREATE FUNCTION public.now() RETURNS timestamptz LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN pg_catalog.now(); END $$;
CREATE FUNCTION public.format(text, int, int) RETURNS text LANGUAGE plpgsql AS $$ BEGIN PERFORM public.climb(); RETURN $1; END $$;
SQL
# This test's own sessions (superuser, most of them) must not take the
# owner's settings themselves: that hazard is PostgreSQL's, not the worker's.
export PGOPTIONS="-c search_path=pg_catalog -c default_transaction_read_only=off -c statement_timeout=0 -c lock_timeout=0 -c role=none -c session_authorization=postgres -c exit_on_error=off"
# the superuser installs the extension (the worker starts at commit), tracks
# a table of the owner's and a rule: every duty of the worker runs
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE public.pay (id int PRIMARY KEY, account int, amount numeric);
SELECT activity_monitor.track('public.pay', 'payment', subject_column => 'account');
SELECT activity_monitor.create_rule('big', '$.new.amount > 100');
SELECT activity_monitor.create_rule('burst', '$.action == "insert"', within => '1 hour', threshold => 2);
SQL
qw() { psql -X -At -v ON_ERROR_STOP=1 -d "$db" -c "$1"; }
qw "INSERT INTO public.pay SELECT g, g % 3, g * 50 FROM generate_series(1, 12) g" >/dev/null
am_wait_for 30 "$db" "SELECT (SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'big') = 10
	AND (SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'burst') = 3
	AND (SELECT last_result LIKE 'created%' FROM activity_monitor.worker_state)" ||
	fail "the worker did not alert and maintain under the owner's settings: $(qw "SELECT count(*) FROM activity_monitor.alerts")"
echo "  worker alerted (13 alerts) and maintained partitions under a read-only, 1 ms-timeout, hostile search_path"
# a restart of the worker runs its start-up SQL again
qw "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE backend_type = 'activity_monitor worker' AND datname = '$db'" >/dev/null
am_wait_for 30 "$db" "SELECT starts = 2 FROM activity_monitor.worker_state" || fail "the worker did not come back after pg_terminate_backend"
qw "INSERT INTO public.pay VALUES (100, 9, 1000)" >/dev/null
am_wait_for 30 "$db" "SELECT count(*) = 11 FROM activity_monitor.alerts WHERE rule_name = 'big'" || fail "no alert after the restart"
# (pg_stat_activity.usename shows the role the database's setting gave the
# worker at connect; that it acts as the superuser shows in its work: every
# function it calls is the superuser's alone)
# a duty that fails (caught, recorded) must not end the worker (exit_on_error)
qw "ALTER SYSTEM SET activity_monitor.naptime = 1" >/dev/null
qw "SELECT pg_reload_conf()" >/dev/null
qw "UPDATE activity_monitor.config SET partition_interval = '0'" >/dev/null
am_wait_for 30 "$db" "SELECT last_error LIKE 'partition maintenance:%' FROM activity_monitor.worker_state" ||
	fail "the failing duty was not recorded"
sleep 3
[ "$(qw "SELECT starts FROM activity_monitor.worker_state")" = 2 ] || fail "the worker restarted after a caught error (exit_on_error)"
qw "UPDATE activity_monitor.config SET partition_interval = '1 day'" >/dev/null
qw "ALTER SYSTEM RESET activity_monitor.naptime" >/dev/null
qw "SELECT pg_reload_conf()" >/dev/null
echo "  the worker, set to role and session_authorization am_mallory, works as the superuser and survives a caught error"
[ "$(psql -X -At -d postgres -c "SELECT rolsuper FROM pg_roles WHERE rolname = 'am_mallory'")" = f ] ||
	fail "the database owner became a superuser through the worker"
echo "  am_mallory is still not a superuser"

echo "# schema squatting"
unset PGOPTIONS
psql -X -q -v ON_ERROR_STOP=1 -d "$squat" -U am_mallory <<'SQL' >/dev/null
CREATE SCHEMA activity_monitor;
GRANT USAGE, CREATE ON SCHEMA activity_monitor TO PUBLIC;
CREATE FUNCTION activity_monitor._maintain() RETURNS void LANGUAGE sql AS 'ALTER ROLE am_mallory SUPERUSER';
SQL
out=$(psql -X -q -d "$squat" -v VERBOSITY=verbose -c "CREATE EXTENSION activity_monitor" 2>&1 || true)
grep -q 'ERROR:  42501: schema "activity_monitor" already exists and is owned by role "am_mallory"' <<<"$out" ||
	fail "CREATE EXTENSION adopted the owner's schema: $out"
grep -q "HINT:  Drop or rename that schema" <<<"$out" || fail "no hint: $out"
[ "$(psql -X -At -d "$squat" -c "SELECT count(*) FROM pg_extension WHERE extname = 'activity_monitor'")" = 0 ] ||
	fail "the extension was created"
echo "  refused: schema owned by the database owner"
# the owner's schema, empty: still refused
psql -X -q -v ON_ERROR_STOP=1 -d "$squat" -U am_mallory -c "DROP FUNCTION activity_monitor._maintain()" >/dev/null
out=$(psql -X -q -d "$squat" -v VERBOSITY=verbose -c "CREATE EXTENSION activity_monitor" 2>&1 || true)
grep -q "ERROR:  42501: schema" <<<"$out" || fail "an empty schema of the owner's was adopted: $out"
# the superuser's own schema holding something: refused
psql -X -q -v ON_ERROR_STOP=1 -d "$squat" -c "DROP SCHEMA activity_monitor" -c "CREATE SCHEMA activity_monitor" \
	-c "CREATE TABLE activity_monitor.leftover (x int)" >/dev/null
out=$(psql -X -q -d "$squat" -v VERBOSITY=verbose -c "CREATE EXTENSION activity_monitor" 2>&1 || true)
grep -q 'ERROR:  55000: schema "activity_monitor" already exists and is not empty' <<<"$out" ||
	fail "a non-empty schema was adopted: $out"
echo "  refused: a non-empty schema"
# the superuser's own, empty: used
psql -X -q -v ON_ERROR_STOP=1 -d "$squat" -c "DROP TABLE activity_monitor.leftover" -c "CREATE EXTENSION activity_monitor" >/dev/null ||
	fail "an empty schema of the installing superuser's was refused"
echo "  accepted: an empty schema of the installing role"

after=$(roles)
[ "$before" = "$after" ] || { echo "before: $before"; echo "after:  $after"; fail "roles changed"; }
echo "ok: every role's attributes and memberships unchanged"
