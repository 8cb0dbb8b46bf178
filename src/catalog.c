/*-------------------------------------------------------------------------
 *
 * catalog.c
 *	  Where the extension's objects are: its schema, its relations and
 *	  their columns, found once per backend and forgotten on invalidation.
 *
 * Every name is resolved through the extension's schema, itself found by
 * OID through pg_extension, never through search_path and never by the
 * schema's name: a schema called activity_monitor that is not the
 * extension's must not be used.  The relations (the activity table and its
 * id sequence, tracked and its primary key, alert_rule) are found by name
 * in that schema, and the columns the C code reads or writes by name in
 * their relation, once; code elsewhere indexes values with the attribute
 * numbers kept here, never with numbers written into the source (a later
 * version may add or drop columns).  A relcache invalidation of one of
 * these relations (ALTER TABLE, DROP EXTENSION) or a cache reset forgets
 * it all; the next use looks it up again, and the result counts only once
 * a look-up finished with no invalidation arriving meanwhile.
 *
 * Also here: the reads of activity_monitor.tracked that capture and the
 * DDL guard share (a table's settings row, the list of tracked tables).
 * They read the table directly, like a catalog: the writer needs no
 * privilege on it.
 *
 * IDENTIFICATION
 *	  src/catalog.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/indexing.h"
#include "catalog/pg_extension.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/rel.h"
#include "utils/snapmgr.h"

/* Names of the activity columns, in ActivityColumn order. */
static const char *const activity_column_names[AC_NUM_COLUMNS] = {
	"id", "occurred_at", "kind", "action", "table_name", "row_key",
	"subject_id", "actor_type", "actor_id", "actor_reason", "actor_context",
	"status_from", "status_to", "critical", "old_values", "new_values",
	"db_user", "application_name", "client_addr", "backend_pid", "txid",
	"matched", "rule_errors"
};

/* Names of the tracked columns, in TrackedColumn order. */
static const char *const tracked_column_names[TC_NUM_COLUMNS] = {
	"tbl", "kind", "subject_column", "status_column", "critical_columns",
	"ignore_columns", "redact_columns", "critical_statuses"
};

/* Names of the alert_rule columns, in RuleColumn order. */
static const char *const rule_column_names[RC_NUM_COLUMNS] = {
	"id", "name", "predicate", "severity", "kinds", "tables", "within",
	"threshold", "measure", "measure_path", "group_by", "cooldown", "channel",
	"enabled", "steps", "missing", "lookback", "full_payload"
};

static AmCatalog catalog;
static bool catalog_valid = false;
static bool catalog_loading = false;
static uint64 catalog_invals = 0;	/* invalidations that concern us */

/*
 * Forget the catalog when one of its relations changes, on a cache reset,
 * and on any invalidation that arrives while it is being looked up (the
 * relations' OIDs are not known yet then).
 */
static void
catalog_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || catalog_loading || relid == catalog.activity ||
		relid == catalog.tracked || relid == catalog.alert_rule)
	{
		catalog_valid = false;
		catalog_invals++;
	}
}

/* Register the invalidation callback; called once per backend from _PG_init. */
void
am_catalog_init(void)
{
	static bool registered = false;

	if (registered)
		return;
	CacheRegisterRelcacheCallback(catalog_relcache_callback, (Datum) 0);
	registered = true;
}

/*
 * The extension's schema, found through pg_extension (never by name: a
 * schema called activity_monitor that is not the extension's must not be
 * used), InvalidOid when the extension is not installed.  With owner not
 * NULL, also its owner; with version not NULL, its installed version
 * (palloc'd).  Needs a transaction.
 */
Oid
am_extension_schema(Oid *owner, char **version)
{
	Relation	rel = table_open(ExtensionRelationId, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	Oid			nsp = InvalidOid;

	ScanKeyInit(&key, Anum_pg_extension_extname, BTEqualStrategyNumber, F_NAMEEQ,
				CStringGetDatum("activity_monitor"));
	scan = systable_beginscan(rel, ExtensionNameIndexId, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		nsp = ((Form_pg_extension) GETSTRUCT(tup))->extnamespace;
		if (owner)
			*owner = ((Form_pg_extension) GETSTRUCT(tup))->extowner;
		if (version)
		{
			bool		isnull;
			Datum		v = heap_getattr(tup, Anum_pg_extension_extversion,
										 RelationGetDescr(rel), &isnull);

			*version = isnull ? NULL : TextDatumGetCString(v);
		}
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return nsp;
}

/* The relation called name in the extension's schema nsp; raises if none. */
static Oid
catalog_relid(Oid nsp, const char *name)
{
	Oid			relid = get_relname_relid(name, nsp);

	if (!OidIsValid(relid))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"activity_monitor\" is not installed in this database"),
				 errdetail("Its schema has no relation \"%s\".", name),
				 errhint("Run CREATE EXTENSION activity_monitor.")));
	return relid;
}

/*
 * The attribute numbers of the named columns of relid; raises if one of
 * the first nrequired is missing (the others are InvalidAttrNumber then).
 */
static void
catalog_attnums(Oid relid, const char *const *names, int n, int nrequired,
				AttrNumber *out)
{
	for (int c = 0; c < n; c++)
	{
		/* get_attnum skips dropped columns */
		out[c] = get_attnum(relid, names[c]);
		if (out[c] == InvalidAttrNumber && c < nrequired)
			elog(ERROR, "activity_monitor.%s has no column \"%s\"",
				 get_rel_name(relid), names[c]);
	}
}

