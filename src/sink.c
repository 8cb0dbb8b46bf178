/*-------------------------------------------------------------------------
 *
 * sink.c
 *	  Writes activity rows straight into the right partition of
 *	  activity_monitor.activity.
 *
 * Capture runs inside every platform write, so an SPI INSERT per row (a
 * plan, an executor start-up and tuple routing each time) is too slow.
 * Instead, the sink finds the partition with the parent's partition
 * descriptor (a binary search on the bounds), inserts the heap tuple and
 * its index entries directly, and keeps the partitions it opened (with their
 * index state) until the end of the transaction.  Relations are opened
 * under the top transaction's resource owner so that a savepoint rolled back
 * in between does not close them under us; an XactCallback closes them
 * before commit and forgets them on abort.  No privilege on the activity
 * table is needed by the writer, which is what we want: capture is not the
 * writer's choice.
 *
 * IDENTIFICATION
 *	  src/sink.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/attmap.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/inval.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"

/* Names of the activity columns, in ActivityColumn order. */
static const char *const activity_column_names[AC_NUM_COLUMNS] = {
	"id", "occurred_at", "kind", "action", "table_name", "row_key",
	"subject_id", "actor_type", "actor_id", "actor_reason", "actor_context",
	"status_from", "status_to", "critical", "old_values", "new_values",
	"db_user", "application_name", "client_addr", "backend_pid", "txid",
	"matched", "rule_errors"
};

/* Where the extension's objects are; valid until a relcache invalidation. */
typedef struct SinkCatalog
{
	bool		valid;
	Oid			activity;		/* the partitioned parent */
	Oid			sequence;		/* activity_id_seq */
	Oid			tracked;		/* the configuration table */
	Oid			tracked_pkey;	/* and its primary key index */
	Oid			alert_rule;		/* the rules table */
	int			natts;			/* parent's number of attributes */
	AttrNumber	attnum[AC_NUM_COLUMNS]; /* parent attnum of each column */
} SinkCatalog;

/* One partition opened in this transaction. */
typedef struct SinkPart
{
	Oid			relid;
	ResultRelInfo *rri;
	TupleTableSlot *slot;
	AttrMap    *map;			/* parent to partition attnums, NULL if same */
} SinkPart;

#define SINK_MAX_PARTS 16

/* What the current transaction has opened; all in TopTransactionContext. */
typedef struct SinkXact
{
	bool		open;
	Relation	parent;
	EState	   *estate;
	int			nparts;
	SinkPart	parts[SINK_MAX_PARTS];
} SinkXact;

static SinkCatalog catalog;
static SinkXact xact;
static bool callbacks_registered = false;

/* Forget the catalog when any of its relations changes (or all do). */
static void
sink_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == catalog.activity || relid == catalog.tracked)
		catalog.valid = false;
}

/* Close what the transaction opened; before commit only (see header). */
static void
sink_close_all(void)
{
	ResourceOwner save = CurrentResourceOwner;

	/* they were opened under the top transaction's owner: release there */
	CurrentResourceOwner = TopTransactionResourceOwner;
	for (int i = 0; i < xact.nparts; i++)
	{
		ExecCloseIndices(xact.parts[i].rri);
		ExecDropSingleTupleTableSlot(xact.parts[i].slot);
		table_close(xact.parts[i].rri->ri_RelationDesc, NoLock);
	}
	table_close(xact.parent, NoLock);
	FreeExecutorState(xact.estate);
	CurrentResourceOwner = save;
}

static void
sink_xact_callback(XactEvent event, void *arg)
{
	if (!xact.open)
		return;
	switch (event)
	{
		case XACT_EVENT_PRE_COMMIT:
		case XACT_EVENT_PARALLEL_PRE_COMMIT:
		case XACT_EVENT_PRE_PREPARE:
			sink_close_all();
			memset(&xact, 0, sizeof(xact));
			break;
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
			/* the resource owner releases the relations; memory goes too */
			memset(&xact, 0, sizeof(xact));
			break;
		default:
			break;
	}
}

