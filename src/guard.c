/*-------------------------------------------------------------------------
 *
 * guard.c
 *	  The DDL guard: DDL that would switch capture off, bypass it or make
 *	  a table's settings miss a column is refused unless the role running
 *	  it is a superuser or has the privileges of activity_monitor_admin,
 *	  and is recorded as a critical event when allowed.
 *
 * The guard is a C event trigger function on ddl_command_start (the event
 * trigger activity_monitor_guard, created by the extension), so it runs in
 * every backend, whether the library is preloaded or not, before the
 * command does anything, and in the command's own (sub)transaction: the
 * recorded event and the settings it updates commit or roll back with the
 * DDL.  It reads the parse tree: ALTER TABLE subcommands on capture
 * triggers (any mode change, ALL and USER included), on partitions (DETACH,
 * and ATTACH of a table that holds rows, a tracked or a foreign table: an
 * empty one is captured from its first row), on inheritance (INHERIT) and
 * on columns (DROP COLUMN, ALTER COLUMN ... TYPE) and on the primary key
 * (DROP CONSTRAINT); renames of columns (ALTER TABLE/VIEW ... RENAME
 * COLUMN, ALTER TYPE ... RENAME ATTRIBUTE), of capture triggers, of tracked
 * tables and of their schemas; ALTER TYPE ... RENAME VALUE of an enum and
 * DROP or RENAME ATTRIBUTE of a composite type whose values a tracked
 * table holds in a column; SET SCHEMA of a tracked table; DROP TRIGGER
 * of a capture trigger; DROP TABLE (of the table, a partition or a parent),
 * DROP SCHEMA and DROP OWNED reaching a tracked table or one of its
 * partitions; ALTER TRIGGER ... DEPENDS ON EXTENSION of a capture trigger
 * and ALTER EXTENSION ... ADD TABLE of a tracked table (dropping that
 * extension would drop it); CREATE TABLE ... INHERITS a tracked table (an
 * UPDATE of the parent would change the child's rows uncaptured).  Each
 * guarded operation of an allowed command is one admin event (audit.c).
 *
 * track() and untrack() create and drop capture triggers directly
 * (partitions.c), which no event trigger sees.  0.1.0's track(), still in
 * place until ALTER EXTENSION UPDATE, replaces them by DDL (DROP TRIGGER IF
 * EXISTS, then CREATE) after writing its settings: those drops, run as the
 * extension's owner inside a SECURITY DEFINER function in the transaction
 * that wrote the settings row, are not DDL events.  0.1.0's untrack()
 * deletes the settings row first, so its drops no longer concern a tracked
 * table.
 *
 * A table is guarded when it is tracked (a row of activity_monitor.tracked)
 * or is a partition, at any level, of a tracked table; a capture trigger is
 * a trigger named activity_monitor_capture or activity_monitor_truncate
 * whose function is activity_monitor.capture().  The privilege
 * check is on GetUserId(), the role the command runs as (an event trigger
 * function runs as the role running the DDL, or as the owner of the
 * SECURITY DEFINER function that runs it).
 *
 * Column settings follow the column: an allowed RENAME COLUMN renames it in
 * the table's settings and an allowed DROP COLUMN removes it from them, by
 * an UPDATE of activity_monitor.tracked run as the extension's owner (the
 * role running the DDL need not be able to write that table).
 *
 * IDENTIFICATION
 *	  src/guard.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_constraint.h"
#include "catalog/pg_depend.h"
#include "catalog/pg_extension.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_namespace.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/tablecmds.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "parser/parse_func.h"
#include "parser/parse_type.h"
#include "storage/lmgr.h"
#include "storage/proc.h"
#include "tcop/cmdtag.h"
#include "utils/acl.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(activity_monitor_guard_ddl);
PG_FUNCTION_INFO_V1(activity_monitor_guard_sql_drop);

#define ADMIN_ROLE "activity_monitor_admin"

/* What one guarded statement needs to know, looked up once per statement. */
typedef struct GuardState
{
	EventTriggerData *trigdata;
	Oid			extoid;
	Oid			extowner;
	Oid			capture_fn;		/* activity_monitor.capture() */
	bool		checked_role;	/* allowed computed */
	bool		allowed;
	bool		at_start;		/* ddl_command_start (else sql_drop) */
} GuardState;

/* The settings of one tracked table, as the guard needs them. */
typedef struct TrackedRow
{
	bool		found;
	bool		written_here;	/* inserted or updated by this transaction */
	char	   *subject;
	char	   *status;
	Datum		arrays[3];		/* critical, ignore, redact (name[]) */
} TrackedRow;

/*
 * Read the settings row of relid from activity_monitor.tracked.  Read like a
 * catalog (no privilege needed), with the latest snapshot so that a row
 * track() wrote earlier in this transaction is seen.
 */
static TrackedRow
read_tracked(Oid relid)
{
	TrackedRow	row = {0};
	AmTrackedRow tr;

	if (am_tracked_read(relid, true, CurrentMemoryContext, &tr))
	{
		row.found = true;
		row.written_here = tr.written_here;
		if (!tr.nulls[TC_SUBJECT])
			row.subject = NameStr(*DatumGetName(tr.values[TC_SUBJECT]));
		if (!tr.nulls[TC_STATUS])
			row.status = NameStr(*DatumGetName(tr.values[TC_STATUS]));
		row.arrays[0] = tr.values[TC_CRITICAL];
		row.arrays[1] = tr.values[TC_IGNORE];
		row.arrays[2] = tr.values[TC_REDACT];
	}
	return row;
}

/* Is column name one the settings row names (subject, status, lists)? */
static bool
setting_names_column(const TrackedRow *row, const char *name)
{
	if (!row->found)
		return false;
	if ((row->subject && strcmp(row->subject, name) == 0) ||
		(row->status && strcmp(row->status, name) == 0))
		return true;
	for (int i = 0; i < 3; i++)
		if (am_name_in_array(row->arrays[i], name))
			return true;
	return false;
}

/*
 * The tracked table relid belongs to: itself if tracked, else its nearest
 * tracked partition ancestor; InvalidOid if none.
 */
static Oid
tracked_root(Oid relid)
{
	if (!OidIsValid(relid))
		return InvalidOid;
	if (read_tracked(relid).found)
		return relid;
	if (get_rel_relispartition(relid))
	{
		ListCell   *lc;

		foreach(lc, get_partition_ancestors(relid))
		{
			if (read_tracked(lfirst_oid(lc)).found)
				return lfirst_oid(lc);
		}
	}
	return InvalidOid;
}

