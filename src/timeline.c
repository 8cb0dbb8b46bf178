/*-------------------------------------------------------------------------
 *
 * timeline.c
 *	  account_timeline(): an account's latest events, read partition by
 *	  partition newest first, without keeping a lock per partition.
 *
 * The timeline view, asked for one account's latest 50 events, is planned
 * over every partition of activity_monitor.activity: the planner opens and
 * locks each partition and its indexes (six locks a partition, held
 * to the end of the transaction), and with years of history a hundred
 * back-office sessions doing that at once fill the shared lock table.
 * account_timeline() returns the same rows in the same order, but reads
 * the partitions itself: it holds ACCESS SHARE on the parent for the
 * transaction (so no partition can be detached or dropped under it: both
 * need ACCESS EXCLUSIVE on the parent), takes the partitions and their
 * range bounds from the parent's partition descriptor, and reads the
 * default partition and then the dated ones newest first, each through its
 * index led by subject_id (a merged partition's (subject_id, occurred_at)
 * scanned backward and stopped early; a day's, on subject_id alone, read
 * whole), until it has enough rows (rows of an older partition are all
 * older).  Each partition and
 * index is closed as soon as it has been read, releasing its lock: what
 * the call leaves locked is the parent, whatever the number of partitions.
 * The rows are copied out (toasted values fetched) before the lock goes,
 * into a tuplesort in the view's order: it holds work_mem at most and
 * spills to temporary files beyond that, and with a limit keeps only the
 * first lim rows, so that an account of millions of rows read with no
 * limit does not have them all in the backend's memory.  The sorted rows
 * then go into the tuplestore the function returns (itself spilling beyond
 * work_mem).  Before reading, the heap blocks the rows are on are looked up
 * in the same indexes and announced to the kernel (prefetch_partition), so
 * that reads from storage overlap.
 *
 * Privileges: the function returns the view's rows, so it requires what
 * the view requires: SELECT on activity_monitor.timeline for the caller,
 * and for the view's owner (as whom the view reads the table) SELECT on
 * the activity table.  Row-level security: the view applies the policies
 * of activity that concern its owner; the scan here cannot, so when row
 * security would apply to the view's owner the call is refused (0A000).
 *
 * IDENTIFICATION
 *	  src/timeline.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/detoast.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/relation.h"
#include "access/stratnum.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/transam.h"
#include "catalog/pg_am.h"
#include "catalog/pg_class.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/bufmgr.h"
#include "utils/acl.h"
#include "utils/builtins.h"
#include "utils/fmgroids.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/rls.h"
#include "utils/snapmgr.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"
#include "utils/tuplesort.h"
#include "utils/tuplestore.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(activity_monitor_account_timeline);

/* heap blocks one call announces to the kernel before reading (8 kB each) */
#define TIMELINE_PREFETCH_BLOCKS 256

/*
 * A group of leaf partitions that hold rows of the same time range: one
 * partition, or the leaves of a sub-partitioned partition.  anytime: rows
 * of any time (the default partition, or bounds we cannot read).
 */
typedef struct TimelineUnit
{
	List	   *leaves;			/* OIDs of leaf partitions */
	bool		anytime;
	bool		lo_min;			/* lower bound MINVALUE */
	bool		hi_max;			/* upper bound MAXVALUE */
	TimestampTz lo;				/* inclusive */
	TimestampTz hi;				/* exclusive */
} TimelineUnit;

