/*-------------------------------------------------------------------------
 *
 * seen.c
 *	  First-seen rules: which values (at the rule's measure_path) each
 *	  group key has shown, and when last.
 *
 * A first-seen rule fires when an event's value has not been seen for its
 * group key within the rule's lookback (30 days, say): longer than the
 * worker could replay from the activity at every start.  So the state is
 * a table, activity_monitor.seen (rule, group key, value, last seen),
 * written in the alert batch's transaction (a crash replays the batch and
 * its writes together), pruned of what is older than the lookback, and
 * backfilled from the stored events by create_rule() (_rule_matches()).
 * The worker keeps a memory in front of it (SeenMemory): what it looked up
 * or wrote, at most max_entries entries, then forgotten all at once and
 * read again as needed.  A row's last_seen is written when the value is
 * new and then again only when it moved by a 64th of the lookback: the
 * table can be that much behind the memory, so after a restart a value
 * could expire that much early (an alert too many, never one too few).
 *
 * test_rule() uses a memory alone (persist false), filled from the events
 * of the lookback before its range; it refuses to hold more than
 * max_entries values once those older than the lookback are forgotten.
 *
 * IDENTIFICATION
 *	  src/seen.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "executor/spi.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "detect.h"

/* A group key and value: their two 64-bit hashes each. */
typedef struct SeenId
{
	uint64		k1;
	uint64		k2;
	uint64		v1;
	uint64		v2;
} SeenId;

/* What one rule knows of a group key and value. */
typedef struct SeenSlot
{
	int64		rule_id;
	TimestampTz last;			/* last seen; 0: never */
	TimestampTz stored;			/* the table's last_seen; 0: no row */
} SeenSlot;

/*
 * A group key and value, and the rules that noted it: the rules of a rule
 * book that watch the same values for the same keys (a new device for a
 * login, for a withdrawal) find theirs with one look-up, side by side.
 */
typedef struct SeenEntry
{
	SeenId		id;				/* hash key: first */
	int			n;
	int			cap;
	SeenSlot   *slots;
} SeenEntry;

/* The entries last used, by their hash (one look-up less per rule). */
#define SEEN_MEMO 16

struct SeenMemory
{
	MemoryContext cxt;
	HTAB	   *h;
	bool		persist;
	int64		max_entries;	/* of slots */
	int64		nslots;
	SeenEntry  *memo[SEEN_MEMO];
};

static void seen_prune(SeenMemory *sm, TimestampTz before);

static SPIPlanPtr plan_find,
			plan_find_null,
			plan_write;

SeenMemory *
am_seen_create(MemoryContext cxt, bool persist, int64 max_entries)
{
	SeenMemory *sm = MemoryContextAllocZero(cxt, sizeof(SeenMemory));

	sm->cxt = AllocSetContextCreate(cxt, "activity_monitor first seen", ALLOCSET_DEFAULT_SIZES);
	sm->persist = persist;
	am_seen_clear(sm, max_entries);
	return sm;
}

