/*-------------------------------------------------------------------------
 *
 * actor.c
 *	  Who acts: the actor settings, set_actor(), and the session facts
 *	  (database user, application, client address) each event carries.
 *
 * The actor lives in four settings (activity_monitor.actor_type, _id,
 * _reason, _context) so that SET LOCAL works from any client and a pooled
 * connection forgets it at transaction end.  Reading them per row costs a
 * pointer read; the context's jsonb is parsed once per distinct string.
 *
 * IDENTIFICATION
 *	  src/actor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/xact.h"
#include "common/jsonapi.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/guc.h"
#include "utils/hsearch.h"
#include "utils/inet.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(activity_monitor_set_actor);

static char *actor_type = NULL;	/* activity_monitor.actor_type */
static char *actor_id = NULL;	/* activity_monitor.actor_id */
static char *actor_reason = NULL;	/* activity_monitor.actor_reason */
static char *actor_context = NULL;	/* activity_monitor.actor_context */

/*
 * The actor types, listed once: the setting's check, set_actor() and their
 * messages read this list (no SQL needs one).
 */
static const char *const actor_types[] = {"user", "employee", "service", "system", NULL};
static char *actor_type_names = NULL;	/* the list for messages, made at init */

/* Session facts, computed once per backend or per distinct value. */
static Datum client_addr_datum;
static bool client_addr_done = false;
static bool client_addr_null = true;
static HTAB *db_users = NULL;	/* role OID -> its name as text (DbUser) */
static MemoryContext db_users_cxt = NULL;
static bool db_users_stale = false;	/* a role changed: rebuild before use */
static Oid	session_user_oid = InvalidOid;
static char session_user_name[NAMEDATALEN];
static char *context_text = NULL;	/* the string context_jsonb was parsed from */
static Datum context_jsonb;

/* One cached db_user value: a role's name as a text datum. */
typedef struct DbUser
{
	Oid			roleid;			/* hash key */
	Datum		name;			/* text, in db_users_cxt */
} DbUser;

/*
 * A role was renamed or dropped: look the cached names up again.  The
 * db_user cache is only marked here, and emptied by the next
 * am_fill_actor(): an invalidation can arrive while a row's values still
 * point to a cached name (between filling and writing the row).
 */
static void
role_changed(Datum arg, int cacheid, uint32 hashvalue)
{
	db_users_stale = true;
	session_user_oid = InvalidOid;
}

/*
 * The name of role roleid as a text datum for the db_user column, cached
 * per role OID for the backend's life (until a role changes): no palloc
 * per row, and SET ROLE or SECURITY DEFINER functions switching between a
 * few roles do not rebuild it each time.
 */
