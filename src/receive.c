/*-------------------------------------------------------------------------
 *
 * receive.c
 *	  Fan-in: events that logical replication brings from another cluster's
 *	  activity become this (reporting) cluster's own.
 *
 * A reporting cluster subscribes to the publication of each source's
 * activity table (README, "Fan-in").  PostgreSQL's apply worker inserts the
 * rows it receives into activity_monitor.activity, where this BEFORE INSERT
 * trigger (enabled ALWAYS, so that it fires with session_replication_role
 * = replica) rewrites each one:
 *
 *   source, source_id  the subscription's name and the event's id there
 *                      (kept if the row carries them already: a reporting
 *                      cluster that feeds another keeps the first source);
 *   id, txid, backend_pid  this cluster's, so that ids are unique here and
 *                      the worker reads received events in the order they
 *                      committed here, like captured ones (each receiving
 *                      transaction notes the oldest time it wrote in
 *                      activity_monitor.received for the sealing rounds);
 *   matched, rule_errors  this cluster's rules, evaluated on the event
 *                      (rules with a tables list never apply: the source's
 *                      tables are not this cluster's), so that rules see the
 *                      combined stream of every source.
 *
 * A table copy (a new subscription's, or one made again after a lost
 * replication slot) skips the events this cluster has already: the ids of
 * the source's events here are read once per copy, in order, into ranges
 * of consecutive ids, and searched.  Streaming replay needs no look-up: replication origins apply
 * each transaction once.  Any other insert (a
 * restore, a merge putting rows back) is left as it is.
 *
 * IDENTIFICATION
 *	  src/receive.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/htup_details.h"
#include "access/transam.h"
#include "access/xact.h"
#include "catalog/pg_subscription_rel.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "replication/worker_internal.h"
#include "storage/proc.h"
#include "utils/builtins.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(activity_monitor_receive);

/*
 * The ids of the events this cluster holds of each source, for the table
 * copy in progress (one transaction), read once per copy and source in id
 * order and kept as ranges of consecutive ids (a source's ids are nearly
 * consecutive: a few bytes for millions of events).
 */
typedef struct KnownIds
{
	char	   *source;
	int64	   *lo;				/* range i: lo[i] .. hi[i] */
	int64	   *hi;
	uint64		n;
} KnownIds;

static LocalTransactionId known_lxid = InvalidLocalTransactionId;
static List *known = NIL;		/* of KnownIds, in TopTransactionContext */

static KnownIds *
known_load(const char *source)
{
	MemoryContext old = MemoryContextSwitchTo(TopTransactionContext);
	KnownIds   *k = palloc0(sizeof(KnownIds));
	uint64		cap = 64;
	uint64		events = 0;
	Oid			types[1] = {TEXTOID};
	Datum		args[1];
	Portal		portal;

	k->source = pstrdup(source);
	k->lo = palloc(sizeof(int64) * cap);
	k->hi = palloc(sizeof(int64) * cap);
	known = lappend(known, k);
	MemoryContextSwitchTo(old);

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	args[0] = CStringGetTextDatum(source);
	portal = SPI_cursor_open_with_args(NULL, "SELECT a.source_id FROM activity_monitor.activity a "
									   "WHERE a.source OPERATOR(pg_catalog.=) $1 AND a.source_id IS NOT NULL "
									   "ORDER BY 1",
									   1, types, args, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, 10000);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;
			int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i],
														 SPI_tuptable->tupdesc, 1, &isnull));

			events++;
			if (k->n > 0 && id <= k->hi[k->n - 1] + 1)
			{
				k->hi[k->n - 1] = Max(k->hi[k->n - 1], id);
				continue;
			}
			if (k->n == cap)
			{
				cap *= 2;
				k->lo = repalloc_huge(k->lo, sizeof(int64) * cap);
				k->hi = repalloc_huge(k->hi, sizeof(int64) * cap);
			}
			k->lo[k->n] = id;
			k->hi[k->n] = id;
			k->n++;
		}
		SPI_freetuptable(SPI_tuptable);
		CHECK_FOR_INTERRUPTS();
	}
	SPI_cursor_close(portal);
	SPI_finish();
	if (events > 0)
		elog(LOG, "activity_monitor: a copy of source \"%s\" skips the %llu events this cluster has (%llu ranges of ids)",
			 source, (unsigned long long) events, (unsigned long long) k->n);
	return k;
}