/* What one call reads and what it has collected so far. */
typedef struct TimelineScan
{
	TupleDesc	outdesc;		/* the timeline view's row type */
	int			out_id;			/* index of "id" in outdesc */
	int			out_at;			/* index of "occurred_at" in outdesc */
	Datum		subject;		/* text */
	bool		has_before;
	bool		has_since;
	TimestampTz before;
	TimestampTz since;
	int64		lim;			/* PG_INT64_MAX: no limit */
	Snapshot	snapshot;
	Oid			at_family;		/* timestamptz's btree operator family */
	RegProcedure at_lt;			/* its < and >= */
	RegProcedure at_ge;
	MemoryContext unitcxt;		/* the partition list */
	MemoryContext partcxt;		/* one partition's work, reset after it */
	MemoryContext tuplecxt;		/* one row's work */
	TupleTableSlot *rowslot;	/* one row in the result's shape (virtual) */
	Tuplesortstate *sort;		/* the rows collected, in the view's order */
} TimelineScan;

/* Dated units newest first (by upper bound; the ranges do not overlap). */
static int
unit_cmp(const ListCell *a, const ListCell *b)
{
	const TimelineUnit *ua = (const TimelineUnit *) lfirst(a);
	const TimelineUnit *ub = (const TimelineUnit *) lfirst(b);

	if (ua->hi_max != ub->hi_max)
		return ua->hi_max ? -1 : 1;
	if (ua->hi_max || ua->hi == ub->hi)
		return 0;
	return ua->hi > ub->hi ? -1 : 1;
}

/* The attribute number of the column called name in desc, 0 if none. */
static AttrNumber
attnum_by_name(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);

		if (!att->attisdropped && strcmp(NameStr(att->attname), name) == 0)
			return att->attnum;
	}
	return InvalidAttrNumber;
}

/*
 * Refuse the call unless the caller may read the timeline view and the
 * view, read as its owner, would return every row of the account: the scan
 * below bypasses the privilege checks and row security of the executor.
 * Column privileges do not count: the caller needs SELECT on the whole view.
 */
static void
check_privileges(const AmCatalog *cat)
{
	Oid			view = get_relname_relid("timeline", cat->schema);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(view))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"activity_monitor\" has no view \"timeline\"")));
	if (pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, "timeline");

	tup = SearchSysCache1(RELOID, ObjectIdGetDatum(view));
	if (!HeapTupleIsValid(tup))
		elog(ERROR, "cache lookup failed for relation %u", view);
	owner = ((Form_pg_class) GETSTRUCT(tup))->relowner;
	ReleaseSysCache(tup);

	if (pg_class_aclcheck(cat->activity, owner, ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_TABLE, "activity");
	if (check_enable_rls(cat->activity, owner, true) == RLS_ENABLED)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("account_timeline() cannot apply the row-level security of activity_monitor.activity"),
				 errdetail("Row-level security applies to the owner of the view activity_monitor.timeline."),
				 errhint("Query the view activity_monitor.timeline instead.")));
}

/*
 * Append to *leaves the leaf partitions under the partitioned table relid
 * (a sub-partitioned partition), keeping its lock, as for the parent, so
 * that its partitions cannot go away during the transaction.
 */
static void
add_leaves(Oid relid, List **leaves)
{
	Relation	rel = relation_open(relid, AccessShareLock);
	PartitionDesc pd = RelationGetPartitionDesc(rel, true);
	int			n = pd->nparts;
	Oid		   *oids = palloc(sizeof(Oid) * Max(n, 1));
	bool	   *leaf = palloc(sizeof(bool) * Max(n, 1));

	memcpy(oids, pd->oids, sizeof(Oid) * n);
	memcpy(leaf, pd->is_leaf, sizeof(bool) * n);
	relation_close(rel, NoLock);
	for (int i = 0; i < n; i++)
	{
		if (leaf[i])
			*leaves = lappend_oid(*leaves, oids[i]);
		else
			add_leaves(oids[i], leaves);
	}
}

/*
 * The partitions of the activity table (open, ACCESS SHARE kept) as units,
 * with their range bounds from the partition descriptor.  Bounds are used
 * only when the table is range-partitioned on occurred_at alone; otherwise
 * every unit is "any time" (read whole, no early stop).
 */