/*
 * Close what the transaction opened (locks are kept).  Called before any
 * utility statement: ALTER TABLE, DROP or TRUNCATE of the activity tables
 * refuse to run while this session holds them open.
 */
void
am_sink_close(void)
{
	if (!xact.open)
		return;
	sink_close_all();
	memset(&xact, 0, sizeof(xact));
}

/* Called once per backend from _PG_init. */
void
am_sink_init(void)
{
	if (callbacks_registered)
		return;
	CacheRegisterRelcacheCallback(sink_relcache_callback, (Datum) 0);
	RegisterXactCallback(sink_xact_callback, NULL);
	callbacks_registered = true;
}

/* Look up the extension's relations and the activity columns. */
static void
sink_load_catalog(void)
{
	Oid			nsp = am_extension_schema(NULL, NULL);
	Relation	rel;
	TupleDesc	desc;

	if (!OidIsValid(nsp) ||
		!OidIsValid(catalog.activity = get_relname_relid("activity", nsp)) ||
		!OidIsValid(catalog.sequence = get_relname_relid("activity_id_seq", nsp)) ||
		!OidIsValid(catalog.tracked = get_relname_relid("tracked", nsp)) ||
		!OidIsValid(catalog.tracked_pkey = get_relname_relid("tracked_pkey", nsp)) ||
		!OidIsValid(catalog.alert_rule = get_relname_relid("alert_rule", nsp)))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"activity_monitor\" is not installed in this database"),
				 errhint("Run CREATE EXTENSION activity_monitor.")));

	rel = table_open(catalog.activity, AccessShareLock);
	desc = RelationGetDescr(rel);
	catalog.natts = desc->natts;
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
	{
		catalog.attnum[c] = InvalidAttrNumber;
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (!att->attisdropped &&
				strcmp(NameStr(att->attname), activity_column_names[c]) == 0)
				catalog.attnum[c] = att->attnum;
		}
		if (catalog.attnum[c] == InvalidAttrNumber)
			elog(ERROR, "activity_monitor.activity has no column \"%s\"",
				 activity_column_names[c]);
	}
	table_close(rel, AccessShareLock);
	catalog.valid = true;
}

static void
ensure_catalog(void)
{
	while (!catalog.valid)
		sink_load_catalog();
}

/* The configuration table's oid (and its primary key's), for capture.c. */
Oid
am_tracked_relid(Oid *indexoid)
{
	ensure_catalog();
	*indexoid = catalog.tracked_pkey;
	return catalog.tracked;
}

/* The rules table's oid, for rules.c. */
Oid
am_alert_rule_relid(void)
{
	ensure_catalog();
	return catalog.alert_rule;
}

/* The next activity id (capture needs it before the row is written). */
int64
am_sink_next_id(void)
{
	ensure_catalog();
	return nextval_internal(catalog.sequence, false);
}

/* Is relid the activity table or one of its partitions? */
bool
am_sink_is_activity_rel(Oid relid)
{
	ensure_catalog();
	return relid == catalog.activity ||
		get_rel_namespace(relid) == get_rel_namespace(catalog.activity);
}