/* Forget everything (the table, if any, stays); keep at most max_entries. */
void
am_seen_clear(SeenMemory *sm, int64 max_entries)
{
	HASHCTL		ctl;

	MemoryContextReset(sm->cxt);
	sm->max_entries = max_entries;
	sm->nslots = 0;
	memset(sm->memo, 0, sizeof(sm->memo));
	ctl.keysize = sizeof(SeenId);
	ctl.entrysize = sizeof(SeenEntry);
	ctl.hash = am_words_hash;
	ctl.match = am_words_match;
	ctl.hcxt = sm->cxt;
	sm->h = hash_create("activity_monitor first seen", 1024, &ctl,
						HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
}

static SPIPlanPtr
plan(SPIPlanPtr *p, const char *sql, int nargs, Oid *types)
{
	if (*p == NULL)
	{
		SPIPlanPtr	q = SPI_prepare(sql, nargs, types);

		if (q == NULL || SPI_keepplan(q) != 0)
			elog(ERROR, "could not prepare \"%s\"", sql);
		*p = q;
	}
	return *p;
}

/* The table's last_seen of (rule, key, value); 0 if it has no row. */
static TimestampTz
table_find(int64 rule_id, Datum key, bool knull, Datum value)
{
	Datum		args[3] = {Int64GetDatum(rule_id), key, value};
	Oid			types[3] = {INT8OID, TEXTOID, TEXTOID};
	bool		isnull;
	int			rc;
	TimestampTz found;

	if (knull)
	{
		args[1] = value;
		rc = SPI_execute_plan(plan(&plan_find_null,
								   "SELECT last_seen FROM activity_monitor.seen "
								   "WHERE rule_id = $1 AND group_key IS NULL AND value = $2",
								   2, types), args, NULL, true, 1);
	}
	else
		rc = SPI_execute_plan(plan(&plan_find,
								   "SELECT last_seen FROM activity_monitor.seen "
								   "WHERE rule_id = $1 AND group_key = $2 AND value = $3",
								   3, types), args, NULL, true, 1);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read activity_monitor.seen: %s", SPI_result_code_string(rc));
	found = SPI_processed == 0 ? 0 :
		DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1,
										  &isnull));
	/* (a batch may look up many: each result freed at once) */
	SPI_freetuptable(SPI_tuptable);
	return found;
}

static void
table_write(int64 rule_id, Datum key, bool knull, Datum value, TimestampTz at)
{
	Datum		args[4] = {Int64GetDatum(rule_id), key, value, TimestampTzGetDatum(at)};
	Oid			types[4] = {INT8OID, TEXTOID, TEXTOID, TIMESTAMPTZOID};
	char		nulls[4] = {' ', knull ? 'n' : ' ', ' ', ' '};

	if (SPI_execute_plan(plan(&plan_write,
							  "INSERT INTO activity_monitor.seen AS s "
							  "  (rule_id, group_key, value, last_seen) VALUES ($1, $2, $3, $4) "
							  "ON CONFLICT (rule_id, group_key, value) DO UPDATE "
							  "  SET last_seen = GREATEST(s.last_seen, excluded.last_seen)",
							  4, types), args, nulls, false, 0) != SPI_OK_INSERT)
		elog(ERROR, "could not write activity_monitor.seen");
}

/*
 * A group key and value as the table holds them (and _rule_matches()
 * returns them for the backfill): ->> texts, long ones cut as alerts'
 * keys; a JSON null key is NULL (0).
 */
void
am_seen_texts(JsonbValue *k, JsonbValue *v, Datum *keyd, Datum *valued)
{
	*keyd = k->type == jbvNull ? (Datum) 0 :
		am_indexable_text(CStringGetTextDatum(am_jsonb_value_text(k)));
	*valued = am_indexable_text(CStringGetTextDatum(am_jsonb_value_text(v)));
}

/* A lookback in microseconds, months as 30 days (for the refresh only). */
static int64
lookback_usecs(Interval *lookback)
{
	return lookback->time + (int64) lookback->day * USECS_PER_DAY +
		(int64) lookback->month * 30 * USECS_PER_DAY;
}

/*
 * Note that group key k showed value v at "at", for rule rule_id: returns
 * whether the value is new for the key (not seen within lookback before;
 * a value seen later than "at", by an event processed earlier, is not
 * new).  A history event (test_rule()'s before its range) is only noted.
 * An event without a value (JSON null, or none) is not noted, never new.
 */