static List *
list_units(Relation parent, AttrNumber at_att)
{
	PartitionKey key = RelationGetPartitionKey(parent);
	PartitionDesc pd = RelationGetPartitionDesc(parent, true);
	PartitionBoundInfo bi = pd->boundinfo;
	int			n = pd->nparts;
	TimelineUnit *units = palloc0(sizeof(TimelineUnit) * Max(n, 1));
	bool	   *leaf = palloc(sizeof(bool) * Max(n, 1));
	Oid		   *oids = palloc(sizeof(Oid) * Max(n, 1));
	List	   *result = NIL;

	/* copy what we need: opening partitions may rebuild the descriptor */
	memcpy(oids, pd->oids, sizeof(Oid) * n);
	memcpy(leaf, pd->is_leaf, sizeof(bool) * n);
	for (int p = 0; p < n; p++)
		units[p].anytime = true;
	if (bi != NULL && key != NULL && key->strategy == PARTITION_STRATEGY_RANGE &&
		key->partnatts == 1 && key->partattrs[0] == at_att &&
		key->parttypid[0] == TIMESTAMPTZOID && bi->kind != NULL)
	{
		for (int i = 1; i < bi->ndatums; i++)
		{
			int			p = bi->indexes[i];
			TimelineUnit *u;

			if (p < 0 || p >= n)
				continue;
			u = &units[p];
			u->anytime = false;
			u->hi_max = bi->kind[i][0] == PARTITION_RANGE_DATUM_MAXVALUE;
			if (!u->hi_max)
				u->hi = DatumGetTimestampTz(bi->datums[i][0]);
			u->lo_min = bi->kind[i - 1][0] == PARTITION_RANGE_DATUM_MINVALUE;
			if (!u->lo_min)
				u->lo = DatumGetTimestampTz(bi->datums[i - 1][0]);
		}
	}

	for (int p = 0; p < n; p++)
	{
		if (leaf[p])
			units[p].leaves = list_make1_oid(oids[p]);
		else
			add_leaves(oids[p], &units[p].leaves);
		result = lappend(result, &units[p]);
	}
	return result;
}

/* Can unit u hold rows in [since, before)? */
static bool
unit_in_range(const TimelineScan *ts, const TimelineUnit *u)
{
	if (u->anytime)
		return true;
	if (ts->has_since && !u->hi_max && u->hi <= ts->since)
		return false;
	if (ts->has_before && !u->lo_min && u->lo >= ts->before)
		return false;
	return true;
}

/*
 * The partition's btree led by subject_id: valid, not partial, text
 * equality in the column's collation on its first key column.  One whose
 * second key column is occurred_at (timestamptz's ordering) is preferred,
 * and *ordered is then set: it is read newest first and stopped early
 * (merged partitions have it); otherwise (the partitions capture writes
 * to index subject_id alone) every row of the account is read.  Opened
 * (ACCESS SHARE); NULL if there is none (the indexes looked at are closed
 * again, releasing their locks).
 */
static Relation
find_subject_index(const TimelineScan *ts, Relation rel, AttrNumber subject_att,
				   AttrNumber at_att, bool *ordered)
{
	Oid			subject_coll = TupleDescAttr(RelationGetDescr(rel), subject_att - 1)->attcollation;
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Relation	found = NULL;

	*ordered = false;
	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		bool		usable;
		bool		by_time;

		/* as the planner: an index some snapshots may not use is skipped */
		usable = idx->rd_rel->relam == BTREE_AM_OID && ind->indisvalid &&
			(!ind->indcheckxmin ||
			 TransactionIdPrecedes(HeapTupleHeaderGetXmin(idx->rd_indextuple->t_data),
								   TransactionXmin)) &&
			ind->indnkeyatts >= 1 && ind->indkey.values[0] == subject_att &&
			heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL) &&
			idx->rd_indcollation[0] == subject_coll &&
			get_opfamily_member(idx->rd_opfamily[0], TEXTOID, TEXTOID,
								BTEqualStrategyNumber) == TextEqualOperator;
		by_time = usable && ind->indnkeyatts >= 2 &&
			ind->indkey.values[1] == at_att && idx->rd_opfamily[1] == ts->at_family;
		if (usable && (found == NULL || (by_time && !*ordered)))
		{
			if (found != NULL)
				index_close(found, AccessShareLock);
			found = idx;
			*ordered = by_time;
			if (by_time)
				break;
			continue;
		}
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	return found;
}