/* "schema.name" of a relation, quoted as needed. */
static char *
qualified_name(Oid relid)
{
	return quote_qualified_identifier(get_namespace_name(get_rel_namespace(relid)),
									  get_rel_name(relid));
}

/* Is name one track() gives the capture triggers? */
static bool
is_capture_trigger_name(const char *name)
{
	return strcmp(name, AM_CAPTURE_TRIGGER) == 0 ||
		strcmp(name, AM_TRUNCATE_TRIGGER) == 0;
}

/*
 * Is trigger name on relid a capture trigger: one of the two names, running
 * capture()?  A trigger of another name running capture() records nothing
 * (capture.c).
 */
static bool
is_capture_trigger(GuardState *gs, Oid relid, const char *name)
{
	Oid			trigoid;
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		result = false;

	if (!OidIsValid(relid) || name == NULL || !is_capture_trigger_name(name))
		return false;
	trigoid = get_trigger_oid(relid, name, true);
	if (!OidIsValid(trigoid))
		return false;
	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_trigger_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(trigoid));
	scan = systable_beginscan(rel, TriggerOidIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
		result = ((Form_pg_trigger) GETSTRUCT(tup))->tgfoid == gs->capture_fn;
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * Is this track() itself replacing the triggers of root: run as the
 * extension's owner in a SECURITY DEFINER function, in the transaction that
 * wrote root's settings row?  Not a change of capture.
 */
static bool
in_track(GuardState *gs, Oid root)
{
	return InLocalUserIdChange() && GetUserId() == gs->extowner &&
		read_tracked(root).written_here;
}

/* May the role running the command change capture? */
static bool
role_allowed(GuardState *gs)
{
	if (!gs->checked_role)
	{
		Oid			user = GetUserId();
		Oid			admin = get_role_oid(ADMIN_ROLE, true);

		gs->allowed = superuser_arg(user) ||
			(OidIsValid(admin) && has_privs_of_role(user, admin));
		gs->checked_role = true;
	}
	return gs->allowed;
}

/* Add "key": "value" to a jsonb object being built. */
static void
push_pair(JsonbParseState **state, const char *key, const char *value)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = (char *) key;
	v.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &v);
	if (value == NULL)
		v.type = jbvNull;
	else
	{
		v.val.string.val = (char *) value;
		v.val.string.len = strlen(value);
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * Record an allowed guarded command as an admin event (audit.c) of the
 * tracked table root: action "ddl", row_key the relation named, new_values
 * {"command": tag, "operation": what, "relation": the relation named,
 * "role": the role running it, "session_user": ...}.  Written straight into
 * the activity table in the command's transaction, as capture writes a row
 * event.  The statement's text is not stored: a query string may hold
 * several statements, and values of redacted columns with them.
 */
static void
record_ddl(GuardState *gs, const char *rootname, const char *relname, const char *what)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	push_pair(&state, "command", GetCommandTagName(gs->trigdata->tag));
	push_pair(&state, "operation", what);
	push_pair(&state, "relation", relname);
	push_pair(&state, "role", GetUserNameFromId(GetUserId(), false));
	push_pair(&state, "session_user", GetUserNameFromId(GetSessionUserId(), false));
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);

	am_record_admin(rootname, "ddl", relname, (Datum) 0,
					JsonbPGetDatum(JsonbValueToJsonb(res)));
}

/*
 * One guarded operation on relation relname of tracked table rootname:
 * refuse it for a role without the privilege, record it otherwise.
 */
static void
guard_names(GuardState *gs, const char *rootname, const char *relname, const char *what)
{
	if (!role_allowed(gs))
		ereport(ERROR,
				(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
				 errmsg("permission denied to %s", what),
				 errdetail("Table \"%s\" is tracked by activity_monitor: only a superuser or a member of %s may change its capture triggers, partitions, inheritance, name or columns.",
						   rootname, ADMIN_ROLE),
				 errhint("To stop tracking the table, a member of %s runs activity_monitor.untrack('%s') first, or asks one to make the change.",
						 ADMIN_ROLE, rootname)));
	record_ddl(gs, rootname, relname, what);
}

/*
 * The tracked tables the ddl_command_start guard has judged for the command
 * being run (parsetree covered_key in local transaction covered_lxid): the
 * sql_drop guard does not record them a second time.  Reset by every
 * ddl_command_start, so a command in between only makes it record more.
 */
static List *covered_roots = NIL;
static Node *covered_key = NULL;
static LocalTransactionId covered_lxid = InvalidLocalTransactionId;

/* guard_names for relation relid (may be InvalidOid) of tracked table root. */
static void
guard(GuardState *gs, Oid root, Oid relid, const char *what)
{
	guard_names(gs, qualified_name(root), OidIsValid(relid) ? qualified_name(relid) : NULL,
				what);
	if (gs->at_start)
	{
		MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);

		covered_roots = lappend_oid(covered_roots, root);
		MemoryContextSwitchTo(old);
	}
}

/*
 * Rename (newname) or remove (newname NULL) a column in the settings of the
 * tracked table root, as the extension's owner: the role running the DDL
 * may have no privilege on activity_monitor.tracked.
 */