/*
 * Does this cluster hold the source's event already?  Asked during a table
 * copy only, which brings every event the source has.
 */
static bool
already_received(const char *source, int64 source_id)
{
	KnownIds   *k = NULL;
	ListCell   *lc;
	uint64		l = 0,
				r;

	if (known_lxid != MyProc->lxid)
	{
		known = NIL;			/* freed with the previous transaction */
		known_lxid = MyProc->lxid;
	}
	foreach(lc, known)
		if (strcmp(((KnownIds *) lfirst(lc))->source, source) == 0)
			k = lfirst(lc);
	if (k == NULL)
		k = known_load(source);
	/* the first range whose hi >= source_id */
	r = k->n;
	while (l < r)
	{
		uint64		m = l + (r - l) / 2;

		if (k->hi[m] < source_id)
			l = m + 1;
		else
			r = m;
	}
	return l < k->n && k->lo[l] <= source_id;
}

/*
 * Received events are dated at their source, before this cluster's clock,
 * which the sealing rounds, the rollup and the alert batches bound their
 * reads by (seal.c, alerts.c): each receiving transaction leaves the oldest
 * time it wrote in activity_monitor.received, written again only when an
 * older one comes.
 */
static LocalTransactionId received_lxid = InvalidLocalTransactionId;
static TimestampTz received_oldest;