/*
 * Start the sort of the rows collected: occurred_at DESC, id DESC (the
 * view's order; NULLS FIRST, as DESC is), by the ">" of each type's default
 * btree operator class, whose sort support the tuplesort looks up.  It
 * keeps work_mem in memory and spills to temporary files beyond it.  Given
 * a limit, it keeps only the first lim rows (a bounded heap, as a sort
 * under a LIMIT does) when lim rows fit in work_mem; otherwise it sorts
 * them all on disk and the caller stops reading at lim.
 */
static Tuplesortstate *
begin_sort(const TimelineScan *ts)
{
	AttrNumber	attnums[2];
	Oid			operators[2];
	Oid			collations[2] = {InvalidOid, InvalidOid};
	bool		nulls_first[2] = {true, true};
	bool		bounded = ts->lim < PG_INT64_MAX;
	Tuplesortstate *sort;

	attnums[0] = ts->out_at + 1;
	attnums[1] = ts->out_id + 1;
	operators[0] = lookup_type_cache(TIMESTAMPTZOID, TYPECACHE_GT_OPR)->gt_opr;
	operators[1] = lookup_type_cache(INT8OID, TYPECACHE_GT_OPR)->gt_opr;
	if (!OidIsValid(operators[0]) || !OidIsValid(operators[1]))
		elog(ERROR, "no btree > operator for timestamptz or bigint");

	sort = tuplesort_begin_heap(ts->outdesc, 2, attnums, operators, collations,
								nulls_first, work_mem, NULL,
								bounded ? TUPLESORT_ALLOWBOUNDED : TUPLESORT_NONE);
	if (bounded)
		tuplesort_set_bound(sort, ts->lim);
	return sort;
}

/*
 * Put the row in slot (deformed) into the sort, in the result's shape (map:
 * the partition's attribute number of each result column), toasted values
 * fetched now, while the partition is locked: the sort copies the row, and
 * may write it to a temporary file, as it is.
 */
static void
collect_row(TimelineScan *ts, TupleTableSlot *slot, const AttrNumber *map)
{
	TupleTableSlot *row = ts->rowslot;
	MemoryContext old;

	MemoryContextReset(ts->tuplecxt);
	old = MemoryContextSwitchTo(ts->tuplecxt);
	ExecClearTuple(row);
	for (int i = 0; i < ts->outdesc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(ts->outdesc, i);
		Datum		value = slot->tts_values[map[i] - 1];
		bool		isnull = slot->tts_isnull[map[i] - 1];

		if (!isnull && att->attlen == -1 &&
			VARATT_IS_EXTERNAL(DatumGetPointer(value)))
			value = PointerGetDatum(detoast_external_attr((struct varlena *)
														  DatumGetPointer(value)));
		row->tts_values[i] = value;
		row->tts_isnull[i] = isnull;
	}
	ExecStoreVirtualTuple(row);
	tuplesort_puttupleslot(ts->sort, row);
	MemoryContextSwitchTo(old);
}

/*
 * Start a scan of a partition's subject index for the account: an ordered
 * one ((subject_id, occurred_at)) with the time bounds as scan keys and in
 * the direction that gives the newest first (*dir), one on subject_id alone
 * forward.
 */
