/*
 * The vocabularies, each defined once: IMMUTABLE functions returning the
 * list, used wherever a value must be one of them (CHECK constraints, the
 * checks of track() and create_rule(), the views).  Before the tables: a
 * CHECK constraint names them.
 *
 * Functions rather than tables: an IMMUTABLE function with no argument is
 * folded into a constant when a query is planned, so a view or the rollup
 * pays nothing per row; a CHECK constraint can call it (it cannot read a
 * table); there is no data to dump, restore or let drift; and a list
 * changes only with an extension update, like the code that relies on it.
 * (The actor types live in C, src/actor.c: the activity_monitor.actor_type
 * setting checks its value where no SQL can run.)
 */

/* The kinds of activity a tracked table records (README, "Tracking tables"). */
CREATE FUNCTION activity_monitor._kinds()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT '{login,profile,payment,game,provider,admin,system}'::text[]
$fn$;

/*
 * The statuses of a row of a login-kind table that end its session (see
 * the view _activity_sessions for everything that ends one).
 */
CREATE FUNCTION activity_monitor._session_end_statuses()
RETURNS text[]
LANGUAGE sql IMMUTABLE PARALLEL SAFE
SET search_path = pg_catalog, pg_temp
AS $fn$
	SELECT '{closed,ended,logged_out,expired,revoked,failed}'::text[]
$fn$;
