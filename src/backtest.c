/*-------------------------------------------------------------------------
 *
 * backtest.c
 *	  test_rule(): the alerts a rule definition would have fired over the
 *	  stored history, without writing an alert or sending a NOTIFY.
 *
 * The stored events of a time range are read in time order (occurred_at,
 * then id: the time index, no sort), each made into the event document
 * the way a reporting cluster makes one of a received event (receive.c):
 * the activity row's fields, and "old" and "new" as the activity kept them
 * (for an update, the changed columns only, "changed" their names), since
 * the whole rows the capture trigger saw are not stored.  The rule applies
 * to the events its kinds and tables name as in the capture trigger (its
 * tables compared by name, as table_name holds them), to changes to the
 * monitoring only if it names the kind admin (audit.c), and with a tables
 * list never to events received from other clusters (as receive.c).  Its
 * predicate is evaluated by rules.c (compiled or generic, errors counted,
 * never raised), and its matches go through the worker's engines with the
 * bounds in force (window.c, sequence.c; a first-seen rule's values in a
 * memory of their own, seen.c), the threshold crossed, the cooldown kept
 * in memory (an alert of the same group key whose event is within the
 * cooldown suppresses the next, as the worker's check on the alerts table
 * does).
 *
 * The window engine keeps one set of windows per backend: a backend that
 * also processes alert batches (the worker never runs this; a superuser's
 * _process_alerts() may) has them forgotten, and rebuilt at its next batch.
 *
 * IDENTIFICATION
 *	  src/backtest.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "common/hashfn.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "detect.h"
#include "window.h"

PG_FUNCTION_INFO_V1(activity_monitor_test_rule);
PG_FUNCTION_INFO_V1(activity_monitor_rule_matches);

#define BACKTEST_FETCH 1000		/* events read at a time */
#define BACKTEST_RULE_ID 0		/* no stored rule has it (ids start at 1) */
#define BACKTEST_COLUMNS 11
#define SEEN_MAX_ENTRIES 1000000	/* a first-seen backtest's values */

/* What one backtest carries from event to event. */
typedef struct Backtest
{
	AmRule		rule;
	WindowRule	wr;
	int			ntables;
	char	  **tables;			/* names; NULL: any table */
	HTAB	   *cooled;			/* group key -> its last alert's time */
	int64		seen;			/* events read, for pruning cooled */
	SeqRule		sr;				/* a sequence or absence rule's */
	SeenMemory *values;			/* a first-seen rule's */
	TimestampTz since;			/* before it: a first-seen rule's history */
	bool		matches;		/* _rule_matches(): every match, no alert */
	SPIPlanPtr	due_plan;		/* an absence's last step, read back */
	ReturnSetInfo *rsinfo;
} Backtest;

/*
 * The cooldown's memory: a group key (as the alert stores it: its two
 * 64-bit hashes, the null flag) and the time of its last alert.  Entries
 * older than the cooldown are dropped every COOLED_PRUNE events: the
 * events come in time order, so no later one can be suppressed by them.
 */
typedef struct CooledKey
{
	uint64		h1;
	uint64		h2;
	bool		isnull;
} CooledKey;

typedef struct Cooled
{
	CooledKey	key;			/* hash key */
	TimestampTz at;
} Cooled;

#define COOLED_PRUNE 10000

static void backtest_due(Backtest *bt, TimestampTz now, bool inclusive);

/*
 * Does the rule apply to an event of this kind, action, table and source?
 * An event of kind admin that is not a row's insert, update, delete or
 * truncate is a change to the monitoring (audit.c), which only rules that
 * name the kind and no tables see; a tracked table of kind admin records
 * row events like any other.
 */
static bool
applies(Backtest *bt, const char *kind, const char *action, const char *table,
		bool received)
{
	AmRule	   *r = &bt->rule;
	bool		monitoring = strcmp(kind, "admin") == 0 &&
		(received || (strcmp(action, "insert") != 0 && strcmp(action, "update") != 0 &&
					  strcmp(action, "delete") != 0 && strcmp(action, "truncate") != 0));

	if (r->kinds != NULL)
	{
		bool		found = false;

		for (int i = 0; i < r->nkinds && !found; i++)
			found = strcmp(r->kinds[i], kind) == 0;
		if (!found)
			return false;
	}
	else if (monitoring)
		return false;			/* rules that name the kind */
	if (bt->tables != NULL)
	{
		bool		found = false;

		if (received || monitoring)
			return false;
		for (int i = 0; i < bt->ntables && !found; i++)
			found = strcmp(bt->tables[i], table) == 0;
		if (!found)
			return false;
	}
	return true;
}