static IndexScanDesc
begin_subject_scan(const TimelineScan *ts, Relation rel, Relation idx, bool ordered,
				   ScanDirection *dir)
{
	ScanKeyData keys[3];
	int			nkeys = 0;
	IndexScanDesc scan;

	*dir = ForwardScanDirection;
	ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTEqualStrategyNumber, InvalidOid,
						   idx->rd_indcollation[0], F_TEXTEQ, ts->subject);
	if (ordered)
	{
		if (ts->has_before)
			ScanKeyEntryInitialize(&keys[nkeys++], 0, 2, BTLessStrategyNumber, InvalidOid,
								   InvalidOid, ts->at_lt, TimestampTzGetDatum(ts->before));
		if (ts->has_since)
			ScanKeyEntryInitialize(&keys[nkeys++], 0, 2, BTGreaterEqualStrategyNumber,
								   InvalidOid, InvalidOid, ts->at_ge, TimestampTzGetDatum(ts->since));
		/* newest first whichever way the index orders occurred_at */
		*dir = (idx->rd_indoption[1] & INDOPTION_DESC) ? ForwardScanDirection : BackwardScanDirection;
	}
	scan = index_beginscan(rel, idx, ts->snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	return scan;
}

/*
 * Read the account's rows of one leaf partition through index idx.  An
 * ordered one ((subject_id, occurred_at)) is read backward (newest first),
 * with the time bounds as scan keys: want rows, and those tied with the
 * last on occurred_at (the sort orders them by id).  One on subject_id
 * alone gives the account's rows in no particular order: all of them
 * within the bounds are read.  Returns the number of rows collected.
 */
static int64
read_index(TimelineScan *ts, Relation rel, Relation idx, bool ordered,
		   const AttrNumber *map, AttrNumber at_att, int64 want)
{
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ScanDirection dir;
	int64		n = 0;
	TimestampTz boundary = 0;

	scan = begin_subject_scan(ts, rel, idx, ordered, &dir);
	while (index_getnext_slot(scan, dir, slot))
	{
		bool		isnull;
		TimestampTz at = DatumGetTimestampTz(slot_getattr(slot, at_att, &isnull));

		CHECK_FOR_INTERRUPTS();
		if (!ordered)
		{
			if (isnull || (ts->has_before && at >= ts->before) ||
				(ts->has_since && at < ts->since))
				continue;
		}
		else if (n >= want && at != boundary)
			break;
		slot_getallattrs(slot);
		collect_row(ts, slot, map);
		if (++n == want)
			boundary = at;
	}
	index_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return n;
}

/*
 * A partition without a btree led by subject_id (made by hand, or one
 * being rebuilt): read it whole, keeping the account's rows within the
 * bounds, in no order (every one goes into the sort).
 */
static int64
read_heap(TimelineScan *ts, Relation rel, const AttrNumber *map,
		  AttrNumber subject_att, AttrNumber at_att)
{
	Oid			coll = TupleDescAttr(RelationGetDescr(rel), subject_att - 1)->attcollation;
	TableScanDesc scan = table_beginscan(rel, ts->snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		n = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		Datum		subject = slot_getattr(slot, subject_att, &isnull);
		TimestampTz at;

		CHECK_FOR_INTERRUPTS();
		if (isnull ||
			!DatumGetBool(DirectFunctionCall2Coll(texteq, coll, subject, ts->subject)))
			continue;
		at = DatumGetTimestampTz(slot_getattr(slot, at_att, &isnull));
		if (isnull || (ts->has_before && at >= ts->before) ||
			(ts->has_since && at < ts->since))
			continue;
		slot_getallattrs(slot);
		collect_row(ts, slot, map);
		n++;
	}
	table_endscan(scan);
	ExecDropSingleTupleTableSlot(slot);
	return n;
}

/*
 * Read one leaf partition (want rows at most, plus ties) and close it,
 * releasing its lock and its index's: the rows are copied out already.
 */