/* Open the parent and the executor state for this transaction. */
static void
sink_open_xact(void)
{
	ResourceOwner save = CurrentResourceOwner;
	MemoryContext oldcxt = MemoryContextSwitchTo(TopTransactionContext);

	CurrentResourceOwner = TopTransactionResourceOwner;
	PG_TRY();
	{
		xact.parent = table_open(catalog.activity, RowExclusiveLock);
		xact.estate = CreateExecutorState();
		xact.nparts = 0;
		xact.open = true;
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
}

/* The partition of the parent that a row with this occurred_at belongs in. */
static Oid
sink_route(Datum occurred_at, bool *is_default)
{
	PartitionKey key = RelationGetPartitionKey(xact.parent);
	PartitionDesc pd = RelationGetPartitionDesc(xact.parent, true);
	PartitionBoundInfo bi = pd->boundinfo;
	int			idx = -1;

	*is_default = false;
	if (bi != NULL && bi->ndatums > 0)
	{
		bool		equal;
		int			off = partition_range_datum_bsearch(key->partsupfunc,
														key->partcollation,
														bi, 1, &occurred_at, &equal);

		idx = bi->indexes[off + 1];
	}
	if (idx < 0 && bi != NULL && partition_bound_has_default(bi))
	{
		idx = bi->default_index;
		*is_default = true;
	}
	if (idx < 0)
		ereport(ERROR,
				(errcode(ERRCODE_CHECK_VIOLATION),
				 errmsg("no partition of activity_monitor.activity for %s",
						timestamptz_to_str(DatumGetTimestampTz(occurred_at))),
				 errhint("Run SELECT activity_monitor.maintain(), and keep the default partition.")));
	return pd->oids[idx];
}

/* The SinkPart for partition relid, opening it on first use. */
static SinkPart *
sink_part(Oid relid)
{
	ResourceOwner save = CurrentResourceOwner;
	MemoryContext oldcxt;
	SinkPart   *p;

	for (int i = 0; i < xact.nparts; i++)
		if (xact.parts[i].relid == relid)
			return &xact.parts[i];

	if (xact.nparts >= SINK_MAX_PARTS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("one transaction wrote activity into more than %d partitions",
						SINK_MAX_PARTS)));

	oldcxt = MemoryContextSwitchTo(TopTransactionContext);
	CurrentResourceOwner = TopTransactionResourceOwner;
	p = &xact.parts[xact.nparts];
	PG_TRY();
	{
		Relation	rel = table_open(relid, RowExclusiveLock);

		p->relid = relid;
		p->rri = makeNode(ResultRelInfo);
		InitResultRelInfo(p->rri, rel, 1, NULL, 0);
		ExecOpenIndices(p->rri, false);
		p->slot = MakeSingleTupleTableSlot(RelationGetDescr(rel), &TTSOpsVirtual);
		p->map = build_attrmap_by_name_if_req(RelationGetDescr(xact.parent),
											  RelationGetDescr(rel));
		xact.nparts++;
	}
	PG_FINALLY();
	{
		CurrentResourceOwner = save;
		MemoryContextSwitchTo(oldcxt);
	}
	PG_END_TRY();
	return p;
}

/*
 * Insert one activity row.  values/nulls are in ActivityColumn order, the
 * id included (am_sink_next_id).
 */
void
am_sink_insert(Datum *values, bool *nulls)
{
	SinkPart   *p;
	TupleTableSlot *slot;
	bool		is_default;
	Oid			partoid;

	ensure_catalog();
	if (!xact.open)
		sink_open_xact();

	partoid = sink_route(values[AC_OCCURRED_AT], &is_default);
	p = sink_part(partoid);
	if (is_default)
	{
		/* opening may have processed an ATTACH of the right partition */
		partoid = sink_route(values[AC_OCCURRED_AT], &is_default);
		p = sink_part(partoid);
	}

	slot = p->slot;
	ExecClearTuple(slot);
	for (int i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
	{
		int			parent_att = catalog.attnum[c];
		int			att = parent_att;

		if (p->map != NULL)
		{
			/* find the partition attribute that maps to parent_att */
			att = InvalidAttrNumber;
			for (int i = 0; i < p->map->maplen; i++)
				if (p->map->attnums[i] == parent_att)
					att = i + 1;
			if (att == InvalidAttrNumber)
				elog(ERROR, "partition %u lacks activity column %s",
					 partoid, activity_column_names[c]);
		}
		slot->tts_values[att - 1] = values[c];
		slot->tts_isnull[att - 1] = nulls[c];
	}
	ExecStoreVirtualTuple(slot);

	table_tuple_insert(p->rri->ri_RelationDesc, slot, GetCurrentCommandId(true), 0, NULL);
	if (p->rri->ri_NumIndices > 0)
	{
		List	   *recheck = ExecInsertIndexTuples(p->rri, slot, xact.estate,
													false, false, NULL, NIL);

		list_free(recheck);
	}
	ResetPerTupleExprContext(xact.estate);
}