static void
update_settings(GuardState *gs, Oid root, const char *oldname, const char *newname)
{
	Oid			save_userid;
	int			save_sec;
	Oid			trackedoid = am_catalog()->tracked;
	Oid			types[3] = {OIDOID, NAMEOID, NAMEOID};
	Datum		args[3];
	char		argnulls[3] = {' ', ' ', ' '};
	char	   *sql;
	int			rc;

	args[0] = ObjectIdGetDatum(root);
	args[1] = DirectFunctionCall1(namein, CStringGetDatum(oldname));
	if (newname)
		args[2] = DirectFunctionCall1(namein, CStringGetDatum(newname));
	else
	{
		args[2] = (Datum) 0;
		argnulls[2] = 'n';
	}
	sql = psprintf("UPDATE %s t SET "
				   "subject_column = CASE WHEN t.subject_column OPERATOR(pg_catalog.=) $2 "
				   "  THEN $3 ELSE t.subject_column END, "
				   "status_column = CASE WHEN t.status_column OPERATOR(pg_catalog.=) $2 "
				   "  THEN $3 ELSE t.status_column END, "
				   "critical_columns = CASE WHEN $3 IS NULL "
				   "  THEN pg_catalog.array_remove(t.critical_columns, $2) "
				   "  ELSE pg_catalog.array_replace(t.critical_columns, $2, $3) END, "
				   "ignore_columns = CASE WHEN $3 IS NULL "
				   "  THEN pg_catalog.array_remove(t.ignore_columns, $2) "
				   "  ELSE pg_catalog.array_replace(t.ignore_columns, $2, $3) END, "
				   "redact_columns = CASE WHEN $3 IS NULL "
				   "  THEN pg_catalog.array_remove(t.redact_columns, $2) "
				   "  ELSE pg_catalog.array_replace(t.redact_columns, $2, $3) END "
				   "WHERE t.tbl OPERATOR(pg_catalog.=) $1::pg_catalog.regclass",
				   qualified_name(trackedoid));

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(gs->extowner,
						   save_sec | SECURITY_LOCAL_USERID_CHANGE | SECURITY_RESTRICTED_OPERATION);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute_with_args(sql, 3, types, args, argnulls, false, 0);
	if (rc != SPI_OK_UPDATE)
		elog(ERROR, "could not update the settings of %s: %s",
			 qualified_name(root), SPI_result_code_string(rc));
	SPI_finish();
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * RangeVarGetRelidExtended callback of lookup_rel: before a relation is
 * locked, the role must own it or its schema (every guarded command needs
 * one of them, DROP TABLE the weaker), so that nobody can queue a strong
 * lock on a table the command itself would refuse without waiting.  arg
 * non-NULL: no check (CREATE TRIGGER locks before its privilege check too).
 */
static void
lookup_rel_callback(const RangeVar *rv, Oid relid, Oid oldrelid, void *arg)
{
	HeapTuple	tup;
	Oid			nsp;
	char		relkind;

	if (arg != NULL || !OidIsValid(relid))
		return;
	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(relid));
	if (!HeapTupleIsValid(tup))
		return;					/* dropped concurrently: looked up again */
	nsp = ((Form_pg_class) GETSTRUCT(tup))->relnamespace;
	relkind = ((Form_pg_class) GETSTRUCT(tup))->relkind;
	ReleaseSysCache(tup);
	if (!pg_class_ownercheck(relid, GetUserId()) &&
		!pg_namespace_ownercheck(nsp, GetUserId()))
		aclcheck_error(ACLCHECK_NOT_OWNER, get_relkind_objtype(relkind), rv->relname);
}

/*
 * relid of a RangeVar, InvalidOid if it does not exist (IF EXISTS, ...),
 * locked in lockmode: the mode the command itself takes on it next, so that
 * the command finds the relation the guard checked (a lookup without a lock
 * may name a table that a concurrent DROP or RENAME replaces while the
 * command waits for its lock) and never upgrades a lock of ours.
 */
static Oid
lookup_rel_locked(RangeVar *rv, LOCKMODE lockmode, bool check_owner)
{
	if (rv == NULL)
		return InvalidOid;
	return RangeVarGetRelidExtended(rv, lockmode, RVR_MISSING_OK,
									lookup_rel_callback,
									check_owner ? NULL : (void *) rv);
}

/* lookup_rel_locked for the commands that need the owner (most of them). */
static Oid
lookup_rel(RangeVar *rv, LOCKMODE lockmode)
{
	return lookup_rel_locked(rv, lockmode, true);
}

/*
 * lookup_rel for DROP TABLE: a partition's parent is locked first, in the
 * order DROP itself locks them (RemoveRelations); locking the partition
 * first would deadlock with a writer that holds the parent and routes a row
 * into the partition.
 */
static Oid
lookup_dropped_rel(RangeVar *rv)
{
	Oid			relid = RangeVarGetRelid(rv, NoLock, true);

	/* (a role that may not drop it gets no lock on its parent) */
	if (OidIsValid(relid) && get_rel_relispartition(relid) &&
		pg_class_ownercheck(relid, GetUserId()))
	{
		Oid			parent = get_partition_parent(relid, true);

		if (OidIsValid(parent))
			LockRelationOid(parent, AccessExclusiveLock);
	}
	return lookup_rel(rv, AccessExclusiveLock);
}

/* The capture trigger commands of ALTER TABLE, or NULL for another one. */
static const char *
trigger_command_name(AlterTableType t)
{
	switch (t)
	{
		case AT_EnableTrig:
		case AT_EnableTrigAll:
		case AT_EnableTrigUser:
			return "enable";
		case AT_EnableAlwaysTrig:
			return "enable always";
		case AT_EnableReplicaTrig:
			return "enable replica";
		case AT_DisableTrig:
		case AT_DisableTrigAll:
		case AT_DisableTrigUser:
			return "disable";
		default:
			return NULL;
	}
}

/*
 * The typed tables of composite type relation typrelid (CREATE TABLE ... OF
 * its type) with their partitions: what ALTER TYPE ... CASCADE changes.
 */
static List *
typed_tables(Oid typrelid)
{
	Oid			typoid = get_rel_type_id(typrelid);
	Relation	rel;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;

	if (!OidIsValid(typoid))
		return NIL;
	rel = table_open(RelationRelationId, AccessShareLock);
	ScanKeyInit(&key, Anum_pg_class_reloftype, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(typoid));
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 1, &key);
	while ((tup = systable_getnext(scan)) != NULL)
		result = list_concat(result,
							 find_all_inheritors(((Form_pg_class) GETSTRUCT(tup))->oid,
												 NoLock, NULL));
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return result;
}

/*
 * The tables whose column a column command on relid changes: the typed
 * tables of a composite type (ALTER TYPE ... CASCADE), else the relation
 * and, unless ONLY, its inheritance children and partitions.
 */
static List *
column_targets(Oid relid, bool inh)
{
	if (get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE)
		return typed_tables(relid);
	return inh ? find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid);
}

/*
 * The tracked tables (their roots) with a column whose values are of type
 * typid or hold it: a column of the type itself, of an array, domain or
 * range over it, or of a composite type or a table's row type with such an
 * attribute, at any depth.  Read from pg_depend, where a column depends on
 * its type, an array type on its element, a domain on its base type, a
 * range on its subtype and a composite type's attribute on its type.  What
 * ALTER TYPE ... RENAME VALUE of an enum and ALTER TYPE ... DROP or RENAME
 * ATTRIBUTE of a composite type change in the stored rows of those tables.
 */