/* The time before which an alert at "at" no longer holds its key's cooldown. */
static TimestampTz
cooldown_start(Backtest *bt, TimestampTz at)
{
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(at),
												   IntervalPGetDatum(bt->rule.cooldown)));
}

/*
 * Whether the cooldown lets an alert of group key key (NULL: a NULL key,
 * else the key as the alerts table stores it) fire at "at", noting it if
 * so; now and then, forget the keys whose cooldown has passed.
 */
static bool
cooldown_allows(Backtest *bt, Datum key, bool isnull, TimestampTz at)
{
	TimestampTz since;
	CooledKey	ck;
	Cooled	   *c;
	bool		found;

	if (bt->cooled == NULL)
		return true;
	since = cooldown_start(bt, at);
	memset(&ck, 0, sizeof(ck));
	ck.isnull = isnull;
	if (!isnull)
	{
		text	   *t = DatumGetTextPP(key);

		ck.h1 = hash_bytes_extended((unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), 1);
		ck.h2 = hash_bytes_extended((unsigned char *) VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t), 2);
	}
	c = hash_search(bt->cooled, &ck, HASH_ENTER, &found);
	if (found && c->at > since)
		return false;
	c->at = at;
	return true;
}

/* Forget the keys whose cooldown has passed at "at" (see Cooled). */
static void
cooled_prune(Backtest *bt, TimestampTz at)
{
	HASH_SEQ_STATUS seq;
	Cooled	   *c;
	TimestampTz since = cooldown_start(bt, at);

	hash_seq_init(&seq, bt->cooled);
	while ((c = hash_seq_search(&seq)) != NULL)
		if (c->at <= since)
			(void) hash_search(bt->cooled, &c->key, HASH_REMOVE, NULL);
}

/*
 * An alert of group key key (->> text; NULL), value val and events ids,
 * on the event of these values (activity columns): to the result, if the
 * cooldown lets it fire.
 */
static void
emit(Backtest *bt, char *key, Numeric val, ArrayType *ids, Datum *values, bool *nulls)
{
	Datum		keyd;
	Datum		out[BACKTEST_COLUMNS];
	bool		outnull[BACKTEST_COLUMNS];
	static const int from[] = {AC_KIND, AC_ACTION, AC_TABLE_NAME, AC_SUBJECT_ID,
	AC_ACTOR_TYPE, AC_ACTOR_ID};

	/* as the alerts table stores it: a long key is cut (alerts.c) */
	keyd = key ? am_indexable_text(CStringGetTextDatum(key)) : (Datum) 0;
	if (!cooldown_allows(bt, keyd, key == NULL, DatumGetTimestampTz(values[AC_OCCURRED_AT])))
		return;
	memset(outnull, false, sizeof(outnull));
	out[0] = values[AC_ID];
	out[1] = values[AC_OCCURRED_AT];
	out[2] = keyd;
	outnull[2] = key == NULL;
	out[3] = val ? NumericGetDatum(val) : (Datum) 0;
	outnull[3] = val == NULL;
	out[4] = PointerGetDatum(ids);
	for (int c = 0; c < lengthof(from); c++)
	{
		out[5 + c] = values[from[c]];
		outnull[5 + c] = nulls[from[c]];
	}
	tuplestore_putvalues(bt->rsinfo->setResult, bt->rsinfo->setDesc, out, outnull);
}

/*
 * One stored event (the values of its activity row, its source): the alert
 * it fires, if any, goes to the result.
 */
