/*-------------------------------------------------------------------------
 *
 * partitions.c
 *	  Capture across partition trees: which tracked table governs a
 *	  relation's rows, and every relation of a tree with exactly the capture
 *	  triggers that follow from it, whatever was attached, detached, created,
 *	  tracked or untracked in which order.
 *
 * A relation is governed by the outermost tracked table among itself and
 * its partition ancestors: its rows are captured with that table's settings
 * and their events name it.  A tracked table below another tracked table
 * (tracked while it stood alone, then attached) keeps its settings, unused
 * until it is detached or the table above it is untracked.
 *
 * The triggers of a tree: the governing table has its own AFTER ROW trigger
 * activity_monitor_capture, which PostgreSQL clones onto every partition
 * below it, those created or attached later included; every governed
 * relation but a foreign table has its own AFTER TRUNCATE statement trigger
 * activity_monitor_truncate (statement triggers are not cloned).  A
 * relation nobody governs has no trigger running capture() under either
 * name.  Each governed leaf thus fires one row trigger per change, and
 * capture() records only through those two triggers (capture.c).
 *
 * am_partitions_sync() puts a whole partition tree into that state.  It
 * runs at the end of track() and untrack(), and from the ddl_command_end
 * event trigger activity_monitor_partitions after CREATE TABLE ... PARTITION
 * OF (also inside CREATE SCHEMA), ATTACH PARTITION and DETACH PARTITION: one
 * mechanism gives a partition created or attached by the table's owner its
 * TRUNCATE trigger, a detached tracked table its own row trigger back, and
 * a detached untracked one no trigger at all.  It creates and drops the
 * triggers directly (CreateTrigger, performDeletion), as the extension's
 * owner: no event trigger sees that, so the DDL guard neither judges nor
 * records it.  An ATTACH needs one step before the command:
 * am_partitions_before_attach(), called by the guard on ddl_command_start.
 *
 * It also lists the activity table's own partitions and their bounds for
 * the partition maintenance (_partitions(), read from the relcache's
 * partition descriptor).
 *
 * IDENTIFICATION
 *	  src/partitions.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/dependency.h"
#include "catalog/indexing.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_inherits.h"
#include "catalog/pg_proc.h"
#include "catalog/pg_trigger.h"
#include "catalog/pg_type.h"
#include "commands/event_trigger.h"
#include "commands/extension.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "nodes/parsenodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/lmgr.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"

PG_FUNCTION_INFO_V1(activity_monitor_sync_capture);
PG_FUNCTION_INFO_V1(activity_monitor_partitions_ddl);
PG_FUNCTION_INFO_V1(activity_monitor_partitions);

/* tgtype of the two capture triggers (AFTER is 0) */
#define ROW_TRIGGER_TYPE \
	(TRIGGER_TYPE_ROW | TRIGGER_TYPE_INSERT | TRIGGER_TYPE_DELETE | TRIGGER_TYPE_UPDATE)
#define TRUNCATE_TRIGGER_TYPE TRIGGER_TYPE_TRUNCATE

/* A trigger of one of the two names on one relation. */
typedef struct NamedTrigger
{
	Oid			oid;			/* InvalidOid: there is none */
	Oid			parentid;		/* the trigger it is cloned from, if any */
	bool		runs_capture;	/* its function is capture() */
	bool		valid;			/* exactly what track() installs */
} NamedTrigger;

/*
 * activity_monitor.capture() and the extension's owner; InvalidOid when the
 * extension is not there.
 */
static Oid
capture_function(Oid *extowner)
{
	Oid			schema = am_extension_schema(extowner, NULL);

	if (!OidIsValid(schema))
		return InvalidOid;
	return GetSysCacheOid3(PROCNAMEARGSNSP, Anum_pg_proc_oid,
						   CStringGetDatum("capture"),
						   PointerGetDatum(buildoidvector(NULL, 0)),
						   ObjectIdGetDatum(schema));
}

/* The outermost of relid and its partition ancestors that is in tracked. */
static Oid
governing_in(Oid relid, List *tracked)
{
	Oid			gov = list_member_oid(tracked, relid) ? relid : InvalidOid;
	ListCell   *lc;

	if (tracked == NIL || !get_rel_relispartition(relid))
		return gov;
	/* nearest first: the last one found is the outermost */
	foreach(lc, get_partition_ancestors(relid))
	{
		if (list_member_oid(tracked, lfirst_oid(lc)))
			gov = lfirst_oid(lc);
	}
	return gov;
}