static List *
tracked_roots_of_type(Oid typid)
{
	List	   *types = list_make1_oid(typid);
	List	   *roots = NIL;
	Relation	dep = table_open(DependRelationId, AccessShareLock);

	/* types grows while it is read: by position */
	for (int i = 0; i < list_length(types); i++)
	{
		ScanKeyData key[2];
		SysScanDesc scan;
		HeapTuple	tup;

		ScanKeyInit(&key[0], Anum_pg_depend_refclassid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(TypeRelationId));
		ScanKeyInit(&key[1], Anum_pg_depend_refobjid, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(list_nth_oid(types, i)));
		scan = systable_beginscan(dep, DependReferenceIndexId, true, NULL, 2, key);
		while ((tup = systable_getnext(scan)) != NULL)
		{
			Form_pg_depend d = (Form_pg_depend) GETSTRUCT(tup);

			if (d->classid == TypeRelationId)
				types = list_append_unique_oid(types, d->objid);
			else if (d->classid == RelationRelationId && d->objsubid > 0)
			{
				Oid			root = tracked_root(d->objid);
				Oid			rowtype = get_rel_type_id(d->objid);

				if (OidIsValid(root))
					roots = list_append_unique_oid(roots, root);
				/* a column of this relation's row type holds it too */
				if (OidIsValid(rowtype))
					types = list_append_unique_oid(types, rowtype);
			}
		}
		systable_endscan(scan);
	}
	table_close(dep, AccessShareLock);
	return roots;
}

/*
 * Guard each tracked table that holds values of type typid in a column
 * (tracked_roots_of_type), once per command (*done): what, done to the type
 * (e.g. "rename value \"x\""), is a guarded operation on each.
 */
static void
guard_holders(GuardState *gs, Oid typid, List **done, const char *what)
{
	ListCell   *lc;

	foreach(lc, tracked_roots_of_type(typid))
	{
		Oid			root = lfirst_oid(lc);

		if (list_member_oid(*done, root))
			continue;
		*done = lappend_oid(*done, root);
		guard(gs, root, root,
			  psprintf("%s of type \"%s\", held in a column of table \"%s\"",
					   what, format_type_be(typid), qualified_name(root)));
	}
}

/*
 * A column command on relid (ALTER TYPE ... DROP or RENAME ATTRIBUTE of a
 * composite type, DROP or RENAME COLUMN of a table) reaching the tracked
 * tables that hold its row type's values in a column, or those of its
 * column targets (children, partitions, typed tables; as their own columns,
 * column_targets() has those).
 */
static void
guard_type_users(GuardState *gs, Oid relid, bool inh, List **done, const char *verb,
				 const char *attname)
{
	List	   *rels = column_targets(relid, inh);
	char	   *what = psprintf("%s attribute \"%s\"", verb, attname);
	ListCell   *lc;

	if (!list_member_oid(rels, relid))
		rels = lcons_oid(relid, rels);
	foreach(lc, rels)
	{
		Oid			rowtype = get_rel_type_id(lfirst_oid(lc));

		if (OidIsValid(rowtype))
			guard_holders(gs, rowtype, done, what);
	}
}

/*
 * DROP COLUMN / ALTER COLUMN ... TYPE (of ALTER TABLE or ALTER TYPE) on a
 * guarded table: either erases or rewrites every row's value without a row
 * event (ALTER COLUMN ... TYPE ... USING can set any value), whether or not
 * the settings name the column.  One guarded operation per tracked table;
 * a dropped column the settings name leaves them.
 */
static void
guard_column_change(GuardState *gs, Oid relid, bool inh, AlterTableCmd *cmd)
{
	bool		drop = (cmd->subtype == AT_DropColumn);
	bool		of_type = (get_rel_relkind(relid) == RELKIND_COMPOSITE_TYPE);
	List	   *done = NIL;
	ListCell   *lc;

	/*
	 * DROP COLUMN IF EXISTS of a column the relation lacks changes nothing:
	 * PostgreSQL skips it without recursing.  (relid is locked as the
	 * command locks it: no column appears before it runs.)
	 */
	if (drop && cmd->missing_ok && get_attnum(relid, cmd->name) == InvalidAttrNumber)
		return;

	foreach(lc, column_targets(relid, inh))
	{
		Oid			r = lfirst_oid(lc);
		Oid			root = tracked_root(r);
		TrackedRow	row;
		bool		named;

		if (!OidIsValid(root) || list_member_oid(done, root))
			continue;
		done = lappend_oid(done, root);
		row = read_tracked(root);
		named = setting_names_column(&row, cmd->name);
		guard(gs, root, r,
			  psprintf(drop ? "drop column \"%s\" of table \"%s\"%s" :
					   "change the type of column \"%s\" of table \"%s\"%s",
					   cmd->name, qualified_name(r),
					   named ? ", named in its activity_monitor settings" : ""));

		/*
		 * The column leaves the relation itself and a typed table; an
		 * inheritance child may keep a local one: its settings stay (a name
		 * without a column is ignored by capture).
		 */
		if (drop && named && r == root && (r == relid || of_type))
			update_settings(gs, root, cmd->name, NULL);
	}
	guard_type_users(gs, relid, inh, &done, drop ? "drop" : "change the type of", cmd->name);
}

/*
 * Does the tree of part (a table about to be attached below a tracked
 * table) hold a row, a tracked table or a foreign table (whose rows live
 * elsewhere)?  Read under the lock ATTACH takes next on every relation of
 * it, with the latest snapshot: no writer is in progress, and a row
 * committed after this transaction's snapshot counts.
 */
static bool
holds_rows_or_settings(Oid part)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(part, AccessExclusiveLock, NULL))
	{
		Oid			r = lfirst_oid(lc);
		char		relkind = get_rel_relkind(r);
		Relation	rel;
		Snapshot	snap;
		TableScanDesc scan;
		TupleTableSlot *slot;
		bool		found;

		if (read_tracked(r).found)
			return true;
		if (relkind == RELKIND_PARTITIONED_TABLE)
			continue;
		if (relkind != RELKIND_RELATION)
			return true;
		rel = table_open(r, NoLock);
		snap = RegisterSnapshot(GetLatestSnapshot());
		scan = table_beginscan(rel, snap, 0, NULL);
		slot = table_slot_create(rel, NULL);
		found = table_scan_getnextslot(scan, ForwardScanDirection, slot);
		ExecDropSingleTupleTableSlot(slot);
		table_endscan(scan);
		UnregisterSnapshot(snap);
		table_close(rel, NoLock);
		if (found)
			return true;
	}
	return false;
}