static void
backtest_event(Backtest *bt, Datum *values, bool *nulls, const char *source)
{
	AmRule	   *list = &bt->rule;
	AmEventRows rows;
	JsonbValue	m,
				k,
				v,
				shared;
	Jsonb	   *matched;
	bool		compact;
	Numeric		val;
	ArrayType  *ids;
	WindowEvictions evicted;
	char	   *key;
	TimestampTz at;
	int64		id;

	if (bt->rule.nsteps > 0 && bt->sr.absence)
		backtest_due(bt, DatumGetTimestampTz(values[AC_OCCURRED_AT]), false);
	if (bt->cooled != NULL && ++bt->seen % COOLED_PRUNE == 0)
		cooled_prune(bt, DatumGetTimestampTz(values[AC_OCCURRED_AT]));
	if (!applies(bt, nulls[AC_KIND] ? "" : TextDatumGetCString(values[AC_KIND]),
				 nulls[AC_ACTION] ? "" : TextDatumGetCString(values[AC_ACTION]),
				 nulls[AC_TABLE_NAME] ? "" : TextDatumGetCString(values[AC_TABLE_NAME]),
				 source != NULL))
		return;
	am_stored_event_rows(values, nulls, source, source == NULL, &rows);
	/* the stored matches are the live rules': this rule's replace them */
	nulls[AC_MATCHED] = nulls[AC_RULE_ERRORS] = true;
	if (!am_rules_evaluate(&list, 1, am_event_document(values, nulls, &rows), values, nulls) ||
		nulls[AC_MATCHED])
		return;
	matched = DatumGetJsonbP(values[AC_MATCHED]);
	if (!getKeyJsonValueFromContainer(&matched->root, bt->rule.key, strlen(bt->rule.key), &m))
		return;
	compact = am_matched_shared_key(matched, &shared);
	am_matched_entry(&m, compact, &shared, &k, &v);

	at = DatumGetTimestampTz(values[AC_OCCURRED_AT]);
	id = DatumGetInt64(values[AC_ID]);
	if (bt->matches)
	{
		/* _rule_matches(): the event's time, key and value, as seen.c stores them */
		Datum		out[3];
		bool		outnull[3] = {false, k.type == jbvNull, false};

		if (v.type == jbvNull)
			return;				/* no value: never seen, never new */
		out[0] = values[AC_OCCURRED_AT];
		am_seen_texts(&k, &v, &out[1], &out[2]);
		tuplestore_putvalues(bt->rsinfo->setResult, bt->rsinfo->setDesc, out, outnull);
		return;
	}
	if (bt->rule.nsteps > 0)
	{
		int			ek = 0,
					ee = 0;

		if (!am_seq_add(&bt->sr, &k, at, id, am_seq_mask(&v), false, &ids, &ek, &ee))
			return;
		val = int64_to_numeric(bt->rule.nsteps);
	}
	else if (bt->rule.lookback != NULL)
	{
		Datum		d = Int64GetDatum(id);

		if (!am_seen_note(bt->values, bt->rule.id, bt->rule.lookback, &k, &v, at, at < bt->since))
			return;
		val = NULL;
		ids = construct_array(&d, 1, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE);
	}
	else if (!am_alerts_match(bt->rule.within ? &bt->wr : NULL, bt->rule.measure_path != (Datum) 0,
							  &k, &v, at, id, &val, &ids, &evicted))
		return;
	key = am_jsonb_value_text(&k);
	emit(bt, key, val, ids, values, nulls);
}

/*
 * The absences whose deadline is before "now" (the next event's time, or
 * the end of the range), fired as the worker would, with their last
 * step's event read back.
 */
static void
backtest_due(Backtest *bt, TimestampTz now, bool inclusive)
{
	SeqDue		due;
	Datum		args[2];
	Oid			types[2] = {INT8OID, TIMESTAMPTZOID};

	/* due: a deadline before now (or at it, inclusive) */
	while (am_seq_due(inclusive ? now : now - 1, &due))
	{
		Datum		values[AC_NUM_COLUMNS];
		bool		nulls[AC_NUM_COLUMNS];
		static const int cols[] = {AC_ID, AC_OCCURRED_AT, AC_KIND, AC_ACTION, AC_TABLE_NAME,
		AC_SUBJECT_ID, AC_ACTOR_TYPE, AC_ACTOR_ID};

		if (bt->due_plan == NULL &&
			(bt->due_plan = SPI_prepare("SELECT a.id, a.occurred_at, a.kind, a.action, a.table_name, "
										"a.subject_id, a.actor_type, a.actor_id "
										"FROM activity_monitor.activity a "
										"WHERE a.occurred_at = $2 AND a.id = $1",
										2, types)) == NULL)
			elog(ERROR, "could not prepare the absences' query");
		args[0] = Int64GetDatum(due.last_id);
		args[1] = TimestampTzGetDatum(due.last_at);
		if (SPI_execute_plan(bt->due_plan, args, NULL, true, 1) == SPI_OK_SELECT &&
			SPI_processed == 1)
		{
			memset(nulls, true, sizeof(nulls));
			for (int c = 0; c < lengthof(cols); c++)
				values[cols[c]] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, c + 1,
												&nulls[cols[c]]);
			emit(bt, due.key, int64_to_numeric(bt->rule.nsteps), due.ids, values, nulls);
		}
		/* (emit copied the row into the result: each result freed at once) */
		SPI_freetuptable(SPI_tuptable);
		pfree(due.ids);
		if (due.key)
			pfree(due.key);
	}
}