/*
 * The tracked table whose settings govern the rows of relid (see the file
 * header), InvalidOid if none; activity_monitor.tracked read with the
 * latest snapshot (latest), or the catalog snapshot, as capture reads
 * settings.
 */
Oid
am_governing_table(Oid relid, bool latest)
{
	const AmCatalog *c = am_catalog();
	Oid			indexoid = c->tracked_pkey;
	AttrNumber	tbl_att = c->tracked_att[TC_TBL];
	Relation	rel = table_open(c->tracked, AccessShareLock);
	Snapshot	snap = latest ? RegisterSnapshot(GetLatestSnapshot()) : NULL;
	List	   *candidates = list_make1_oid(relid);
	Oid			gov = InvalidOid;
	ListCell   *lc;

	if (get_rel_relispartition(relid))
		candidates = list_concat(candidates, get_partition_ancestors(relid));
	foreach(lc, candidates)
	{
		ScanKeyData key;
		SysScanDesc scan;

		ScanKeyInit(&key, tbl_att, BTEqualStrategyNumber, F_OIDEQ,
					ObjectIdGetDatum(lfirst_oid(lc)));
		scan = systable_beginscan(rel, indexoid, true, snap, 1, &key);
		if (HeapTupleIsValid(systable_getnext(scan)))
			gov = lfirst_oid(lc);
		systable_endscan(scan);
	}
	if (snap)
		UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return gov;
}

/*
 * The trigger called name on relid, and whether it is the capture trigger
 * of that name as track() installs it: capture(), AFTER, the given events
 * and level, no WHEN, no column list, no argument, no transition table,
 * not a constraint trigger.  Its enabled state is not judged: changing it
 * is guarded, and a superuser may mean it.
 */
