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
 * db_user comes as text.  An activity table of 0.1.0 (this library loaded
 * before ALTER EXTENSION UPDATE) has it as name: the value is converted
 * for the partition actually written, after it is opened and locked, so
 * that a row filled before the update's rewrite committed is still written
 * in the type the partition has.
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
#include "catalog/pg_type.h"
#include "commands/sequence.h"
#include "executor/executor.h"
#include "nodes/execnodes.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "utils/builtins.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"

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

static SinkXact xact;
static bool callbacks_registered = false;

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
	RegisterXactCallback(sink_xact_callback, NULL);
	callbacks_registered = true;
}

/* The next activity id (capture needs it before the row is written). */
int64
am_sink_next_id(void)
{
	return nextval_internal(am_catalog()->activity_seq, false);
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
		xact.parent = table_open(am_catalog()->activity, RowExclusiveLock);
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
	const AmCatalog *catalog;

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

	/* after opening: what opening invalidated is looked up again */
	catalog = am_catalog();
	slot = p->slot;
	ExecClearTuple(slot);
	for (int i = 0; i < slot->tts_tupleDescriptor->natts; i++)
		slot->tts_isnull[i] = true;
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
	{
		int			parent_att = catalog->activity_att[c];
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
					 partoid, am_activity_column_name(c));
		}
		slot->tts_values[att - 1] = values[c];
		slot->tts_isnull[att - 1] = nulls[c];
		if (c == AC_DB_USER && !nulls[c] &&
			TupleDescAttr(slot->tts_tupleDescriptor, att - 1)->atttypid == NAMEOID)
			slot->tts_values[att - 1] = DirectFunctionCall1(text_name, values[c]);
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