/*
 * The backtest of activity_monitor._test_rule() (alerts) and of
 * _rule_matches() (every match: time, group key and value, for
 * create_rule()'s backfill of a first-seen rule), from their common
 * arguments: predicate jsonpath, since timestamptz, until timestamptz,
 * kinds text[], tables text[] (names), within interval, threshold
 * numeric, measure text, measure_path jsonpath, group_by jsonpath,
 * cooldown interval, steps jsonpath[], missing jsonpath, lookback
 * interval.  The SQL callers check the definition first as create_rule()
 * does; this checks what it relies on.
 */
static Datum
backtest_run(FunctionCallInfo fcinfo, bool matches)
{
	Backtest	bt;
	AmRule	   *rule = &bt.rule;
	Portal		portal;
	MemoryContext fetch_cxt;
	Datum		args[2];
	Oid			types[2] = {TIMESTAMPTZOID, TIMESTAMPTZOID};
	StringInfoData sql;
	TimestampTz until;

	if (PG_ARGISNULL(0) || PG_ARGISNULL(1) || PG_ARGISNULL(2) || PG_ARGISNULL(7) ||
		PG_ARGISNULL(9))
		ereport(ERROR,
				(errcode(ERRCODE_NULL_VALUE_NOT_ALLOWED),
				 errmsg("predicate, since, until, measure and group_by must not be null")));

	memset(&bt, 0, sizeof(bt));
	bt.rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bt.matches = matches;
	rule->id = BACKTEST_RULE_ID;
	snprintf(rule->key, sizeof(rule->key), INT64_FORMAT, rule->id);
	rule->name = "test_rule";
	rule->enabled = true;
	rule->predicate = PointerGetDatum(PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(0)));
	if (!PG_ARGISNULL(3))
	{
		Datum	   *elems;
		bool	   *enulls;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(3), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &rule->nkinds);
		rule->kinds = palloc(sizeof(char *) * Max(rule->nkinds, 1));
		for (int i = 0; i < rule->nkinds; i++)
			rule->kinds[i] = enulls[i] ? "" : TextDatumGetCString(elems[i]);
	}
	if (!PG_ARGISNULL(4))
	{
		Datum	   *elems;
		bool	   *enulls;

		/* the tables' names, as the activity's table_name holds them */
		deconstruct_array(PG_GETARG_ARRAYTYPE_P(4), TEXTOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &bt.ntables);
		bt.tables = palloc(sizeof(char *) * Max(bt.ntables, 1));
		for (int i = 0; i < bt.ntables; i++)
			bt.tables[i] = enulls[i] ? "" : TextDatumGetCString(elems[i]);
	}
	if (!PG_ARGISNULL(5))
		rule->within = PG_GETARG_INTERVAL_P(5);
	if (!PG_ARGISNULL(6))
		rule->threshold = PG_GETARG_NUMERIC(6);
	{
		char	   *m = text_to_cstring(PG_GETARG_TEXT_PP(7));

		rule->measure = strcmp(m, "count") == 0 ? 'c' : strcmp(m, "sum") == 0 ? 's' :
			strcmp(m, "distinct") == 0 ? 'd' : '?';
	}
	if (!PG_ARGISNULL(8))
		rule->measure_path = PointerGetDatum(PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(8)));
	rule->group_by = PointerGetDatum(PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(9)));
	if (!PG_ARGISNULL(10) && !matches)
	{
		HASHCTL		ctl;

		rule->cooldown = PG_GETARG_INTERVAL_P(10);
		ctl.keysize = sizeof(CooledKey);
		ctl.entrysize = sizeof(Cooled);
		ctl.hcxt = CurrentMemoryContext;
		bt.cooled = hash_create("activity_monitor test_rule cooldowns", 256, &ctl,
								HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	if (!PG_ARGISNULL(11))
	{
		Datum	   *elems;
		bool	   *enulls;
		int			ne;

		deconstruct_array(PG_GETARG_ARRAYTYPE_P(11), JSONPATHOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &ne);
		for (int i = 0; i < ne; i++)
			if (enulls[i] || i >= AM_MAX_STEPS)
				ereport(ERROR,
						(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
						 errmsg("invalid rule definition"),
						 errhint("Call activity_monitor.test_rule(), which says what is wrong.")));
			else
				rule->steps[rule->nsteps++] = PointerGetDatum(PG_DETOAST_DATUM_COPY(elems[i]));
	}
	if (!PG_ARGISNULL(12) && rule->nsteps > 0)
	{
		rule->steps[rule->nsteps] = PointerGetDatum(PG_DETOAST_DATUM_COPY(PG_GETARG_DATUM(12)));
		rule->has_missing = true;
	}
	if (!PG_ARGISNULL(13))
		rule->lookback = PG_GETARG_INTERVAL_P(13);
	/* test_rule() checked all this; the C function checks what it relies on */
	if (!(rule->measure == 'c' || rule->measure == 's' || rule->measure == 'd') ||
		(rule->measure != 'c' && rule->measure_path == (Datum) 0) ||
		(rule->nsteps > 0 ? rule->within == NULL || rule->threshold != NULL ||
		 (rule->nsteps < 2 && !rule->has_missing) :
		 rule->lookback != NULL ? rule->measure_path == (Datum) 0 || rule->within != NULL :
		 (rule->within == NULL) != (rule->threshold == NULL)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("invalid rule definition"),
				 errhint("Call activity_monitor.test_rule(), which says what is wrong.")));
	am_rule_prepare(rule, rule->name, CurrentMemoryContext);
	if (rule->nsteps > 0)
		bt.sr = am_alerts_seq_rule(rule->id, rule->nsteps, rule->has_missing, rule->within);
	else if (rule->within != NULL)
		bt.wr = am_alerts_window_rule(rule->id, rule->measure, rule->within, rule->threshold);
	bt.since = PG_GETARG_TIMESTAMPTZ(1);
	until = PG_GETARG_TIMESTAMPTZ(2);
	args[0] = PG_GETARG_DATUM(1);
	args[1] = PG_GETARG_DATUM(2);
	if (rule->lookback != NULL && !matches)
	{
		/* the values seen within the lookback before the range count */
		bt.values = am_seen_create(CurrentMemoryContext, false, SEEN_MAX_ENTRIES);
		args[0] = DirectFunctionCall2(timestamptz_mi_interval, args[0],
									  IntervalPGetDatum(rule->lookback));
	}

	InitMaterializedSRF(fcinfo, 0);
	/* this backend's alert windows are the engine's: forget them (header) */
	am_alerts_forget_windows();

	initStringInfo(&sql);
	appendStringInfoString(&sql, "SELECT ");
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
		appendStringInfo(&sql, "a.%s, ", quote_identifier(am_activity_column_name(c)));
	appendStringInfoString(&sql, "a.source FROM activity_monitor.activity a "
						   "WHERE a.occurred_at >= $1 AND a.occurred_at < $2 "
						   "ORDER BY a.occurred_at, a.id");

	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, sql.data, 2, types, args, NULL, true, 0);
	fetch_cxt = AllocSetContextCreate(CurrentMemoryContext, "activity_monitor test_rule",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		SPITupleTable *tt;
		uint64		n;

		SPI_cursor_fetch(portal, true, BACKTEST_FETCH);
		tt = SPI_tuptable;
		n = SPI_processed;
		if (n == 0)
			break;
		for (uint64 i = 0; i < n; i++)
		{
			MemoryContext old = MemoryContextSwitchTo(fetch_cxt);
			Datum		values[AC_NUM_COLUMNS];
			bool		nulls[AC_NUM_COLUMNS];
			bool		snull;
			Datum		source;

			CHECK_FOR_INTERRUPTS();
			for (int c = 0; c < AC_NUM_COLUMNS; c++)
				values[c] = SPI_getbinval(tt->vals[i], tt->tupdesc, c + 1, &nulls[c]);
			source = SPI_getbinval(tt->vals[i], tt->tupdesc, AC_NUM_COLUMNS + 1, &snull);
			backtest_event(&bt, values, nulls, snull ? NULL : TextDatumGetCString(source));
			MemoryContextSwitchTo(old);
			MemoryContextReset(fetch_cxt);
		}
		SPI_freetuptable(tt);
	}
	SPI_cursor_close(portal);
	/* the absences whose deadline passed by the end of the range (and now) */
	if (rule->nsteps > 0 && rule->has_missing && !matches)
		backtest_due(&bt, Min(until, GetCurrentTimestamp()), true);
	SPI_finish();
	am_alerts_forget_windows();
	return (Datum) 0;
}

/*
 * activity_monitor._test_rule(...): the alerts (see backtest_run) as rows:
 * event_id, occurred_at, group_key, value, event_ids, kind, action,
 * table_name, subject_id, actor_type, actor_id.
 */
Datum
activity_monitor_test_rule(PG_FUNCTION_ARGS)
{
	return backtest_run(fcinfo, false);
}

/*
 * activity_monitor._rule_matches(...): every event the rule matches, as
 * rows occurred_at, group_key, value (as activity_monitor.seen holds them).
 */
Datum
activity_monitor_rule_matches(PG_FUNCTION_ARGS)
{
	return backtest_run(fcinfo, true);
}
