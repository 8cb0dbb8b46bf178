/*-------------------------------------------------------------------------
 *
 * audit.c
 *	  The audit of the auditors: every change to the monitoring is itself
 *	  an activity event, written in the transaction that makes the change.
 *
 * The extension's functions that change what is captured, kept or alerted
 * on (track, untrack, configure, a manual maintain, the rule functions,
 * acknowledge, resolve, start_worker) call _record_admin() as their last
 * step, and the DDL guard (guard.c) calls am_record_admin() for each
 * capture-trigger DDL it lets an admin run.  The event is an activity row
 * like a captured one, written by the sink (sink.c) with the actor columns
 * of am_fill_actor(): kind "admin", action the function (or "ddl"),
 * table_name the object concerned, row_key what in it (a table, a rule, an
 * alert), old_values what was there before where the function knows it,
 * new_values the arguments, critical true, and db_user the session user (the
 * functions are SECURITY DEFINER: the current user is their owner).  The
 * role the session had SET, if another, is in new_values.role, and the role
 * that logged in, if a superuser's SET SESSION AUTHORIZATION made the
 * session another, in new_values.authenticated_user.  Only the alert rules
 * that name kind "admin" in their kinds and have no tables list apply to it
 * (a rule for every kind is not meant for them, and it belongs to no
 * tracked table), so that a rule can fire when someone disables a rule.
 * Nothing is recorded while this extension's own script runs (CREATE or
 * ALTER EXTENSION activity_monitor), nor on a standby, where nothing is
 * written; a read-only transaction cannot change the monitoring.  The
 * worker seals these events with the others (seal.c).
 *
 * IDENTIFICATION
 *	  src/audit.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/xact.h"
#include "access/xlog.h"
#include "commands/extension.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(activity_monitor_record_admin);

/* Push "key": the name of role. */
static void
push_role(JsonbParseState **state, const char *key, Oid role)
{
	JsonbValue	v;
	char	   *name = GetUserNameFromId(role, false);

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	v.val.string.val = name;
	v.val.string.len = strlen(name);
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * new_values with "role": the role the session had SET, when it is not the
 * session user (so that an admin acting through SET ROLE is named too), and
 * "authenticated_user": the role that logged in, when a superuser's SET
 * SESSION AUTHORIZATION made the session user another.
 */
static Datum
with_roles(Datum new_values)
{
	Oid			outer = GetOuterUserId();
	Oid			session = GetSessionUserId();
	Oid			authenticated = GetAuthenticatedUserId();
	JsonbParseState *state = NULL;
	JsonbValue *res;

	if (outer == session && authenticated == session)
		return new_values;
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	if (outer != session)
		push_role(&state, "role", outer);
	if (authenticated != session)
		push_role(&state, "authenticated_user", authenticated);
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	if (new_values == (Datum) 0)
		return JsonbPGetDatum(JsonbValueToJsonb(res));
	/* the arguments win: a function whose argument is named role keeps it */
	return DirectFunctionCall2(jsonb_concat, JsonbPGetDatum(JsonbValueToJsonb(res)),
							   new_values);
}

/*
 * Write one admin event: object (table_name), action, row_key (NULL for
 * none), old_values and new_values (jsonb, 0 for none).
 */
void
am_record_admin(const char *object, const char *action, const char *row_key,
				Datum old_values, Datum new_values)
{
	Datum		values[AC_NUM_COLUMNS];
	bool		nulls[AC_NUM_COLUMNS];
	AmRule	  **rules;
	int			nrules;
	int			n = 0;

	if (creating_extension && CurrentExtensionObject == get_extension_oid("activity_monitor", true))
		return;
	if (RecoveryInProgress())
		return;
	if (XactReadOnly)
		ereport(ERROR,
				(errcode(ERRCODE_READ_ONLY_SQL_TRANSACTION),
				 errmsg("cannot change the monitoring in a read-only transaction"),
				 errdetail("Every change to the monitoring is recorded as an event (%s %s).",
						   action, object)));

	memset(nulls, true, sizeof(nulls));
	values[AC_OCCURRED_AT] = TimestampTzGetDatum(GetCurrentTimestamp());
	nulls[AC_OCCURRED_AT] = false;
	values[AC_KIND] = CStringGetTextDatum("admin");
	nulls[AC_KIND] = false;
	values[AC_ACTION] = CStringGetTextDatum(action);
	nulls[AC_ACTION] = false;
	values[AC_TABLE_NAME] = CStringGetTextDatum(object);
	nulls[AC_TABLE_NAME] = false;
	if (row_key != NULL)
	{
		values[AC_ROW_KEY] = CStringGetTextDatum(row_key);
		nulls[AC_ROW_KEY] = false;
	}
	values[AC_CRITICAL] = BoolGetDatum(true);
	nulls[AC_CRITICAL] = false;
	if (old_values != (Datum) 0)
	{
		values[AC_OLD_VALUES] = old_values;
		nulls[AC_OLD_VALUES] = false;
	}
	values[AC_NEW_VALUES] = with_roles(new_values);
	nulls[AC_NEW_VALUES] = values[AC_NEW_VALUES] == (Datum) 0;

	am_fill_actor(values, nulls);
	values[AC_DB_USER] = CStringGetTextDatum(GetUserNameFromId(GetSessionUserId(), false));
	if (!nulls[AC_ACTOR_ID])
		values[AC_ACTOR_ID] = am_indexable_text(values[AC_ACTOR_ID]);
	values[AC_ID] = Int64GetDatum(am_sink_next_id());
	nulls[AC_ID] = false;

	/* the rules that name kind admin, with no tables list */
	nrules = am_rules_applicable(InvalidOid, "admin", &rules, CurrentMemoryContext);
	for (int i = 0; i < nrules; i++)
		if (rules[i]->kinds != NULL && rules[i]->tables == NULL)
			rules[n++] = rules[i];
	nrules = n;
	if (nrules > 0)
	{
		AmEventRows rows;

		rows.old_row = old_values;
		rows.new_row = new_values;
		rows.nchanged = 0;
		rows.changed = NULL;
		rows.source = NULL;
		if (am_rules_evaluate(rules, nrules, am_event_document(values, nulls, &rows),
							  values, nulls))
			am_wake_at_commit();
	}
	am_sink_insert(values, nulls);
}

/*
 * activity_monitor._record_admin(object text, action text, row_key text,
 * old_values jsonb, new_values jsonb): am_record_admin() for the
 * extension's SQL functions.  Only they may call it (60_grants.sql): an
 * admin event is evidence, not something a role writes at will.
 */
Datum
activity_monitor_record_admin(PG_FUNCTION_ARGS)
{
	if (PG_ARGISNULL(0) || PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("object and action must not be null")));
	am_record_admin(text_to_cstring(PG_GETARG_TEXT_PP(0)),
					text_to_cstring(PG_GETARG_TEXT_PP(1)),
					PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)),
					PG_ARGISNULL(3) ? (Datum) 0 : PG_GETARG_DATUM(3),
					PG_ARGISNULL(4) ? (Datum) 0 : PG_GETARG_DATUM(4));
	PG_RETURN_VOID();
}