/* Is conname the primary key constraint of relation relid? */
static bool
is_primary_key(Oid relid, const char *conname)
{
	Oid			conoid = get_relation_constraint_oid(relid, conname, true);
	HeapTuple	tup;
	bool		pk = false;

	if (!OidIsValid(conoid))
		return false;
	tup = SearchSysCache1(CONSTROID, ObjectIdGetDatum(conoid));
	if (HeapTupleIsValid(tup))
	{
		Form_pg_constraint con = (Form_pg_constraint) GETSTRUCT(tup);

		/* a partition's inherited key cannot be dropped there: PostgreSQL says so */
		pk = con->contype == CONSTRAINT_PRIMARY && con->coninhcount == 0;
		ReleaseSysCache(tup);
	}
	return pk;
}

/* The guarded subcommands of an ALTER TABLE. */
static void
guard_alter_table(GuardState *gs, AlterTableStmt *stmt)
{
	Oid			relid = lookup_rel(stmt->relation, AlterTableGetLockLevel(stmt->cmds));
	Oid			root = tracked_root(relid);
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	foreach(lc, stmt->cmds)
	{
		AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
		const char *trig = trigger_command_name(cmd->subtype);

		if (trig && OidIsValid(root))
		{
			if (cmd->subtype == AT_EnableTrigAll || cmd->subtype == AT_DisableTrigAll)
				guard(gs, root, relid, psprintf("%s all triggers of table \"%s\"", trig,
												qualified_name(relid)));
			else if (cmd->subtype == AT_EnableTrigUser || cmd->subtype == AT_DisableTrigUser)
				guard(gs, root, relid, psprintf("%s user triggers of table \"%s\"", trig,
												qualified_name(relid)));
			else if (is_capture_trigger(gs, relid, cmd->name))
				guard(gs, root, relid, psprintf("%s trigger \"%s\" of table \"%s\"", trig,
												cmd->name,
												qualified_name(relid)));
			continue;
		}
		switch (cmd->subtype)
		{
			case AT_DetachPartition:
			case AT_DetachPartitionFinalize:
				if (OidIsValid(root))
					guard(gs, root, relid,
						  psprintf("detach partition \"%s\" from table \"%s\"",
								   ((PartitionCmd *) cmd->def)->name->relname,
								   qualified_name(relid)));
				break;
			case AT_AttachPartition:
				{
					Oid			part = lookup_rel(((PartitionCmd *) cmd->def)->name,
												  AccessExclusiveLock);

					/*
					 * Below a tracked table an empty table is captured from
					 * its first row; rows already there would appear
					 * uncaptured, a tracked table's settings would give way
					 * to the governing table's.  Below no tracked table
					 * nothing changes for capture (a tracked table keeps its
					 * own settings).
					 */
					if (!OidIsValid(root) || !OidIsValid(part))
						break;
					if (holds_rows_or_settings(part))
						guard(gs, root, relid,
							  psprintf("attach a partition to table \"%s\"", qualified_name(relid)));
					am_partitions_before_attach(relid, part);
					break;
				}
			case AT_AddInherit:
				{
					Oid			parent = lookup_rel((RangeVar *) cmd->def,
													ShareUpdateExclusiveLock);

					/* a child's column renames follow its parent's */
					if (OidIsValid(root))
						guard(gs, root, relid,
							  psprintf("make table \"%s\" inherit", qualified_name(relid)));
					/* UPDATE of the parent would change the child's rows uncaptured */
					else if (OidIsValid(parent) && OidIsValid(tracked_root(parent)))
						guard(gs, tracked_root(parent), relid,
							  psprintf("make table \"%s\" inherit from tracked table \"%s\"",
									   qualified_name(relid), qualified_name(parent)));
					break;
				}
			case AT_DropColumn:
			case AT_AlterColumnType:
				guard_column_change(gs, relid, stmt->relation->inh, cmd);
				break;
			case AT_DropConstraint:

				/*
				 * Without it an update's event names no row (row_key NULL).
				 * A partitioned table's key is its partitions' keys too: a
				 * tracked partition below an untracked parent loses its own.
				 */
				if (is_primary_key(relid, cmd->name))
				{
					List	   *seen = NIL;
					ListCell   *lc2;

					/* (plain inheritance does not pass a key on) */
					foreach(lc2, get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
							find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid))
					{
						Oid			r = lfirst_oid(lc2);
						Oid			rroot = tracked_root(r);

						if (!OidIsValid(rroot) || list_member_oid(seen, rroot))
							continue;
						seen = lappend_oid(seen, rroot);
						guard(gs, rroot, r,
							  psprintf("drop the primary key \"%s\" of table \"%s\"",
									   cmd->name, qualified_name(relid)));
					}
				}
				break;
			default:
				break;
		}
	}
}

/*
 * RENAME COLUMN of any column of a guarded table: the row's values change
 * their meaning without a row event (three renames swap two columns'
 * values), and rules that read the column by name stop seeing it.  One
 * guarded operation per tracked table; the tracked tables whose settings
 * name the column (the relation and, unless ONLY, its inheritance
 * children) keep their settings in step.
 */
static void
guard_rename_column(GuardState *gs, RenameStmt *stmt)
{
	Oid			relid = lookup_rel(stmt->relation, AccessExclusiveLock);
	List	   *done = NIL;
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	foreach(lc, column_targets(relid, stmt->relation->inh))
	{
		Oid			r = lfirst_oid(lc);
		TrackedRow	row = read_tracked(r);
		Oid			root = tracked_root(r);

		if (setting_names_column(&row, stmt->subname))
		{
			guard(gs, r, relid,
				  psprintf("rename column \"%s\" of table \"%s\", named in its activity_monitor settings",
						   stmt->subname, qualified_name(r)));
			update_settings(gs, r, stmt->subname, stmt->newname);
			done = lappend_oid(done, r);
		}
		else if (OidIsValid(root) && !list_member_oid(done, root))
		{
			guard(gs, root, r,
				  psprintf("rename column \"%s\" of table \"%s\"",
						   stmt->subname, qualified_name(r)));
			done = lappend_oid(done, root);
		}
	}
	guard_type_users(gs, relid, stmt->relation->inh, &done, "rename", stmt->subname);
}

/*
 * Guard each tracked table that has itself or a partition in schema nspoid
 * (InvalidOid: any) owned by one of the roles (NIL: any): what DROP SCHEMA,
 * ALTER SCHEMA ... RENAME and DROP OWNED would reach.
 */
