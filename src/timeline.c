/*-------------------------------------------------------------------------
 *
 * timeline.c
 *	  account_timeline(), employee_actions() and recent_critical_changes():
 *	  a view's latest rows, read partition by partition newest first,
 *	  without keeping a lock per partition.
 *
 * The timeline view, asked for one account's latest 50 events, is planned
 * over every partition of activity_monitor.activity: the planner opens and
 * locks each partition and its indexes (six locks a partition, held
 * to the end of the transaction), and with years of history a hundred
 * back-office sessions doing that at once fill the shared lock table; with
 * today in hourly partitions, even a query of the last day plans and locks
 * some thirty of them.  The readers here return the same rows in the same
 * order, but read the partitions themselves: each holds ACCESS SHARE on
 * the parent for the transaction (so no partition can be detached or
 * dropped under it: both need ACCESS EXCLUSIVE on the parent), takes the
 * partitions and their range bounds from the parent's partition
 * descriptor, and reads the default partition and then the dated ones
 * newest first, each through a btree that gives its rows (a reader's key
 * column first, then occurred_at, scanned backward and stopped early; or
 * the key column alone, read whole; for a reader without a key, occurred_at
 * first), until it has enough rows (rows of an older partition are all
 * older).  A reader is one of the views' WHERE clauses (ReaderSpec): an
 * equality on its key column (subject_id, actor_id, or none) and a fixed
 * condition (none, the admin_actions view's, critical); a partial index
 * serves it when the condition implies the index's predicate (the
 * planner's own proof, predicate_implied_by()), and each row read is
 * checked against the condition as well.  Each partition and
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
 * Privileges: a function returns a view's rows, so it requires what the
 * view requires: SELECT on the view (timeline, admin_actions,
 * critical_changes) for the caller,
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
#include "catalog/pg_collation.h"
#include "catalog/pg_index.h"
#include "catalog/pg_operator.h"
#include "catalog/pg_type.h"
#include "commands/defrem.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "nodes/makefuncs.h"
#include "optimizer/optimizer.h"
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
PG_FUNCTION_INFO_V1(activity_monitor_employee_actions);
PG_FUNCTION_INFO_V1(activity_monitor_recent_critical_changes);

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

/* The fixed condition of a view's WHERE clause that a reader applies. */
typedef enum ReaderCondition
{
	RC_NONE,
	RC_ADMIN,					/* actor_type = 'employee' OR kind = 'admin' */
	RC_CRITICAL					/* critical */
} ReaderCondition;

/* A view's rows that a reader function returns. */
typedef struct ReaderSpec
{
	const char *func;			/* the SQL function, for messages */
	const char *view;			/* the view whose rows it returns */
	const char *key;			/* the column equal to the key argument, or NULL */
	ReaderCondition cond;
} ReaderSpec;

static const ReaderSpec account_reader = {
	"account_timeline()", "timeline", "subject_id", RC_NONE
};
static const ReaderSpec employee_reader = {
	"employee_actions()", "admin_actions", "actor_id", RC_ADMIN
};
static const ReaderSpec critical_reader = {
	"recent_critical_changes()", "critical_changes", NULL, RC_CRITICAL
};

/* The columns of one partition a reader looks at (0: none). */
typedef struct PartColumns
{
	AttrNumber	key;
	AttrNumber	at;
	AttrNumber	actor_type;
	AttrNumber	kind;
	AttrNumber	critical;
	Oid			key_coll;		/* the text columns' collations */
	Oid			actor_type_coll;
	Oid			kind_coll;
	List	   *cond;			/* the condition as an implicit-AND clause list */
} PartColumns;