bool
am_seen_note(SeenMemory *sm, int64 rule_id, Interval *lookback, JsonbValue *k,
			 JsonbValue *v, TimestampTz at, bool history)
{
	SeenId		id;
	SeenEntry  *g;
	SeenSlot   *e = NULL;
	SeenEntry **memo;
	bool		isnew;
	Datum		keyd = (Datum) 0;
	Datum		valued = (Datum) 0;
	bool		knull = k->type == jbvNull;

	if (v->type == jbvNull)
		return false;
	memset(&id, 0, sizeof(id));
	am_jsonb_value_hash(k, &id.k1, &id.k2);
	am_jsonb_value_hash(v, &id.v1, &id.v2);

	if (sm->nslots >= sm->max_entries)
	{
		if (sm->persist)
			am_seen_clear(sm, sm->max_entries);	/* the table remembers */
		else
		{
			seen_prune(sm, DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
																	   TimestampTzGetDatum(at),
																	   IntervalPGetDatum(lookback))));
			if (sm->nslots >= sm->max_entries)
				ereport(ERROR,
						(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
						 errmsg("first-seen backtest holds more than " INT64_FORMAT " values",
								sm->max_entries),
						 errdetail("Every group key and value seen within the lookback is kept in memory."),
						 errhint("Test a shorter range or lookback, or a narrower predicate.")));
		}
	}
	memo = &sm->memo[(id.k1 ^ id.v1) % SEEN_MEMO];
	g = *memo;
	if (g == NULL || memcmp(&g->id, &id, sizeof(id)) != 0)
	{
		bool		found;

		g = hash_search(sm->h, &id, HASH_ENTER, &found);
		if (!found)
		{
			g->n = g->cap = 0;
			g->slots = NULL;
		}
		*memo = g;
	}
	for (int i = 0; i < g->n && e == NULL; i++)
		if (g->slots[i].rule_id == rule_id)
			e = &g->slots[i];
	if (e == NULL)
	{
		if (g->n == g->cap)
		{
			g->cap = Max(2, g->cap * 2);
			g->slots = g->slots ? repalloc(g->slots, sizeof(SeenSlot) * g->cap) :
				MemoryContextAlloc(sm->cxt, sizeof(SeenSlot) * g->cap);
		}
		e = &g->slots[g->n++];
		sm->nslots++;
		e->rule_id = rule_id;
		e->last = e->stored = 0;
		if (sm->persist)
		{
			am_seen_texts(k, v, &keyd, &valued);
			e->last = e->stored = table_find(rule_id, keyd, knull, valued);
		}
	}
	isnew = !history && (e->last == 0 || am_ts_plus(e->last, lookback) < at);
	if (at > e->last)
		e->last = at;
	if (sm->persist &&
		(e->stored == 0 || isnew || e->last - e->stored > lookback_usecs(lookback) / 64))
	{
		if (valued == (Datum) 0)
			am_seen_texts(k, v, &keyd, &valued);
		table_write(rule_id, keyd, knull, valued, e->last);
		e->stored = e->last;
	}
	return isnew;
}

/* Forget the values last seen before "before" (test_rule()'s memory). */
static void
seen_prune(SeenMemory *sm, TimestampTz before)
{
	HASH_SEQ_STATUS seq;
	SeenEntry  *g;

	memset(sm->memo, 0, sizeof(sm->memo));
	hash_seq_init(&seq, sm->h);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		int			kept = 0;

		for (int i = 0; i < g->n; i++)
			if (g->slots[i].last >= before)
				g->slots[kept++] = g->slots[i];
		sm->nslots -= g->n - kept;
		g->n = kept;
		if (kept == 0)
		{
			if (g->slots)
				pfree(g->slots);
			(void) hash_search(sm->h, &g->id, HASH_REMOVE, NULL);
		}
	}
}

/*
 * Delete the table's rows older than their rule's lookback (the worker,
 * now and then, inside its batch's SPI connection).
 */
void
am_seen_prune_table(void)
{
	static SPIPlanPtr plan_prune = NULL;

	if (SPI_execute_plan(plan(&plan_prune,
							  "DELETE FROM activity_monitor.seen s "
							  "USING activity_monitor.alert_rule r "
							  "WHERE s.rule_id = r.id "
							  "  AND s.last_seen < pg_catalog.now() - r.lookback",
							  0, NULL), NULL, NULL, false, 0) != SPI_OK_DELETE)
		elog(ERROR, "could not prune activity_monitor.seen");
}