static int64
read_partition(TimelineScan *ts, Oid relid, int64 want)
{
	MemoryContext old = MemoryContextSwitchTo(ts->partcxt);
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber *map = palloc(sizeof(AttrNumber) * ts->outdesc->natts);
	AttrNumber	subject_att = attnum_by_name(desc, "subject_id");
	AttrNumber	at_att = attnum_by_name(desc, "occurred_at");
	Relation	idx;
	bool		ordered;
	int64		n;

	if (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("account_timeline() cannot read foreign partition \"%s\"",
						RelationGetRelationName(rel)),
				 errhint("Query the view activity_monitor.timeline instead.")));
	if (subject_att == InvalidAttrNumber || at_att == InvalidAttrNumber ||
		TupleDescAttr(desc, subject_att - 1)->atttypid != TEXTOID ||
		TupleDescAttr(desc, at_att - 1)->atttypid != TIMESTAMPTZOID)
		elog(ERROR, "partition \"%s\" has no subject_id text or occurred_at timestamptz column",
			 RelationGetRelationName(rel));
	for (int i = 0; i < ts->outdesc->natts; i++)
	{
		const char *name = NameStr(TupleDescAttr(ts->outdesc, i)->attname);

		map[i] = attnum_by_name(desc, name);
		if (map[i] == InvalidAttrNumber)
			elog(ERROR, "partition \"%s\" has no column \"%s\"",
				 RelationGetRelationName(rel), name);
		/* values are copied as they are: the types must be the view's */
		if (TupleDescAttr(desc, map[i] - 1)->atttypid !=
			TupleDescAttr(ts->outdesc, i)->atttypid)
			elog(ERROR, "column \"%s\" of partition \"%s\" is not of the type of the timeline view's",
				 name, RelationGetRelationName(rel));
	}

	idx = find_subject_index(ts, rel, subject_att, at_att, &ordered);
	if (idx != NULL)
	{
		n = read_index(ts, rel, idx, ordered, map, at_att, want);
		index_close(idx, AccessShareLock);
	}
	else
		n = read_heap(ts, rel, map, subject_att, at_att);
	table_close(rel, AccessShareLock);

	MemoryContextSwitchTo(old);
	MemoryContextReset(ts->partcxt);
	return n;
}

/*
 * Ask the kernel to start reading the heap blocks that hold the account's
 * rows of one leaf partition (at most want of them, newest first, in an
 * ordered index; all of them in one on subject_id alone), taken from its
 * subject index alone, and close it again.  An account's rows lie on
 * different blocks, in different partitions, and each one not in shared
 * buffers is a read from storage: issued one after the other as the rows
 * are fetched, their latencies add up; announced together first, they
 * overlap (the way a bitmap heap scan prefetches).  *budget is the blocks
 * this call may still announce.  Returns the index entries seen.
 */
static int64
prefetch_partition(TimelineScan *ts, Oid relid, int64 want, int *budget)
{
#ifdef USE_PREFETCH
	MemoryContext old = MemoryContextSwitchTo(ts->partcxt);
	Relation	rel = table_open(relid, AccessShareLock);
	TupleDesc	desc = RelationGetDescr(rel);
	AttrNumber	subject_att = attnum_by_name(desc, "subject_id");
	AttrNumber	at_att = attnum_by_name(desc, "occurred_at");
	Relation	idx = NULL;
	bool		ordered = false;
	int64		n = 0;

	/* what read_partition() refuses is left to it */
	if (rel->rd_rel->relkind == RELKIND_RELATION &&
		subject_att != InvalidAttrNumber && at_att != InvalidAttrNumber &&
		TupleDescAttr(desc, subject_att - 1)->atttypid == TEXTOID &&
		TupleDescAttr(desc, at_att - 1)->atttypid == TIMESTAMPTZOID)
		idx = find_subject_index(ts, rel, subject_att, at_att, &ordered);
	if (idx != NULL)
	{
		ScanDirection dir;
		IndexScanDesc scan = begin_subject_scan(ts, rel, idx, ordered, &dir);
		BlockNumber last = InvalidBlockNumber;
		ItemPointer tid;

		while (*budget > 0 && (!ordered || n < want) &&
			   (tid = index_getnext_tid(scan, dir)) != NULL)
		{
			BlockNumber blk = ItemPointerGetBlockNumber(tid);

			CHECK_FOR_INTERRUPTS();
			n++;
			if (blk == last)
				continue;
			(void) PrefetchBuffer(rel, MAIN_FORKNUM, blk);
			last = blk;
			(*budget)--;
		}
		index_endscan(scan);
		index_close(idx, AccessShareLock);
	}
	table_close(rel, AccessShareLock);
	MemoryContextSwitchTo(old);
	MemoryContextReset(ts->partcxt);
	return n;
#else
	return 0;
#endif
}