/* What one call reads and what it has collected so far. */
typedef struct TimelineScan
{
	const ReaderSpec *spec;
	TupleDesc	outdesc;		/* the view's row type */
	int			out_id;			/* index of "id" in outdesc */
	int			out_at;			/* index of "occurred_at" in outdesc */
	Datum		key;			/* text, when spec->key */
	Datum		employee;		/* the condition's constants (text) */
	Datum		admin;
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
 * Refuse the call unless the caller may read the reader's view and the
 * view, read as its owner, would return every row asked for: the scan
 * below bypasses the privilege checks and row security of the executor.
 * Column privileges do not count: the caller needs SELECT on the whole view.
 */
static void
check_privileges(const AmCatalog *cat, const ReaderSpec *spec)
{
	Oid			view = get_relname_relid(spec->view, cat->schema);
	HeapTuple	tup;
	Oid			owner;

	if (!OidIsValid(view))
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("extension \"activity_monitor\" has no view \"%s\"", spec->view)));
	if (pg_class_aclcheck(view, GetUserId(), ACL_SELECT) != ACLCHECK_OK)
		aclcheck_error(ACLCHECK_NO_PRIV, OBJECT_VIEW, spec->view);

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
				 errmsg("%s cannot apply the row-level security of activity_monitor.activity",
						spec->func),
				 errdetail("Row-level security applies to the owner of the view activity_monitor.%s.",
						   spec->view),
				 errhint("Query the view activity_monitor.%s instead.", spec->view)));
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

/* "column = 'value'" on text column att of a partition's rows (varno 1). */
static Expr *
text_equals(TupleDesc desc, AttrNumber att, const char *value)
{
	Oid			coll = TupleDescAttr(desc, att - 1)->attcollation;
	Var		   *var = makeVar(1, att, TEXTOID, -1, coll, 0);
	Const	   *c = makeConst(TEXTOID, -1, DEFAULT_COLLATION_OID, -1,
							  CStringGetTextDatum(value), false, false);

	return make_opclause(TextEqualOperator, BOOLOID, false, (Expr *) var, (Expr *) c,
						 InvalidOid, coll);
}

/*
 * Look up the columns of partition rel the reader needs, and build its
 * condition on them; elog if the partition lacks one (it is made from the
 * parent's definition: this is corruption, not user error).
 */
static void
part_columns(const TimelineScan *ts, Relation rel, PartColumns *pc)
{
	TupleDesc	desc = RelationGetDescr(rel);
	const char *bad = NULL;

	memset(pc, 0, sizeof(*pc));
	pc->at = attnum_by_name(desc, "occurred_at");
	if (pc->at == InvalidAttrNumber || TupleDescAttr(desc, pc->at - 1)->atttypid != TIMESTAMPTZOID)
		bad = "occurred_at timestamptz";
	if (ts->spec->key != NULL)
	{
		pc->key = attnum_by_name(desc, ts->spec->key);
		if (pc->key == InvalidAttrNumber || TupleDescAttr(desc, pc->key - 1)->atttypid != TEXTOID)
			bad = ts->spec->key;
		else
			pc->key_coll = TupleDescAttr(desc, pc->key - 1)->attcollation;
	}
	switch (ts->spec->cond)
	{
		case RC_NONE:
			break;
		case RC_ADMIN:
			pc->actor_type = attnum_by_name(desc, "actor_type");
			pc->kind = attnum_by_name(desc, "kind");
			if (pc->actor_type == InvalidAttrNumber || pc->kind == InvalidAttrNumber ||
				TupleDescAttr(desc, pc->actor_type - 1)->atttypid != TEXTOID ||
				TupleDescAttr(desc, pc->kind - 1)->atttypid != TEXTOID)
				bad = "actor_type or kind text";
			else
			{
				pc->actor_type_coll = TupleDescAttr(desc, pc->actor_type - 1)->attcollation;
				pc->kind_coll = TupleDescAttr(desc, pc->kind - 1)->attcollation;
				pc->cond = list_make1(makeBoolExpr(OR_EXPR,
												   list_make2(text_equals(desc, pc->actor_type, "employee"),
															  text_equals(desc, pc->kind, "admin")),
												   -1));
			}
			break;
		case RC_CRITICAL:
			pc->critical = attnum_by_name(desc, "critical");
			if (pc->critical == InvalidAttrNumber ||
				TupleDescAttr(desc, pc->critical - 1)->atttypid != BOOLOID)
				bad = "critical boolean";
			else
				pc->cond = list_make1(makeVar(1, pc->critical, BOOLOID, -1, InvalidOid, 0));
			break;
	}
	if (bad != NULL)
		elog(ERROR, "partition \"%s\" has no column %s", RelationGetRelationName(rel), bad);
}