static NamedTrigger
named_trigger(Oid relid, const char *name, int16 tgtype, Oid capture_fn)
{
	NamedTrigger t = {InvalidOid, InvalidOid, false, false};
	Relation	rel = table_open(TriggerRelationId, AccessShareLock);
	ScanKeyData keys[2];
	SysScanDesc scan;
	HeapTuple	tup;

	ScanKeyInit(&keys[0], Anum_pg_trigger_tgrelid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	ScanKeyInit(&keys[1], Anum_pg_trigger_tgname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum(name));
	scan = systable_beginscan(rel, TriggerRelidNameIndexId, true, NULL, 2, keys);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		Form_pg_trigger f = (Form_pg_trigger) GETSTRUCT(tup);
		TupleDesc	desc = RelationGetDescr(rel);

		t.oid = f->oid;
		t.parentid = f->tgparentid;
		t.runs_capture = f->tgfoid == capture_fn;
		t.valid = t.runs_capture && f->tgtype == tgtype && !f->tgisinternal &&
			f->tgnargs == 0 && f->tgattr.dim1 == 0 && !OidIsValid(f->tgconstraint) &&
			heap_attisnull(tup, Anum_pg_trigger_tgqual, desc) &&
			heap_attisnull(tup, Anum_pg_trigger_tgoldtable, desc) &&
			heap_attisnull(tup, Anum_pg_trigger_tgnewtable, desc);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return t;
}

/* Drop a trigger of ours (and the clones of a row trigger with it). */
static void
drop_trigger(Oid trigoid)
{
	ObjectAddress addr;

	ObjectAddressSet(addr, TriggerRelationId, trigoid);
	performDeletion(&addr, DROP_RESTRICT, PERFORM_DELETION_INTERNAL);
	CommandCounterIncrement();
}

/*
 * Create a capture trigger on relid, as track() defines it; a row trigger
 * on a partitioned table is cloned onto its partitions.  The caller runs as
 * the extension's owner (CreateTrigger checks TRIGGER and EXECUTE).
 */
static void
create_trigger(Oid relid, bool row, Oid capture_fn)
{
	CreateTrigStmt *stmt = makeNode(CreateTrigStmt);

	stmt->trigname = row ? AM_CAPTURE_TRIGGER : AM_TRUNCATE_TRIGGER;
	stmt->relation = makeRangeVar(get_namespace_name(get_rel_namespace(relid)),
								  get_rel_name(relid), -1);
	stmt->funcname = list_make2(makeString(AM_SCHEMA), makeString("capture"));
	stmt->row = row;
	stmt->timing = TRIGGER_TYPE_AFTER;
	stmt->events = row ? (TRIGGER_TYPE_INSERT | TRIGGER_TYPE_UPDATE | TRIGGER_TYPE_DELETE) :
		TRIGGER_TYPE_TRUNCATE;
	CreateTrigger(stmt, NULL, relid, InvalidOid, InvalidOid, InvalidOid, capture_fn,
				  InvalidOid, NULL, false, false);
	CommandCounterIncrement();
}

/*
 * Give relid its own row trigger.  A row trigger of that name on a relation
 * below it (its own settings' trigger, when it was tracked on its own)
 * would block the clone: those go first.
 */
static void
create_row_trigger(Oid relid, Oid capture_fn)
{
	ListCell   *lc;

	foreach(lc, find_all_inheritors(relid, NoLock, NULL))
	{
		NamedTrigger t = named_trigger(lfirst_oid(lc), AM_CAPTURE_TRIGGER,
									   ROW_TRIGGER_TYPE, capture_fn);

		if (lfirst_oid(lc) != relid && OidIsValid(t.oid) && !OidIsValid(t.parentid))
			drop_trigger(t.oid);
	}
	create_trigger(relid, true, capture_fn);
}

/* Refuse a governed relation whose trigger of a capture name is cloned from elsewhere. */
static void
refuse_foreign_clone(Oid relid, const char *name)
{
	ereport(ERROR,
			(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
			 errmsg("trigger \"%s\" of table \"%s\" is not activity_monitor's",
					name, get_rel_name(relid)),
			 errdetail("It is cloned from a trigger of a partitioned table above it, and table \"%s\" is captured by activity_monitor, which needs that name for its own trigger.",
					   get_rel_name(relid)),
			 errhint("Drop or rename the trigger \"%s\" of the partitioned table it comes from.",
					 name)));
}

/* The top of relid's partition tree (relid itself if not a partition). */
static Oid
partition_top(Oid relid)
{
	List	   *anc;

	if (!get_rel_relispartition(relid))
		return relid;
	anc = get_partition_ancestors(relid);
	return anc != NIL ? llast_oid(anc) : relid;
}

/*
 * The top of relid's partition tree, locked in SHARE UPDATE EXCLUSIVE mode:
 * syncs of one tree (a track() and an ATTACH in two sessions) run one after
 * the other, each seeing the other's partitions and settings, while writers
 * go on (the mode does not conflict with theirs).
 */
static Oid
lock_tree(Oid relid)
{
	Oid			top = partition_top(relid);

	for (;;)
	{
		Oid			now;

		LockRelationOid(top, ShareUpdateExclusiveLock);
		/* attached elsewhere while we waited: lock the new top too */
		now = partition_top(relid);
		if (now == top)
			return top;
		top = now;
	}
}

/*
 * Put the capture triggers of relid's whole partition tree in the state its
 * tracked tables call for (see the file header).  reset_root, if valid, is
 * a table track() just configured: the triggers of its subtree are replaced
 * by fresh ones, as track() always did.  Relations nobody governs lose only
 * triggers that run capture(); a trigger of a capture name on a governed
 * relation is replaced whatever it runs (the names are activity_monitor's).
 */
void
am_partitions_sync(Oid relid, Oid reset_root)
{
	Oid			extowner;
	Oid			capture_fn = capture_function(&extowner);
	Oid			save_userid;
	int			save_sec;
	List	   *tracked;
	List	   *reset = NIL;
	ListCell   *lc;
	Oid			top;

	if (!OidIsValid(capture_fn) || !SearchSysCacheExists1(RELOID, ObjectIdGetDatum(relid)))
		return;
	top = lock_tree(relid);
	tracked = am_tracked_tables(true);
	if (OidIsValid(reset_root))
		reset = find_all_inheritors(reset_root, NoLock, NULL);

	GetUserIdAndSecContext(&save_userid, &save_sec);
	SetUserIdAndSecContext(extowner, save_sec | SECURITY_LOCAL_USERID_CHANGE);
	/* parents before their partitions */
	foreach(lc, find_all_inheritors(top, NoLock, NULL))
	{
		Oid			r = lfirst_oid(lc);
		Oid			gov = governing_in(r, tracked);
		bool		fresh = list_member_oid(reset, r);
		NamedTrigger row = named_trigger(r, AM_CAPTURE_TRIGGER, ROW_TRIGGER_TYPE, capture_fn);
		NamedTrigger trunc = named_trigger(r, AM_TRUNCATE_TRIGGER, TRUNCATE_TRIGGER_TYPE,
										   capture_fn);

		if (!OidIsValid(gov))
		{
			/* (a clone goes with the trigger of the parent it comes from) */
			if (OidIsValid(row.oid) && !OidIsValid(row.parentid) && row.runs_capture)
				drop_trigger(row.oid);
			if (OidIsValid(trunc.oid) && !OidIsValid(trunc.parentid) && trunc.runs_capture)
				drop_trigger(trunc.oid);
			continue;
		}

		/* TRUNCATE: its own statement trigger (foreign tables cannot have one) */
		if (OidIsValid(trunc.oid) && OidIsValid(trunc.parentid))
			refuse_foreign_clone(r, AM_TRUNCATE_TRIGGER);
		if (OidIsValid(trunc.oid) && (fresh || !trunc.valid))
		{
			drop_trigger(trunc.oid);
			trunc.oid = InvalidOid;
		}
		if (!OidIsValid(trunc.oid) && get_rel_relkind(r) != RELKIND_FOREIGN_TABLE)
			create_trigger(r, false, capture_fn);

		/*
		 * Rows: the governing table's own trigger, cloned below it.  Parents
		 * come first, so a partition of a governed parent has its clone by
		 * now; a clone on the governing table itself can only come from a
		 * foreign trigger of that name above it (ours there were dropped).
		 */
		if (OidIsValid(row.oid) && OidIsValid(row.parentid))
		{
			if (gov == r || !row.valid)
				refuse_foreign_clone(r, AM_CAPTURE_TRIGGER);
			continue;
		}
		if (OidIsValid(row.oid) && (fresh || !row.valid || gov != r))
		{
			drop_trigger(row.oid);
			row.oid = InvalidOid;
		}
		if (!OidIsValid(row.oid))
			create_row_trigger(r, capture_fn);
	}
	SetUserIdAndSecContext(save_userid, save_sec);
}

/*
 * Called by the guard on ddl_command_start of ALTER TABLE parent ATTACH
 * PARTITION part, once the command is allowed.  When part's tree will be
 * governed from above, its own triggers of the two capture names go: the
 * parent's row trigger is cloned onto every relation of it (a row trigger
 * of the same name would make ATTACH fail: "trigger ... already exists"),
 * and am_partitions_sync() at the command's end gives it fresh TRUNCATE
 * triggers (a table that stood alone may hold one prepared by its owner
 * that does something else, or is disabled).  The drops roll back with the
 * command.
 */
void
am_partitions_before_attach(Oid parent, Oid part)
{
	Oid			extowner;
	Oid			capture_fn = capture_function(&extowner);
	bool		governed;
	ListCell   *lc;

	if (!OidIsValid(capture_fn))
		return;
	governed = OidIsValid(am_governing_table(parent, true));
	if (!governed)
		return;
	foreach(lc, find_all_inheritors(part, AccessExclusiveLock, NULL))
	{
		NamedTrigger row = named_trigger(lfirst_oid(lc), AM_CAPTURE_TRIGGER,
										 ROW_TRIGGER_TYPE, capture_fn);
		NamedTrigger trunc = named_trigger(lfirst_oid(lc), AM_TRUNCATE_TRIGGER,
										   TRUNCATE_TRIGGER_TYPE, capture_fn);

		if (OidIsValid(row.oid) && !OidIsValid(row.parentid))
			drop_trigger(row.oid);
		if (OidIsValid(trunc.oid) && !OidIsValid(trunc.parentid))
			drop_trigger(trunc.oid);
	}
}

/*
 * activity_monitor._sync_capture(tbl regclass, reset boolean): sync the
 * partition tree of tbl; reset replaces the triggers of tbl's subtree
 * (track()).  Private: track() and untrack() call it.
 */
Datum
activity_monitor_sync_capture(PG_FUNCTION_ARGS)
{
	Oid			relid;

	if (PG_ARGISNULL(0))
		PG_RETURN_VOID();
	relid = PG_GETARG_OID(0);
	am_partitions_sync(relid, !PG_ARGISNULL(1) && PG_GETARG_BOOL(1) ? relid : InvalidOid);
	PG_RETURN_VOID();
}

/*
 * The partitions a CREATE TABLE, CREATE FOREIGN TABLE or CREATE SCHEMA
 * command created (pg_event_trigger_ddl_commands(): a CREATE SCHEMA's
 * tables are its subcommands, which fire no event trigger of their own).
 */
static List *
created_partitions(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	List	   *result = NIL;
	int			rc;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	rc = SPI_execute("SELECT c.objid FROM pg_catalog.pg_event_trigger_ddl_commands() c "
					 "WHERE c.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass "
					 "AND c.objsubid OPERATOR(pg_catalog.=) 0 "
					 "AND c.command_tag OPERATOR(pg_catalog.=) ANY ('{CREATE TABLE,CREATE FOREIGN TABLE}'::pg_catalog.text[])",
					 true, 0);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read the commands: %s", SPI_result_code_string(rc));
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		Oid			relid = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i],
														   SPI_tuptable->tupdesc, 1, &isnull));

		if (!isnull && get_rel_relispartition(relid))
		{
			MemoryContext old = MemoryContextSwitchTo(cxt);

			result = lappend_oid(result, relid);
			MemoryContextSwitchTo(old);
		}
	}
	SPI_finish();
	return result;
}