/*
 * Look everything up into a local copy; it becomes the catalog only if no
 * invalidation arrived meanwhile (else the caller looks up again).  On
 * error the catalog stays invalid (catalog_loading may stay set: it only
 * makes invalidations count until the next look-up, which resets it).
 */
static void
catalog_load(void)
{
	AmCatalog	c;
	uint64		invals = catalog_invals;

	memset(&c, 0, sizeof(c));
	catalog_loading = true;
	c.schema = am_extension_schema(NULL, NULL);
	if (!OidIsValid(c.schema))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"activity_monitor\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION activity_monitor.")));
	c.activity = catalog_relid(c.schema, "activity");
	c.activity_seq = catalog_relid(c.schema, "activity_id_seq");
	c.tracked = catalog_relid(c.schema, "tracked");
	c.tracked_pkey = catalog_relid(c.schema, "tracked_pkey");
	c.alert_rule = catalog_relid(c.schema, "alert_rule");
	catalog_attnums(c.activity, activity_column_names, AC_NUM_COLUMNS, AC_NUM_COLUMNS,
					c.activity_att);
	catalog_attnums(c.tracked, tracked_column_names, TC_NUM_COLUMNS, TC_FIRST_OPTIONAL,
					c.tracked_att);
	catalog_attnums(c.alert_rule, rule_column_names, RC_NUM_COLUMNS, RC_FIRST_OPTIONAL,
					c.rule_att);
	catalog_loading = false;
	catalog = c;
	catalog_valid = catalog_invals == invals;
}

/*
 * The extension's objects, looked up if needed.  Raises when the extension
 * is not installed.  What it points to changes only when a later call
 * looks the objects up again (after an invalidation: a lock taken, a new
 * transaction); callers copy what they need across such calls.
 */
const AmCatalog *
am_catalog(void)
{
	while (!catalog_valid)
		catalog_load();
	return &catalog;
}

/* The name of an activity column (for messages). */
const char *
am_activity_column_name(ActivityColumn c)
{
	return activity_column_names[c];
}

/*
 * Is relid one of the extension's relations (the activity table, a
 * partition, any table of its schema)?  Capture must never write them.
 */
bool
am_is_extension_rel(Oid relid)
{
	const AmCatalog *c = am_catalog();

	return relid == c->activity || get_rel_namespace(relid) == c->schema;
}

/*
 * Read the settings row of table relid from activity_monitor.tracked into
 * row (values and nulls in TrackedColumn order, copied into cxt; a column
 * the table lacks, see TC_FIRST_OPTIONAL, as NULL); false if the table has
 * none.  latest: with the latest snapshot, taken once the
 * table is locked (a row this transaction wrote is seen); else with the
 * catalog snapshot.
 */
bool
am_tracked_read(Oid relid, bool latest, MemoryContext cxt, AmTrackedRow *row)
{
	const AmCatalog *c = am_catalog();
	Oid			tracked = c->tracked;
	Oid			pkey = c->tracked_pkey;
	AttrNumber	att[TC_NUM_COLUMNS];
	Relation	rel;
	Snapshot	snap = NULL;
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;

	/* opening may process an invalidation: keep what the scan needs */
	memcpy(att, c->tracked_att, sizeof(att));
	memset(row, 0, sizeof(*row));
	rel = table_open(tracked, AccessShareLock);
	if (latest)
		snap = RegisterSnapshot(GetLatestSnapshot());
	ScanKeyInit(&key, att[TC_TBL], BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(relid));
	scan = systable_beginscan(rel, pkey, true, snap, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);
		HeapTuple	copy = heap_copytuple(tup);

		for (int i = 0; i < TC_NUM_COLUMNS; i++)
		{
			/* a column a 0.1.0 database lacks reads as NULL */
			if (att[i] == InvalidAttrNumber)
			{
				row->values[i] = (Datum) 0;
				row->nulls[i] = true;
				continue;
			}
			row->values[i] = heap_getattr(copy, att[i], RelationGetDescr(rel),
										  &row->nulls[i]);
		}
		MemoryContextSwitchTo(old);
		row->found = true;
		row->written_here =
			TransactionIdIsCurrentTransactionId(HeapTupleHeaderGetXmin(tup->t_data));
	}
	systable_endscan(scan);
	if (snap)
		UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return row->found;
}

/*
 * The tables activity_monitor.tracked has a row for; latest as for
 * am_tracked_read.
 */
List *
am_tracked_tables(bool latest)
{
	const AmCatalog *c = am_catalog();
	AttrNumber	tbl_att = c->tracked_att[TC_TBL];
	Relation	rel = table_open(c->tracked, AccessShareLock);
	Snapshot	snap = latest ? RegisterSnapshot(GetLatestSnapshot()) : NULL;
	SysScanDesc scan;
	HeapTuple	tup;
	List	   *result = NIL;

	scan = systable_beginscan(rel, InvalidOid, false, snap, 0, NULL);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		bool		isnull;
		Datum		d = heap_getattr(tup, tbl_att, RelationGetDescr(rel), &isnull);

		if (!isnull)
			result = lappend_oid(result, DatumGetObjectId(d));
	}
	systable_endscan(scan);
	if (snap)
		UnregisterSnapshot(snap);
	table_close(rel, AccessShareLock);
	return result;
}