static void
guard_tracked_where(GuardState *gs, Oid nspoid, List *roles, const char *what)
{
	List	   *roots = am_tracked_tables(true);
	ListCell   *lc;

	foreach(lc, roots)
	{
		Oid			root = lfirst_oid(lc);
		ListCell   *lc2;

		if (!SearchSysCacheExists1(RELOID, ObjectIdGetDatum(root)))
			continue;
		foreach(lc2, find_all_inheritors(root, NoLock, NULL))
		{
			Oid			r = lfirst_oid(lc2);
			HeapTuple	ctup = SearchSysCache1(RELOID, ObjectIdGetDatum(r));
			Form_pg_class cls;
			bool		hit;

			if (!HeapTupleIsValid(ctup))
				continue;
			cls = (Form_pg_class) GETSTRUCT(ctup);
			hit = (!OidIsValid(nspoid) || cls->relnamespace == nspoid) &&
				(roles == NIL || list_member_oid(roles, cls->relowner));
			ReleaseSysCache(ctup);
			if (hit)
			{
				guard(gs, root, r, psprintf("%s, which holds table \"%s\"", what, qualified_name(r)));
				break;
			}
		}
	}
}

/* DROP TABLE / TRIGGER / SCHEMA reaching a tracked table or its capture. */
static void
guard_drop(GuardState *gs, DropStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->objects)
	{
		switch (stmt->removeType)
		{
			case OBJECT_TABLE:
			case OBJECT_FOREIGN_TABLE:
				{
					Oid			relid = lookup_dropped_rel(makeRangeVarFromNameList(lfirst(lc)));
					Oid			root = tracked_root(relid);
					ListCell   *lc2;

					if (OidIsValid(root))
					{
						guard(gs, root, relid,
							  psprintf(root == relid ? "drop tracked table \"%s\"" :
									   "drop table \"%s\", a partition of a tracked table",
									   qualified_name(relid)));
						break;
					}
					if (!OidIsValid(relid))
						break;
					/* its partitions and (CASCADE) inheritance children go too */
					foreach(lc2, find_all_inheritors(relid, NoLock, NULL))
					{
						if (lfirst_oid(lc2) != relid && read_tracked(lfirst_oid(lc2)).found)
						{
							guard(gs, lfirst_oid(lc2), relid,
								  psprintf("drop table \"%s\", parent of tracked table \"%s\"",
										   qualified_name(relid), qualified_name(lfirst_oid(lc2))));
							break;
						}
					}
					break;
				}
			case OBJECT_TRIGGER:
				{
					List	   *names = lfirst(lc);
					const char *trig = strVal(llast(names));
					Oid			relid = lookup_rel(makeRangeVarFromNameList(list_truncate(list_copy(names),
																						  list_length(names) - 1)),
												   AccessExclusiveLock);
					Oid			root = tracked_root(relid);

					if (!OidIsValid(root) || !is_capture_trigger(gs, relid, trig))
						break;

					/* track() replaces the triggers (IF EXISTS) */
					if (stmt->missing_ok && in_track(gs, root))
						break;
					guard(gs, root, relid, psprintf("drop trigger \"%s\" of table \"%s\"",
													trig,
													qualified_name(relid)));
					break;
				}
			case OBJECT_SCHEMA:
				{
					Oid			nsp = get_namespace_oid(strVal(lfirst(lc)), true);

					if (OidIsValid(nsp))
						guard_tracked_where(gs, nsp, NIL,
											psprintf("drop schema \"%s\"", strVal(lfirst(lc))));
					break;
				}
			default:
				return;
		}
	}
}

/*
 * CREATE [OR REPLACE] TRIGGER on a guarded table: OR REPLACE of a capture
 * trigger swaps its function or events (and leaves a trigger the guard no
 * longer knows as capture), and another function's trigger given a capture
 * trigger's name would be taken for one.  Creating a capture trigger that
 * is not there (pg_restore does) switches nothing off.  On a partitioned
 * table the command reaches the same-named trigger of every partition, a
 * tracked one included.
 */
static void
guard_create_trigger(GuardState *gs, CreateTrigStmt *stmt)
{
	/* CREATE TRIGGER locks before its privilege check: so do we */
	Oid			relid = lookup_rel_locked(stmt->relation, ShareRowExclusiveLock, false);
	bool		runs_capture;
	List	   *rels;
	ListCell   *lc;

	if (!OidIsValid(relid))
		return;
	runs_capture = LookupFuncName(stmt->funcname, 0, NULL, true) == gs->capture_fn;
	rels = get_rel_relkind(relid) == RELKIND_PARTITIONED_TABLE ?
		find_all_inheritors(relid, NoLock, NULL) : list_make1_oid(relid);
	foreach(lc, rels)
	{
		Oid			r = lfirst_oid(lc);
		Oid			root = tracked_root(r);
		bool		capture;

		if (!OidIsValid(root))
			continue;
		capture = is_capture_trigger(gs, r, stmt->trigname);
		if (stmt->replace ? !capture && !is_capture_trigger_name(stmt->trigname) :
			runs_capture || !is_capture_trigger_name(stmt->trigname))
			continue;
		if (in_track(gs, root))
			continue;
		guard(gs, root, r,
			  psprintf(stmt->replace && capture ?
					   "replace trigger \"%s\" of table \"%s\"" :
					   "create a trigger named \"%s\" on table \"%s\"",
					   stmt->trigname, qualified_name(r)));
		break;
	}
}