static void
note_received(int64 txid, TimestampTz at)
{
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
	Datum		args[2];

	if (received_lxid == MyProc->lxid && at >= received_oldest)
		return;
	args[0] = Int64GetDatum(txid);
	args[1] = TimestampTzGetDatum(at);
	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("INSERT INTO activity_monitor.received AS r (txid, oldest) VALUES ($1, $2) "
							  "ON CONFLICT (txid) DO UPDATE SET oldest = LEAST(r.oldest, EXCLUDED.oldest)",
							  2, types, args, NULL, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write activity_monitor.received");
	SPI_finish();
	received_lxid = MyProc->lxid;
	received_oldest = at;
}

/*
 * BEFORE INSERT row trigger on the activity: see the file header.  Returns
 * the row unchanged outside logical replication's workers, NULL (skip) for
 * an event a table copy brings again.
 */
Datum
activity_monitor_receive(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TupleDesc	desc;
	HeapTuple	tuple;
	int			natts;
	Datum	   *all;
	bool	   *allnull;
	bool	   *repl;
	int			att[AC_NUM_COLUMNS];
	int			source_att,
				source_id_att;
	Datum		values[AC_NUM_COLUMNS];
	bool		nulls[AC_NUM_COLUMNS];
	const char *source;
	const char *kind;
	AmRule	  **rules;
	int			nrules,
				n = 0;

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event))
		elog(ERROR, "activity_monitor_receive: not fired as a BEFORE trigger");

	/*
	 * A subscription whose publication sends truncates would empty the
	 * activity of every source: refused (the apply worker stops, counted in
	 * the view sources, until the transaction is skipped).
	 */
	if (TRIGGER_FIRED_BY_TRUNCATE(td->tg_event))
	{
		if (MyLogicalRepWorker != NULL && MySubscription != NULL)
			ereport(ERROR,
					(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
					 errmsg("activity_monitor: subscription \"%s\" cannot truncate the activity",
							MySubscription->name),
					 errdetail("Its publication sends truncates; the activity receives inserts only."),
					 errhint("Make the publication publish = 'insert', then skip this transaction "
							 "with ALTER SUBSCRIPTION ... SKIP.")));
		return PointerGetDatum(NULL);
	}
	if (!TRIGGER_FIRED_FOR_ROW(td->tg_event) || !TRIGGER_FIRED_BY_INSERT(td->tg_event))
		elog(ERROR, "activity_monitor_receive: not fired as a BEFORE INSERT row or BEFORE TRUNCATE trigger");
	tuple = td->tg_trigtuple;
	if (MyLogicalRepWorker == NULL || MySubscription == NULL)
		return PointerGetDatum(tuple);

	/*
	 * Replication applies its changes whatever the database's
	 * default_transaction_read_only (a setting its owner controls); the
	 * receiving of events (a local id, a note) follows it.
	 */
	XactReadOnly = false;

	desc = RelationGetDescr(td->tg_relation);
	natts = desc->natts;
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
	{
		att[c] = SPI_fnumber(desc, am_activity_column_name(c)) - 1;
		if (att[c] < 0)
			elog(ERROR, "\"%s\" has no column \"%s\"",
				 RelationGetRelationName(td->tg_relation), am_activity_column_name(c));
	}
	source_att = SPI_fnumber(desc, "source") - 1;
	source_id_att = SPI_fnumber(desc, "source_id") - 1;
	if (source_att < 0 || source_id_att < 0)
		elog(ERROR, "\"%s\" has no column source or source_id",
			 RelationGetRelationName(td->tg_relation));

	all = palloc(sizeof(Datum) * natts);
	allnull = palloc(sizeof(bool) * natts);
	repl = palloc0(sizeof(bool) * natts);
	heap_deform_tuple(tuple, desc, all, allnull);
	if (allnull[att[AC_ID]] || allnull[att[AC_OCCURRED_AT]] || allnull[att[AC_KIND]])
		ereport(ERROR,
				(errcode(ERRCODE_NOT_NULL_VIOLATION),
				 errmsg("activity_monitor: a received event has no id, time or kind"),
				 errdetail("Subscription \"%s\".", MySubscription->name)));

	/*
	 * Where it comes from: the subscription, whatever the row says (a
	 * source cannot speak for another); through a chain of reporting
	 * clusters, the subscription then the source it named ("eu/eu1"), with
	 * the first source's id.
	 */
	if (allnull[source_att] || allnull[source_id_att])
	{
		source = MySubscription->name;
		all[source_id_att] = all[att[AC_ID]];
	}
	else
		source = psprintf("%s/%s", MySubscription->name, TextDatumGetCString(all[source_att]));
	all[source_att] = CStringGetTextDatum(source);
	allnull[source_att] = allnull[source_id_att] = false;
	repl[source_att] = repl[source_id_att] = true;
	if (am_tablesync_worker() && MyLogicalRepWorker->relstate == SUBREL_STATE_DATASYNC &&
		already_received(source, DatumGetInt64(all[source_id_att])))
		return PointerGetDatum(NULL);

	/* this cluster's id and transaction */
	all[att[AC_ID]] = Int64GetDatum(am_sink_next_id());
	all[att[AC_TXID]] = Int64GetDatum((int64) U64FromFullTransactionId(GetTopFullTransactionId()));
	note_received(DatumGetInt64(all[att[AC_TXID]]), DatumGetTimestampTz(all[att[AC_OCCURRED_AT]]));
	all[att[AC_BACKEND_PID]] = Int32GetDatum(MyProcPid);
	allnull[att[AC_MATCHED]] = allnull[att[AC_RULE_ERRORS]] = true;
	repl[att[AC_ID]] = repl[att[AC_TXID]] = repl[att[AC_BACKEND_PID]] = true;
	repl[att[AC_MATCHED]] = repl[att[AC_RULE_ERRORS]] = true;

	/*
	 * This cluster's rules: those without a tables list; an admin event
	 * (the source's monitoring changed) only for rules that name kind admin,
	 * as for admin events recorded here (audit.c).
	 */
	kind = TextDatumGetCString(all[att[AC_KIND]]);
	nrules = am_rules_applicable(InvalidOid, kind, &rules, CurrentMemoryContext);
	for (int i = 0; i < nrules; i++)
		if (rules[i]->tables == NULL &&
			(rules[i]->kinds != NULL || strcmp(kind, "admin") != 0))
			rules[n++] = rules[i];
	if (n > 0)
	{
		AmEventRows rows;

		for (int c = 0; c < AC_NUM_COLUMNS; c++)
		{
			values[c] = all[att[c]];
			nulls[c] = allnull[att[c]];
		}
		am_stored_event_rows(values, nulls, source, false, &rows);
		if (am_rules_evaluate(rules, n, am_event_document(values, nulls, &rows), values, nulls))
		{
			all[att[AC_MATCHED]] = values[AC_MATCHED];
			allnull[att[AC_MATCHED]] = nulls[AC_MATCHED];
			all[att[AC_RULE_ERRORS]] = values[AC_RULE_ERRORS];
			allnull[att[AC_RULE_ERRORS]] = nulls[AC_RULE_ERRORS];
			am_wake_at_commit();
		}
	}
	return PointerGetDatum(heap_modify_tuple(tuple, desc, all, allnull, repl));
}