static Datum
db_user_datum(Oid roleid)
{
	DbUser	   *e;
	bool		found;

	if (db_users == NULL || db_users_stale)
	{
		HASHCTL		ctl;

		db_users = NULL;
		if (db_users_cxt == NULL)
			db_users_cxt = AllocSetContextCreate(CacheMemoryContext,
												 "activity_monitor db_user names",
												 ALLOCSET_SMALL_SIZES);
		else
			MemoryContextReset(db_users_cxt);
		db_users_stale = false;
		ctl.keysize = sizeof(Oid);
		ctl.entrysize = sizeof(DbUser);
		ctl.hcxt = db_users_cxt;
		db_users = hash_create("activity_monitor db_user names", 16, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	e = hash_search(db_users, &roleid, HASH_FIND, &found);
	if (e == NULL)
	{
		/* looked up before the entry exists: an error leaves no half entry */
		char	   *name = GetUserNameFromId(roleid, false);
		MemoryContext old = MemoryContextSwitchTo(db_users_cxt);
		Datum		d = CStringGetTextDatum(name);

		MemoryContextSwitchTo(old);
		e = hash_search(db_users, &roleid, HASH_ENTER, &found);
		e->name = d;
	}
	return e->name;
}

static bool
valid_actor_type(const char *s)
{
	for (int i = 0; actor_types[i]; i++)
		if (strcmp(s, actor_types[i]) == 0)
			return true;
	return false;
}

static bool
check_actor_type(char **newval, void **extra, GucSource source)
{
	if (*newval == NULL || (*newval)[0] == '\0' || valid_actor_type(*newval))
		return true;
	GUC_check_errcode(ERRCODE_INVALID_PARAMETER_VALUE);
	GUC_check_errmsg("unknown actor type \"%s\"", *newval);
	GUC_check_errhint("Use one of: %s.", actor_type_names);
	return false;
}

/*
 * A JSON number jsonb can hold: jsonb_in raises for exponents numeric
 * cannot represent, and that must happen at SET time, not in every write.
 */
static void
context_scalar(void *state, char *token, JsonTokenType tokentype)
{
	char	   *e;
	long		exponent;

	if (tokentype != JSON_TOKEN_NUMBER)
		return;
	if (strlen(token) > 1000)
	{
		*(bool *) state = false;
		return;
	}
	e = strpbrk(token, "eE");
	if (e == NULL)
		return;
	/* an exponent strtol cannot hold comes back clamped, with ERANGE */
	errno = 0;
	exponent = strtol(e + 1, NULL, 10);
	if (errno == ERANGE || exponent > 10000 || exponent < -10000)
		*(bool *) state = false;
}

/* The context must be JSON jsonb accepts; checked without raising. */
static bool
check_actor_context(char **newval, void **extra, GucSource source)
{
	JsonLexContext *lex;
	JsonParseErrorType err;
	JsonSemAction sem = {0};
	bool		numbers_ok = true;

	if (*newval == NULL || (*newval)[0] == '\0')
		return true;
	lex = makeJsonLexContextCstringLen(*newval, strlen(*newval), GetDatabaseEncoding(), true);
	sem.semstate = &numbers_ok;
	sem.scalar = context_scalar;
	err = pg_parse_json(lex, &sem);
	if (err == JSON_SUCCESS && !numbers_ok)
	{
		GUC_check_errcode(ERRCODE_INVALID_TEXT_REPRESENTATION);
		GUC_check_errmsg("activity_monitor.actor_context must be JSON");
		GUC_check_errdetail("A number is out of the range jsonb can hold.");
		return false;
	}
	if (err == JSON_SUCCESS)
		return true;
	GUC_check_errcode(ERRCODE_INVALID_TEXT_REPRESENTATION);
	GUC_check_errmsg("activity_monitor.actor_context must be JSON");
	GUC_check_errdetail("%s", json_errdetail(err, lex));
	return false;
}

/*
 * Define the actor settings and watch role renames (the cached names);
 * called from _PG_init.
 */
void
am_actor_init(void)
{
	StringInfoData names;
	char	   *type_desc;
	MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

	/* the messages name the types from the list, and keep them for good */
	initStringInfo(&names);
	for (int i = 0; actor_types[i]; i++)
		appendStringInfo(&names, "%s%s", i > 0 ? ", " : "", actor_types[i]);
	actor_type_names = names.data;
	type_desc = psprintf("Kind of actor of the changes: one of %s.", actor_type_names);
	MemoryContextSwitchTo(old);

	CacheRegisterSyscacheCallback(AUTHOID, role_changed, (Datum) 0);
	DefineCustomStringVariable("activity_monitor.actor_type",
							   type_desc,
							   "Empty means service.",
							   &actor_type, "", PGC_USERSET, 0,
							   check_actor_type, NULL, NULL);
	DefineCustomStringVariable("activity_monitor.actor_id",
							   "Identifier of the actor of the changes.",
							   "Empty means the session user.",
							   &actor_id, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("activity_monitor.actor_reason",
							   "Why the actor makes the changes (ticket, case, job).",
							   NULL, &actor_reason, "", PGC_USERSET, 0, NULL, NULL, NULL);
	DefineCustomStringVariable("activity_monitor.actor_context",
							   "JSON the application knows about the change: end-user IP, device, request id.",
							   NULL, &actor_context, "", PGC_USERSET, 0,
							   check_actor_context, NULL, NULL);
}

/*
 * The connection's client address as inet, or NULL for a Unix socket:
 * inet_client_addr() once per backend.
 */
static void
compute_client_addr(void)
{
	LOCAL_FCINFO(fcinfo, 0);
	Datum		d;
	MemoryContext old;

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	d = inet_client_addr(fcinfo);
	client_addr_done = true;
	client_addr_null = fcinfo->isnull;
	if (fcinfo->isnull)
		return;
	old = MemoryContextSwitchTo(TopMemoryContext);
	client_addr_datum = datumCopy(d, false, -1);
	MemoryContextSwitchTo(old);
}

static inline void
set_text(Datum *values, bool *nulls, int col, const char *s)
{
	if (s == NULL || s[0] == '\0')
		nulls[col] = true;
	else
	{
		values[col] = CStringGetTextDatum(s);
		nulls[col] = false;
	}
}

/*
 * Fill the actor and session columns of an activity row.  Only the context
 * jsonb and the user names are cached; everything else is read as it is now.
 */
void
am_fill_actor(Datum *values, bool *nulls)
{
	Oid			userid = GetUserId();

	if (actor_type != NULL && actor_type[0] != '\0')
		set_text(values, nulls, AC_ACTOR_TYPE, actor_type);
	else
		set_text(values, nulls, AC_ACTOR_TYPE, "service");

	if (actor_id != NULL && actor_id[0] != '\0')
		set_text(values, nulls, AC_ACTOR_ID, actor_id);
	else
	{
		if (GetSessionUserId() != session_user_oid)
		{
			strlcpy(session_user_name, GetUserNameFromId(GetSessionUserId(), false),
					NAMEDATALEN);
			session_user_oid = GetSessionUserId();
		}
		set_text(values, nulls, AC_ACTOR_ID, session_user_name);
	}
	set_text(values, nulls, AC_ACTOR_REASON, actor_reason);

	if (actor_context == NULL || actor_context[0] == '\0')
		nulls[AC_ACTOR_CONTEXT] = true;
	else
	{
		if (context_text == NULL || strcmp(context_text, actor_context) != 0)
		{
			MemoryContext old;
			Datum		jb = DirectFunctionCall1(jsonb_in, CStringGetDatum(actor_context));

			old = MemoryContextSwitchTo(TopMemoryContext);
			if (context_text)
			{
				pfree(context_text);
				pfree(DatumGetPointer(context_jsonb));
			}
			context_text = pstrdup(actor_context);
			context_jsonb = PointerGetDatum(PG_DETOAST_DATUM_COPY(jb));
			MemoryContextSwitchTo(old);
		}
		values[AC_ACTOR_CONTEXT] = context_jsonb;
		nulls[AC_ACTOR_CONTEXT] = false;
	}

	/* text; the sink makes it a name for an activity table of 0.1.0 */
	values[AC_DB_USER] = db_user_datum(userid);
	nulls[AC_DB_USER] = false;

	set_text(values, nulls, AC_APPLICATION_NAME, application_name);

	if (!client_addr_done)
		compute_client_addr();
	values[AC_CLIENT_ADDR] = client_addr_datum;
	nulls[AC_CLIENT_ADDR] = client_addr_null;

	values[AC_BACKEND_PID] = Int32GetDatum(MyProcPid);
	nulls[AC_BACKEND_PID] = false;
	values[AC_TXID] = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	nulls[AC_TXID] = false;
}

static void
set_setting(const char *name, const char *value, bool is_local)
{
	(void) set_config_option(name, value ? value : "",
							 superuser() ? PGC_SUSET : PGC_USERSET,
							 PGC_S_SESSION,
							 is_local ? GUC_ACTION_LOCAL : GUC_ACTION_SET,
							 true, 0, false);
}

/*
 * set_actor(actor_type, actor_id, reason, context, is_local): validate, then
 * set the four settings together.  Deliberately not SECURITY DEFINER and
 * without a SET clause: either would undo SET LOCAL at function exit.
 */
Datum
activity_monitor_set_actor(PG_FUNCTION_ARGS)
{
	char	   *type;
	char	   *id;
	bool		is_local;

	if (PG_ARGISNULL(0))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("actor_type must not be null"),
				 errhint("Use one of: %s.", actor_type_names)));
	if (PG_ARGISNULL(1))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("actor_id must not be null")));
	if (PG_ARGISNULL(4))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("is_local must not be null")));

	type = text_to_cstring(PG_GETARG_TEXT_PP(0));
	id = text_to_cstring(PG_GETARG_TEXT_PP(1));
	is_local = PG_GETARG_BOOL(4);

	if (!valid_actor_type(type))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("unknown actor type \"%s\"", type),
				 errhint("Use one of: %s.", actor_type_names)));
	if (id[0] == '\0')
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("actor_id must not be empty")));

	set_setting("activity_monitor.actor_type", type, is_local);
	set_setting("activity_monitor.actor_id", id, is_local);
	set_setting("activity_monitor.actor_reason",
				PG_ARGISNULL(2) ? NULL : text_to_cstring(PG_GETARG_TEXT_PP(2)), is_local);
	set_setting("activity_monitor.actor_context",
				PG_ARGISNULL(3) ? NULL : JsonbToCString(NULL, &PG_GETARG_JSONB_P(3)->root, 0),
				is_local);
	PG_RETURN_VOID();
}