/*
 * Does the row in slot meet the reader's condition?  Compared as the view
 * compares: text equality in each column's collation.
 */
static bool
cond_matches(const TimelineScan *ts, const PartColumns *pc, TupleTableSlot *slot)
{
	bool		isnull;
	Datum		v;

	switch (ts->spec->cond)
	{
		case RC_NONE:
			return true;
		case RC_ADMIN:
			v = slot_getattr(slot, pc->actor_type, &isnull);
			if (!isnull &&
				DatumGetBool(DirectFunctionCall2Coll(texteq, pc->actor_type_coll, v, ts->employee)))
				return true;
			v = slot_getattr(slot, pc->kind, &isnull);
			return !isnull &&
				DatumGetBool(DirectFunctionCall2Coll(texteq, pc->kind_coll, v, ts->admin));
		case RC_CRITICAL:
			v = slot_getattr(slot, pc->critical, &isnull);
			return !isnull && DatumGetBool(v);
	}
	return false;
}

/* Does the row in slot meet the reader's key (if any) and condition? */
static bool
row_matches(const TimelineScan *ts, const PartColumns *pc, TupleTableSlot *slot)
{
	if (pc->key != InvalidAttrNumber)
	{
		bool		isnull;
		Datum		v = slot_getattr(slot, pc->key, &isnull);

		if (isnull || !DatumGetBool(DirectFunctionCall2Coll(texteq, pc->key_coll, v, ts->key)))
			return false;
	}
	return cond_matches(ts, pc, slot);
}

/*
 * The partition's btree that gives the reader's rows: valid, usable by
 * this snapshot, not partial or with a predicate the reader's condition
 * implies, and led by the key column (text equality in the column's
 * collation) or, for a reader without a key, by occurred_at.  Of those,
 * an ordered one (a key's followed by occurred_at in timestamptz's
 * ordering; occurred_at itself without a key) comes first, as it is read
 * newest first and stopped early (a partition's index on the key alone
 * gives every row of the key, all read); then a partial one, as it holds
 * fewer rows the condition leaves out (the critical events' index rather
 * than every event's).  *at_col is occurred_at's place in an ordered index
 * (1 or 2), 0 in one on the key alone.  Opened (ACCESS SHARE); NULL if there is none
 * (the indexes looked at are closed again, releasing their locks).
 */