/* The guarded forms of RENAME. */
static void
guard_rename(GuardState *gs, RenameStmt *stmt)
{
	switch (stmt->renameType)
	{
		case OBJECT_COLUMN:
		case OBJECT_ATTRIBUTE:	/* ALTER TYPE tbl RENAME ATTRIBUTE works on a table */
			guard_rename_column(gs, stmt);
			break;
		case OBJECT_TRIGGER:
			{
				Oid			relid = lookup_rel(stmt->relation, AccessExclusiveLock);
				Oid			root = tracked_root(relid);

				if (OidIsValid(root) && is_capture_trigger(gs, relid, stmt->subname))
					guard(gs, root, relid, psprintf("rename trigger \"%s\" of table \"%s\"",
													stmt->subname,
													qualified_name(relid)));
				break;
			}
		case OBJECT_TABLE:
		case OBJECT_VIEW:
		case OBJECT_MATVIEW:
		case OBJECT_INDEX:
		case OBJECT_SEQUENCE:
		case OBJECT_FOREIGN_TABLE:
			{
				/* a same-named table would take its writes, uncaptured */
				Oid			relid = lookup_rel(stmt->relation,
											   stmt->renameType == OBJECT_INDEX ?
											   ShareUpdateExclusiveLock : AccessExclusiveLock);

				if (OidIsValid(relid) && read_tracked(relid).found)
					guard(gs, relid, relid, psprintf("rename tracked table \"%s\"",
													 qualified_name(relid)));
				break;
			}
		case OBJECT_SCHEMA:
			{
				Oid			nsp = get_namespace_oid(stmt->subname, true);

				if (OidIsValid(nsp))
					guard_tracked_where(gs, nsp, NIL,
										psprintf("rename schema \"%s\"", stmt->subname));
				break;
			}
		default:
			break;
	}
}

/*
 * The extension's facts for a guard run; false when there is nothing to
 * guard: no extension, the extension's own scripts, a binary upgrade
 * (it restores as it was).
 */
static bool
guard_setup(GuardState *gs)
{
	Oid			schema;

	gs->extoid = get_extension_oid("activity_monitor", true);
	if (!OidIsValid(gs->extoid) || IsBinaryUpgrade ||
		(creating_extension && CurrentExtensionObject == gs->extoid))
		return false;
	schema = am_extension_schema(&gs->extowner, NULL);
	gs->capture_fn = GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
									 CStringGetDatum("capture"),
									 PointerGetDatum(buildoidvector(NULL, 0)),
									 ObjectIdGetDatum(schema));
	return true;
}

/* A relation or column the command dropped (pg_event_trigger_dropped_objects). */
typedef struct DroppedRel
{
	Oid			relid;
	int32		attnum;			/* 0: the relation itself */
	char	   *schema;
	char	   *relname;
	char	   *attname;
} DroppedRel;

/* The relations and columns the sql_drop event's command dropped. */
static List *
dropped_relations(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *result = NIL;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute("SELECT d.objid, d.objsubid, d.address_names "
					 "FROM pg_catalog.pg_event_trigger_dropped_objects() d "
					 "WHERE d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass",
					 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the dropped objects: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		HeapTuple	tup = SPI_tuptable->vals[i];
		TupleDesc	desc = SPI_tuptable->tupdesc;
		bool		isnull;
		Datum		names = SPI_getbinval(tup, desc, 3, &isnull);
		Datum	   *elems = NULL;
		bool	   *enulls = NULL;
		int			nelems = 0;
		MemoryContext old;
		DroppedRel *d;

		if (!isnull)
			deconstruct_array(DatumGetArrayTypeP(names), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &nelems);
		old = MemoryContextSwitchTo(cxt);
		d = palloc0(sizeof(DroppedRel));
		d->relid = DatumGetObjectId(SPI_getbinval(tup, desc, 1, &isnull));
		d->attnum = DatumGetInt32(SPI_getbinval(tup, desc, 2, &isnull));
		if (nelems >= 2 && !enulls[0] && !enulls[1])
		{
			d->schema = TextDatumGetCString(elems[0]);
			d->relname = TextDatumGetCString(elems[1]);
		}
		if (nelems >= 3 && !enulls[2])
			d->attname = TextDatumGetCString(elems[2]);
		result = lappend(result, d);
		MemoryContextSwitchTo(old);
	}
	SPI_finish();
	return result;
}

/*
 * activity_monitor._guard_sql_drop(): the sql_drop event trigger, the
 * guard's backstop for what a command drops beyond what it names: DROP
 * TYPE / DOMAIN / FUNCTION / EXTENSION ... CASCADE can drop a tracked table
 * (a typed table) or a column of one (of the type or domain, a generated
 * column using the function).  Each tracked table reached, unless the
 * ddl_command_start guard already judged it for this command, is one
 * guarded operation: the drop is rolled back for a role without the
 * privilege, recorded otherwise; a dropped column leaves the settings.  It
 * fires before activity_monitor_sql_drop (name order), which forgets the
 * settings of dropped tables.
 */
Datum
activity_monitor_guard_sql_drop(PG_FUNCTION_ARGS)
{
	GuardState	gs = {0};
	bool		same_command;
	List	   *dropped;
	List	   *done = NIL;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor._guard_sql_drop() must be called as an event trigger")));
	gs.trigdata = (EventTriggerData *) fcinfo->context;
	if (!guard_setup(&gs))
		PG_RETURN_VOID();
	same_command = covered_key == gs.trigdata->parsetree && covered_lxid == MyProc->lxid;
	if (same_command)
		done = list_copy(covered_roots);

	dropped = dropped_relations();
	foreach(lc, dropped)
	{
		DroppedRel *d = lfirst(lc);
		bool		table_dropped = false;
		Oid			root;
		ListCell   *lc2;

		if (d->relname == NULL)
			continue;
		if (d->attnum == 0)
		{
			/* a tracked table dropped (its partitions: the root's drop) */
			if (list_member_oid(done, d->relid) || !read_tracked(d->relid).found)
				continue;
			done = lappend_oid(done, d->relid);
			guard_names(&gs, quote_qualified_identifier(d->schema, d->relname), NULL,
						psprintf("drop tracked table \"%s\"",
								 quote_qualified_identifier(d->schema, d->relname)));
			continue;
		}
		/* a column of a table dropped with it is the table's drop */
		foreach(lc2, dropped)
		{
			DroppedRel *t = lfirst(lc2);

			if (t->relid == d->relid && t->attnum == 0)
				table_dropped = true;
		}
		if (table_dropped)
			continue;
		root = tracked_root(d->relid);
		if (OidIsValid(root) && !list_member_oid(done, root))
		{
			done = lappend_oid(done, root);
			guard_names(&gs, qualified_name(root), qualified_name(d->relid),
						psprintf("drop column \"%s\" of table \"%s\"",
								 d->attname ? d->attname : "?", qualified_name(d->relid)));
			if (d->attname && root == d->relid)
				update_settings(&gs, root, d->attname, NULL);
		}
		/* the column was part of a row type a tracked table holds values of */
		if (OidIsValid(get_rel_type_id(d->relid)))
			guard_holders(&gs, get_rel_type_id(d->relid), &done,
						  psprintf("drop attribute \"%s\"", d->attname ? d->attname : "?"));
	}
	PG_RETURN_VOID();
}