/* Does the statement create a partition (directly or in CREATE SCHEMA)? */
static bool
creates_partition(Node *parsetree)
{
	ListCell   *lc;

	switch (nodeTag(parsetree))
	{
		case T_CreateStmt:
		case T_CreateForeignTableStmt:
			return ((CreateStmt *) parsetree)->partbound != NULL;
		case T_CreateSchemaStmt:
			foreach(lc, ((CreateSchemaStmt *) parsetree)->schemaElts)
			{
				if (IsA(lfirst(lc), CreateStmt) &&
					((CreateStmt *) lfirst(lc))->partbound != NULL)
					return true;
			}
			return false;
		default:
			return false;
	}
}

/*
 * activity_monitor._partitions_ddl(): the ddl_command_end event trigger
 * activity_monitor_partitions (CREATE TABLE, CREATE FOREIGN TABLE, CREATE
 * SCHEMA, ALTER TABLE): after a command that created, attached or detached
 * a partition, sync the trees it touched.  Not during a binary upgrade or
 * the extension's own scripts, nor for the extension's own tables (the
 * worker's partition maintenance).
 */
Datum
activity_monitor_partitions_ddl(PG_FUNCTION_ARGS)
{
	EventTriggerData *trigdata;
	Node	   *parsetree;
	Oid			extoid;
	Oid			schema;
	List	   *rels = NIL;
	ListCell   *lc;

	if (!CALLED_AS_EVENT_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor._partitions_ddl() must be called as an event trigger")));
	trigdata = (EventTriggerData *) fcinfo->context;
	parsetree = trigdata->parsetree;
	extoid = get_extension_oid("activity_monitor", true);
	if (!OidIsValid(extoid) || IsBinaryUpgrade ||
		(creating_extension && CurrentExtensionObject == extoid))
		PG_RETURN_VOID();

	if (IsA(parsetree, AlterTableStmt))
	{
		AlterTableStmt *stmt = (AlterTableStmt *) parsetree;

		foreach(lc, stmt->objtype == OBJECT_TABLE ? stmt->cmds : NIL)
		{
			AlterTableCmd *cmd = lfirst_node(AlterTableCmd, lc);
			Oid			parent;
			Oid			part;

			if (cmd->subtype != AT_AttachPartition && cmd->subtype != AT_DetachPartition &&
				cmd->subtype != AT_DetachPartitionFinalize)
				continue;
			/* the names resolve as they did for the command: it holds their locks */
			parent = RangeVarGetRelid(stmt->relation, NoLock, true);
			part = RangeVarGetRelid(((PartitionCmd *) cmd->def)->name, NoLock, true);
			if (OidIsValid(parent))
				rels = lappend_oid(rels, parent);
			/* a detached table is a tree of its own */
			if (OidIsValid(part) && cmd->subtype != AT_AttachPartition)
				rels = lappend_oid(rels, part);
		}
	}
	else if (creates_partition(parsetree))
		rels = created_partitions();

	schema = am_extension_schema(NULL, NULL);
	foreach(lc, rels)
	{
		if (get_rel_namespace(lfirst_oid(lc)) != schema)
			am_partitions_sync(lfirst_oid(lc), InvalidOid);
	}
	PG_RETURN_VOID();
}

/*
 * activity_monitor._partitions(): the dated partitions of the activity table
 * and their bounds (part, lower, upper), ordered by lower bound, the default
 * partition left out; a MINVALUE lower bound or a MAXVALUE upper bound is
 * NULL (and a partition from MINVALUE comes last, as NULLs sort).
 *
 * Read from the parent's partition descriptor, which the relcache keeps
 * built between calls: the range bounds are already sorted there and each
 * partition's upper bound points at it, so a call costs a pass over the
 * bounds instead of deparsing and parsing every partition's relpartbound
 * (the 0.1.0 SQL version: about 100 ms at 1,800 partitions).  The parent is
 * locked ACCESS SHARE until the end of the transaction, so the list holds
 * while the caller acts on it (DETACH and DROP of a partition need ACCESS
 * EXCLUSIVE on the parent).  Only the extension's owner and superusers may
 * execute it (60_grants.sql).
 */
Datum
activity_monitor_partitions(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	Relation	rel;
	PartitionDesc pd;
	PartitionBoundInfo bi;
	Datum		values[3];
	bool		nulls[3];
	Oid			from_min = InvalidOid;	/* the partition from MINVALUE, if any */
	Datum		from_min_upper = (Datum) 0;
	bool		from_min_upper_null = false;

	InitMaterializedSRF(fcinfo, 0);

	rel = table_open(am_catalog()->activity, AccessShareLock);
	pd = RelationGetPartitionDesc(rel, false);
	bi = pd->boundinfo;
	if (pd->nparts > 0 &&
		(bi == NULL || bi->strategy != PARTITION_STRATEGY_RANGE ||
		 get_partition_natts(RelationGetPartitionKey(rel)) != 1 ||
		 get_partition_col_typid(RelationGetPartitionKey(rel), 0) != TIMESTAMPTZOID))
		elog(ERROR, "activity_monitor.activity is not range-partitioned on one timestamptz column");

	/*
	 * indexes[i] is the partition whose upper bound is datums[i] (-1 for a
	 * gap); its lower bound is datums[i - 1].  indexes[0] is always -1: the
	 * first datum is nobody's upper bound.
	 */
	for (int i = 1; pd->nparts > 0 && i < bi->ndatums; i++)
	{
		int			p = bi->indexes[i];

		if (p < 0)
			continue;
		values[0] = ObjectIdGetDatum(pd->oids[p]);
		nulls[1] = bi->kind[i - 1][0] != PARTITION_RANGE_DATUM_VALUE;
		values[1] = nulls[1] ? (Datum) 0 : bi->datums[i - 1][0];
		nulls[2] = bi->kind[i][0] != PARTITION_RANGE_DATUM_VALUE;
		values[2] = nulls[2] ? (Datum) 0 : bi->datums[i][0];
		nulls[0] = false;
		if (nulls[1])
		{
			from_min = pd->oids[p];
			from_min_upper = values[2];
			from_min_upper_null = nulls[2];
			continue;
		}
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}
	if (OidIsValid(from_min))
	{
		values[0] = ObjectIdGetDatum(from_min);
		nulls[0] = false;
		values[1] = (Datum) 0;
		nulls[1] = true;
		values[2] = from_min_upper;
		nulls[2] = from_min_upper_null;
		tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, values, nulls);
	}

	/* the lock stays until the end of the transaction */
	table_close(rel, NoLock);
	return (Datum) 0;
}