/*
 * account_timeline(subject text, lim int DEFAULT 50, before timestamptz
 * DEFAULT NULL, since timestamptz DEFAULT NULL) RETURNS SETOF timeline:
 * the rows of SELECT * FROM timeline WHERE subject_id = subject AND
 * occurred_at < before AND occurred_at >= since ORDER BY occurred_at DESC,
 * id DESC LIMIT lim (a NULL bound or lim: none; a NULL subject: no rows).
 */
Datum
activity_monitor_account_timeline(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	const AmCatalog *cat;
	Oid			activity;
	TimelineScan ts;
	Relation	parent;
	AttrNumber	at_att;
	List	   *units;
	ListCell   *lc;
	List	   *anytime = NIL;
	List	   *dated = NIL;
	int64		dated_rows = 0;
	TupleTableSlot *outslot;
	MemoryContext old;

	cat = am_catalog();
	activity = cat->activity;
	check_privileges(cat);

	if (!PG_ARGISNULL(1) && PG_GETARG_INT32(1) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lim must not be negative"),
				 errdetail("The value given was %d.", PG_GETARG_INT32(1)),
				 errhint("Give NULL for no limit.")));

	InitMaterializedSRF(fcinfo, 0);
	if (PG_ARGISNULL(0) || (!PG_ARGISNULL(1) && PG_GETARG_INT32(1) == 0))
		return (Datum) 0;

	memset(&ts, 0, sizeof(ts));
	ts.outdesc = rsinfo->setDesc;
	ts.subject = PointerGetDatum(PG_GETARG_TEXT_PP(0));
	ts.lim = PG_ARGISNULL(1) ? PG_INT64_MAX : PG_GETARG_INT32(1);
	ts.has_before = !PG_ARGISNULL(2);
	if (ts.has_before)
		ts.before = PG_GETARG_TIMESTAMPTZ(2);
	ts.has_since = !PG_ARGISNULL(3);
	if (ts.has_since)
		ts.since = PG_GETARG_TIMESTAMPTZ(3);
	ts.snapshot = GetActiveSnapshot();
	ts.at_family = get_opclass_family(GetDefaultOpClass(TIMESTAMPTZOID, BTREE_AM_OID));
	ts.at_lt = get_opcode(get_opfamily_member(ts.at_family, TIMESTAMPTZOID, TIMESTAMPTZOID,
											  BTLessStrategyNumber));
	ts.at_ge = get_opcode(get_opfamily_member(ts.at_family, TIMESTAMPTZOID, TIMESTAMPTZOID,
											  BTGreaterEqualStrategyNumber));
	if (!RegProcedureIsValid(ts.at_lt) || !RegProcedureIsValid(ts.at_ge))
		elog(ERROR, "no btree < or >= operator for timestamptz");
	ts.out_id = attnum_by_name(ts.outdesc, "id") - 1;
	ts.out_at = attnum_by_name(ts.outdesc, "occurred_at") - 1;
	if (ts.out_id < 0 || ts.out_at < 0 ||
		TupleDescAttr(ts.outdesc, ts.out_id)->atttypid != INT8OID ||
		TupleDescAttr(ts.outdesc, ts.out_at)->atttypid != TIMESTAMPTZOID)
		elog(ERROR, "the result type of account_timeline() has no id bigint or occurred_at timestamptz");
	ts.unitcxt = AllocSetContextCreate(CurrentMemoryContext, "account_timeline partitions",
									   ALLOCSET_SMALL_SIZES);
	ts.partcxt = AllocSetContextCreate(CurrentMemoryContext, "account_timeline partition",
									   ALLOCSET_DEFAULT_SIZES);
	ts.tuplecxt = AllocSetContextCreate(CurrentMemoryContext, "account_timeline row",
										ALLOCSET_SMALL_SIZES);
	ts.rowslot = MakeSingleTupleTableSlot(ts.outdesc, &TTSOpsVirtual);
	ts.sort = begin_sort(&ts);

	/* ACCESS SHARE on the parent until the end of the transaction */
	parent = table_open(activity, AccessShareLock);
	at_att = attnum_by_name(RelationGetDescr(parent), "occurred_at");
	old = MemoryContextSwitchTo(ts.unitcxt);
	units = list_units(parent, at_att);
	MemoryContextSwitchTo(old);
	table_close(parent, NoLock);

	/* the partitions to read: rows of any time, and the dated in range */
	foreach(lc, units)
	{
		TimelineUnit *u = (TimelineUnit *) lfirst(lc);

		old = MemoryContextSwitchTo(ts.unitcxt);
		if (u->anytime)
			anytime = list_concat(anytime, u->leaves);
		else if (unit_in_range(&ts, u))
			dated = lappend(dated, u);
		MemoryContextSwitchTo(old);
	}
	list_sort(dated, unit_cmp);

	/* the heap blocks they will be read from, all announced first */
	{
		int			budget = TIMELINE_PREFETCH_BLOCKS;
		int64		seen = 0;

		foreach(lc, anytime)
			(void) prefetch_partition(&ts, lfirst_oid(lc), ts.lim, &budget);
		foreach(lc, dated)
		{
			TimelineUnit *u = (TimelineUnit *) lfirst(lc);
			ListCell   *lc2;

			if (seen >= ts.lim || budget <= 0)
				break;
			foreach(lc2, u->leaves)
				seen += prefetch_partition(&ts, lfirst_oid(lc2), ts.lim - seen, &budget);
		}
	}

	/* rows of any time first, whole (up to lim and ties each, the sort keeps lim) */
	foreach(lc, anytime)
		read_partition(&ts, lfirst_oid(lc), ts.lim);

	/*
	 * Then the dated partitions newest first, until lim rows from them: the
	 * rows of every older partition are older than those.
	 */
	foreach(lc, dated)
	{
		TimelineUnit *u = (TimelineUnit *) lfirst(lc);
		int64		want = ts.lim - dated_rows;
		ListCell   *lc2;

		if (dated_rows >= ts.lim)
			break;
		foreach(lc2, u->leaves)
			dated_rows += read_partition(&ts, lfirst_oid(lc2), want);
	}

	/*
	 * In the view's order, cut at lim (the bound cuts already, unless lim is
	 * too large for a bounded sort).
	 */
	tuplesort_performsort(ts.sort);
	outslot = MakeSingleTupleTableSlot(ts.outdesc, &TTSOpsMinimalTuple);
	for (int64 i = 0; i < ts.lim && tuplesort_gettupleslot(ts.sort, true, false, outslot, NULL); i++)
		tuplestore_puttupleslot(rsinfo->setResult, outslot);

	ExecDropSingleTupleTableSlot(outslot);
	tuplesort_end(ts.sort);
	ExecDropSingleTupleTableSlot(ts.rowslot);
	MemoryContextDelete(ts.tuplecxt);
	MemoryContextDelete(ts.partcxt);
	MemoryContextDelete(ts.unitcxt);
	return (Datum) 0;
}