/*
 * activity_monitor._guard_ddl(): the ddl_command_start event trigger (see
 * the file header).
 */
Datum
activity_monitor_guard_ddl(PG_FUNCTION_ARGS)
{
	GuardState	gs = {0};
	Node	   *parsetree;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor._guard_ddl() must be called as an event trigger")));
	gs.trigdata = (EventTriggerData *) fcinfo->context;
	gs.at_start = true;
	parsetree = gs.trigdata->parsetree;
	covered_roots = NIL;
	covered_key = parsetree;
	covered_lxid = MyProc->lxid;

	/*
	 * DROP EXTENSION activity_monitor, or DROP SCHEMA activity_monitor
	 * CASCADE (which drops the extension with it): say who, and the seal
	 * head, first
	 */
	if (IsA(parsetree, DropStmt) &&
		(((DropStmt *) parsetree)->removeType == OBJECT_EXTENSION ||
		 (((DropStmt *) parsetree)->removeType == OBJECT_SCHEMA &&
		  ((DropStmt *) parsetree)->behavior == DROP_CASCADE)))
	{
		ListCell   *lc;

		foreach(lc, ((DropStmt *) parsetree)->objects)
			if (strcmp(strVal(lfirst(lc)), "activity_monitor") == 0)
				am_seal_drop_warning();
	}

	/* only the statements that can reach a tracked table go further */
	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
		case T_RenameStmt:
		case T_AlterObjectSchemaStmt:
		case T_AlterObjectDependsStmt:
		case T_DropStmt:
		case T_DropOwnedStmt:
		case T_CreateStmt:
		case T_AlterExtensionContentsStmt:
		case T_CreateTrigStmt:
		case T_AlterEnumStmt:
			break;
		default:
			PG_RETURN_VOID();
	}
	if (!guard_setup(&gs))
		PG_RETURN_VOID();

	switch (nodeTag(parsetree))
	{
		case T_AlterTableStmt:
			guard_alter_table(&gs, (AlterTableStmt *) parsetree);
			break;
		case T_RenameStmt:
			guard_rename(&gs, (RenameStmt *) parsetree);
			break;
		case T_AlterObjectSchemaStmt:
			{
				AlterObjectSchemaStmt *stmt = (AlterObjectSchemaStmt *) parsetree;
				Oid			relid = lookup_rel(stmt->relation, AccessExclusiveLock);

				/* a same-named table would take its writes, uncaptured */
				if (OidIsValid(relid) && read_tracked(relid).found)
					guard(&gs, relid, relid, psprintf("move tracked table \"%s\" to schema \"%s\"",
													  qualified_name(relid),
													  stmt->newschema));
				break;
			}
		case T_AlterObjectDependsStmt:
			{
				AlterObjectDependsStmt *stmt = (AlterObjectDependsStmt *) parsetree;
				Oid			relid;
				Oid			root;
				const char *trig;

				if (stmt->objectType != OBJECT_TRIGGER || stmt->object == NULL)
					break;
				trig = IsA(stmt->object, List) ? strVal(llast((List *) stmt->object)) :
					strVal(stmt->object);
				relid = lookup_rel(stmt->relation, AccessExclusiveLock);
				root = tracked_root(relid);
				/* dropping that extension would drop the trigger with it */
				if (OidIsValid(root) && is_capture_trigger(&gs, relid, trig))
					guard(&gs, root, relid,
						  psprintf("make trigger \"%s\" of table \"%s\" depend on an extension",
								   trig, qualified_name(relid)));
				break;
			}
		case T_DropStmt:
			guard_drop(&gs, (DropStmt *) parsetree);
			break;
		case T_AlterEnumStmt:
			{
				AlterEnumStmt *stmt = (AlterEnumStmt *) parsetree;
				Oid			typid;
				List	   *done = NIL;

				/* RENAME VALUE gives every stored value of it another meaning */
				if (stmt->oldVal == NULL)
					break;
				typid = LookupTypeNameOid(NULL, makeTypeNameFromNameList(stmt->typeName), true);
				/* not an enum: PostgreSQL's own error */
				if (!OidIsValid(typid) || get_typtype(typid) != TYPTYPE_ENUM)
					break;
				guard_holders(&gs, typid, &done, psprintf("rename value \"%s\"", stmt->oldVal));
				break;
			}
		case T_CreateTrigStmt:
			guard_create_trigger(&gs, (CreateTrigStmt *) parsetree);
			break;
		case T_DropOwnedStmt:
			{
				List	   *roles = NIL;
				ListCell   *lc;

				foreach(lc, ((DropOwnedStmt *) parsetree)->roles)
				{
					Oid			r = get_rolespec_oid(lfirst(lc), true);

					if (OidIsValid(r))
						roles = lappend_oid(roles, r);
				}
				if (roles != NIL)
					guard_tracked_where(&gs, InvalidOid, roles, "drop objects owned by a role");
				break;
			}
		case T_AlterExtensionContentsStmt:
			{
				AlterExtensionContentsStmt *stmt = (AlterExtensionContentsStmt *) parsetree;
				Oid			relid;
				Oid			root;

				if (stmt->action <= 0 || stmt->objtype != OBJECT_TABLE)
					break;
				relid = lookup_rel(makeRangeVarFromNameList((List *) stmt->object),
								   ShareUpdateExclusiveLock);
				root = tracked_root(relid);
				/* DROP EXTENSION would then drop the table with it */
				if (OidIsValid(root))
					guard(&gs, root, relid,
						  psprintf("add table \"%s\" to extension \"%s\"",
								   qualified_name(relid), stmt->extname));
				break;
			}
		case T_CreateStmt:
			{
				CreateStmt *stmt = (CreateStmt *) parsetree;
				ListCell   *lc;

				/* INHERITS (a partition's rows are captured: not guarded) */
				if (stmt->partbound != NULL)
					break;
				foreach(lc, stmt->inhRelations)
				{
					Oid			parent = lookup_rel(lfirst(lc), ShareUpdateExclusiveLock);
					Oid			root = tracked_root(parent);

					/* UPDATE of the parent would change the child's rows uncaptured */
					if (OidIsValid(root))
						guard(&gs, root, parent,
							  psprintf("create table \"%s\" inheriting from tracked table \"%s\"",
									   (stmt->relation->relname),
									   qualified_name(parent)));
				}
				break;
			}
		default:
			break;
	}
	PG_RETURN_VOID();
}