static Relation
find_index(const TimelineScan *ts, Relation rel, const PartColumns *pc, int *at_col)
{
	List	   *indexes = RelationGetIndexList(rel);
	ListCell   *lc;
	Relation	found = NULL;
	int			found_rank = -1;

	foreach(lc, indexes)
	{
		Relation	idx = index_open(lfirst_oid(lc), AccessShareLock);
		Form_pg_index ind = idx->rd_index;
		bool		usable;
		bool		by_time = false;
		bool		partial;
		int			rank;

		/* as the planner: an index some snapshots may not use is skipped */
		usable = idx->rd_rel->relam == BTREE_AM_OID && ind->indisvalid &&
			(!ind->indcheckxmin ||
			 TransactionIdPrecedes(HeapTupleHeaderGetXmin(idx->rd_indextuple->t_data),
								   TransactionXmin)) &&
			ind->indnkeyatts >= 1;
		if (usable && pc->key != InvalidAttrNumber)
		{
			usable = ind->indkey.values[0] == pc->key &&
				idx->rd_indcollation[0] == pc->key_coll &&
				get_opfamily_member(idx->rd_opfamily[0], TEXTOID, TEXTOID,
									BTEqualStrategyNumber) == TextEqualOperator;
			by_time = usable && ind->indnkeyatts >= 2 &&
				ind->indkey.values[1] == pc->at && idx->rd_opfamily[1] == ts->at_family;
		}
		else if (usable)
			usable = by_time = ind->indkey.values[0] == pc->at &&
				idx->rd_opfamily[0] == ts->at_family;
		/* a partial index must hold every row the reader's condition admits */
		partial = !heap_attisnull(idx->rd_indextuple, Anum_pg_index_indpred, NULL);
		if (usable && partial)
			usable = pc->cond != NIL &&
				predicate_implied_by(RelationGetIndexPredicate(idx), pc->cond, false);
		rank = (by_time ? 2 : 0) + (partial ? 1 : 0);
		if (usable && rank > found_rank)
		{
			if (found != NULL)
				index_close(found, AccessShareLock);
			found = idx;
			found_rank = rank;
			continue;
		}
		index_close(idx, AccessShareLock);
	}
	list_free(indexes);
	*at_col = found_rank < 2 ? 0 : pc->key != InvalidAttrNumber ? 2 : 1;
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
 * Start a scan of the reader's index in a partition: the key's equality if
 * the reader has one; in an ordered index, the time bounds as scan keys and
 * the direction that gives the newest first (*dir); in one on the key
 * alone, forward.
 */
static IndexScanDesc
begin_index_scan(const TimelineScan *ts, Relation rel, Relation idx, int at_col,
				 ScanDirection *dir)
{
	ScanKeyData keys[3];
	int			nkeys = 0;
	IndexScanDesc scan;

	*dir = ForwardScanDirection;
	if (ts->spec->key != NULL)
		ScanKeyEntryInitialize(&keys[nkeys++], 0, 1, BTEqualStrategyNumber, InvalidOid,
							   idx->rd_indcollation[0], F_TEXTEQ, ts->key);
	if (at_col > 0)
	{
		if (ts->has_before)
			ScanKeyEntryInitialize(&keys[nkeys++], 0, at_col, BTLessStrategyNumber, InvalidOid,
								   InvalidOid, ts->at_lt, TimestampTzGetDatum(ts->before));
		if (ts->has_since)
			ScanKeyEntryInitialize(&keys[nkeys++], 0, at_col, BTGreaterEqualStrategyNumber,
								   InvalidOid, InvalidOid, ts->at_ge, TimestampTzGetDatum(ts->since));
		/* newest first whichever way the index orders occurred_at */
		*dir = (idx->rd_indoption[at_col - 1] & INDOPTION_DESC) ?
			ForwardScanDirection : BackwardScanDirection;
	}
	scan = index_beginscan(rel, idx, ts->snapshot, nkeys, 0);
	index_rescan(scan, keys, nkeys, NULL, 0);
	return scan;
}

/* Is occurred_at (at) outside the call's bounds? */
static inline bool
out_of_bounds(const TimelineScan *ts, TimestampTz at)
{
	return (ts->has_before && at >= ts->before) || (ts->has_since && at < ts->since);
}

/*
 * Read the reader's rows of one leaf partition through index idx.  An
 * ordered one is read backward (newest first), with the time bounds as
 * scan keys: want rows, and those tied with the last on occurred_at (the
 * sort orders them by id).  One on the key alone gives the key's rows in
 * no particular order: all of them within the bounds are read.  Each row
 * is checked against the condition (a partial index may hold more).
 * Returns the number of rows collected.
 */
static int64
read_index(TimelineScan *ts, Relation rel, Relation idx, int at_col,
		   const AttrNumber *map, const PartColumns *pc, int64 want)
{
	IndexScanDesc scan;
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	ScanDirection dir;
	int64		n = 0;
	TimestampTz boundary = 0;
	bool		ordered = at_col > 0;

	scan = begin_index_scan(ts, rel, idx, at_col, &dir);
	while (index_getnext_slot(scan, dir, slot))
	{
		bool		isnull;
		TimestampTz at = DatumGetTimestampTz(slot_getattr(slot, pc->at, &isnull));

		CHECK_FOR_INTERRUPTS();
		if (!ordered)
		{
			if (isnull || out_of_bounds(ts, at))
				continue;
		}
		else if (n >= want && at != boundary)
			break;
		/* (the index gives the key's rows: the condition is left) */
		if (!cond_matches(ts, pc, slot))
			continue;
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
 * A partition without an index for the reader (made by hand, or one being
 * rebuilt): read it whole, keeping the rows of the key and the condition
 * within the bounds, in no order (every one goes into the sort).
 */
static int64
read_heap(TimelineScan *ts, Relation rel, const AttrNumber *map, const PartColumns *pc)
{
	TableScanDesc scan = table_beginscan(rel, ts->snapshot, 0, NULL);
	TupleTableSlot *slot = table_slot_create(rel, NULL);
	int64		n = 0;

	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		bool		isnull;
		TimestampTz at;

		CHECK_FOR_INTERRUPTS();
		if (!row_matches(ts, pc, slot))
			continue;
		at = DatumGetTimestampTz(slot_getattr(slot, pc->at, &isnull));
		if (isnull || out_of_bounds(ts, at))
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
 * The partition's column of each column of the view (the view's name, or
 * the column it renames).
 */
static const char *
source_column(const char *name)
{
	if (strcmp(name, "employee_id") == 0)
		return "actor_id";
	if (strcmp(name, "reason") == 0)
		return "actor_reason";
	return name;
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
	PartColumns pc;
	Relation	idx;
	int			at_col;
	int64		n;

	if (rel->rd_rel->relkind == RELKIND_FOREIGN_TABLE)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("%s cannot read foreign partition \"%s\"",
						ts->spec->func, RelationGetRelationName(rel)),
				 errhint("Query the view activity_monitor.%s instead.", ts->spec->view)));
	part_columns(ts, rel, &pc);
	for (int i = 0; i < ts->outdesc->natts; i++)
	{
		const char *name = source_column(NameStr(TupleDescAttr(ts->outdesc, i)->attname));

		map[i] = attnum_by_name(desc, name);
		if (map[i] == InvalidAttrNumber)
			elog(ERROR, "partition \"%s\" has no column \"%s\"",
				 RelationGetRelationName(rel), name);
		/* values are copied as they are: the types must be the view's */
		if (TupleDescAttr(desc, map[i] - 1)->atttypid !=
			TupleDescAttr(ts->outdesc, i)->atttypid)
			elog(ERROR, "column \"%s\" of partition \"%s\" is not of the type of the %s view's",
				 name, RelationGetRelationName(rel), ts->spec->view);
	}

	idx = find_index(ts, rel, &pc, &at_col);
	if (idx != NULL)
	{
		n = read_index(ts, rel, idx, at_col, map, &pc, want);
		index_close(idx, AccessShareLock);
	}
	else
		n = read_heap(ts, rel, map, &pc);
	table_close(rel, AccessShareLock);

	MemoryContextSwitchTo(old);
	MemoryContextReset(ts->partcxt);
	return n;
}

/*
 * Ask the kernel to start reading the heap blocks that hold the reader's
 * rows of one leaf partition (at most want index entries, newest first, in
 * an ordered index; all of them in one on the key alone), taken from its
 * index alone, and close it again.  A key's rows lie on different
 * blocks, in different partitions, and each one not in shared buffers is a
 * read from storage: issued one after the other as the rows are fetched,
 * their latencies add up; announced together first, they overlap (the way
 * a bitmap heap scan prefetches).  *budget is the blocks this call may
 * still announce.  Returns the index entries seen.
 */
static int64
prefetch_partition(TimelineScan *ts, Oid relid, int64 want, int *budget)
{
#ifdef USE_PREFETCH
	MemoryContext old = MemoryContextSwitchTo(ts->partcxt);
	Relation	rel = table_open(relid, AccessShareLock);
	Relation	idx = NULL;
	PartColumns pc;
	int			at_col = 0;
	int64		n = 0;

	/* what read_partition() refuses is left to it */
	if (rel->rd_rel->relkind == RELKIND_RELATION)
	{
		part_columns(ts, rel, &pc);
		idx = find_index(ts, rel, &pc, &at_col);
	}
	if (idx != NULL)
	{
		ScanDirection dir;
		IndexScanDesc scan = begin_index_scan(ts, rel, idx, at_col, &dir);
		BlockNumber last = InvalidBlockNumber;
		ItemPointer tid;

		while (*budget > 0 && (at_col == 0 || n < want) &&
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
 * The body of the reader functions: arguments ([key text,] lim int, before
 * timestamptz, since timestamptz), the rows of SELECT * FROM view WHERE
 * key_column = key AND condition AND occurred_at < before AND occurred_at
 * >= since ORDER BY occurred_at DESC, id DESC LIMIT lim (a NULL bound or
 * lim: none; a NULL key: no rows).
 */
static Datum
read_view(FunctionCallInfo fcinfo, const ReaderSpec *spec)
{
	int			a = spec->key != NULL ? 1 : 0;	/* lim's argument */
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
	check_privileges(cat, spec);

	if (!PG_ARGISNULL(a) && PG_GETARG_INT32(a) < 0)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("lim must not be negative"),
				 errdetail("The value given was %d.", PG_GETARG_INT32(a)),
				 errhint("Give NULL for no limit.")));

	InitMaterializedSRF(fcinfo, 0);
	if ((a == 1 && PG_ARGISNULL(0)) || (!PG_ARGISNULL(a) && PG_GETARG_INT32(a) == 0))
		return (Datum) 0;

	memset(&ts, 0, sizeof(ts));
	ts.spec = spec;
	ts.outdesc = rsinfo->setDesc;
	if (a == 1)
		ts.key = PointerGetDatum(PG_GETARG_TEXT_PP(0));
	ts.employee = CStringGetTextDatum("employee");
	ts.admin = CStringGetTextDatum("admin");
	ts.lim = PG_ARGISNULL(a) ? PG_INT64_MAX : PG_GETARG_INT32(a);
	ts.has_before = !PG_ARGISNULL(a + 1);
	if (ts.has_before)
		ts.before = PG_GETARG_TIMESTAMPTZ(a + 1);
	ts.has_since = !PG_ARGISNULL(a + 2);
	if (ts.has_since)
		ts.since = PG_GETARG_TIMESTAMPTZ(a + 2);
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
		elog(ERROR, "the result type of %s has no id bigint or occurred_at timestamptz", spec->func);
	ts.unitcxt = AllocSetContextCreate(CurrentMemoryContext, "timeline reader partitions",
									   ALLOCSET_SMALL_SIZES);
	ts.partcxt = AllocSetContextCreate(CurrentMemoryContext, "timeline reader partition",
									   ALLOCSET_DEFAULT_SIZES);
	ts.tuplecxt = AllocSetContextCreate(CurrentMemoryContext, "timeline reader row",
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

/*
 * account_timeline(subject text, lim int DEFAULT 50, before timestamptz
 * DEFAULT NULL, since timestamptz DEFAULT NULL) RETURNS SETOF timeline:
 * the timeline view's rows of one account (subject_id).
 */
Datum
activity_monitor_account_timeline(PG_FUNCTION_ARGS)
{
	return read_view(fcinfo, &account_reader);
}

/*
 * employee_actions(employee text, lim int DEFAULT 50, before timestamptz
 * DEFAULT NULL, since timestamptz DEFAULT NULL) RETURNS SETOF
 * admin_actions: the admin_actions view's rows of one employee_id.
 */
Datum
activity_monitor_employee_actions(PG_FUNCTION_ARGS)
{
	return read_view(fcinfo, &employee_reader);
}

/*
 * recent_critical_changes(lim int DEFAULT 50, before timestamptz DEFAULT
 * NULL, since timestamptz DEFAULT NULL) RETURNS SETOF critical_changes:
 * the critical_changes view's latest rows.
 */
Datum
activity_monitor_recent_critical_changes(PG_FUNCTION_ARGS)
{
	return read_view(fcinfo, &critical_reader);
}
