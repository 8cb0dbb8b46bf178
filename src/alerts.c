/*-------------------------------------------------------------------------
 *
 * alerts.c
 *	  The alert engine: applies windows, thresholds and cooldowns to the
 *	  committed events that matched rules, fires alerts and notifies.
 *
 * The worker (worker.c) calls am_process_alerts() inside the transaction it
 * opened; activity_monitor._process_alerts() runs the same batch from SQL
 * (tests, and by hand: superuser only).  A batch takes the events that
 * committed since the last batch (visible in the current snapshot and not
 * in the last one, PgQ's technique), in id order, at most max_events per
 * call, and inserts alerts and sends NOTIFY in the same transaction that
 * moves alert_state forward: every committed event is handled once, none
 * from a rolled-back transaction, and a crash replays the batch.  The rules
 * come from the rule cache the capture trigger uses too (rules.c).
 *
 * Window state (per rule and group key: the events inside the window, the
 * running count and sum, how often each distinct value occurs) lives in
 * this backend's memory, in the window engine (window.c), not in tables:
 * updating a row per event is what made a SQL engine slow.  It is a
 * function of the processed events, so it is rebuilt from the activity
 * table (the events' "matched" column holds each rule's group key and
 * measure) whenever it may not match alert_state: at the first call in a
 * backend, after a transaction that did not commit, or after another
 * backend processed a batch.  A window keeps the events newer than its
 * newest event minus the rule's "within"; that set does not depend on the
 * order the events arrived in, so replaying them in id order rebuilds it
 * exactly.  Keys idle for more than an hour past their window are forgotten
 * (a transaction open longer than that could commit an event whose window
 * is then incomplete).
 *
 * Sequence and absence rules (sequence.c) keep their steps the same way,
 * rebuilt by the same replay after the events of the alerts they already
 * fired are read back (those events are used up); an absence whose
 * deadline has passed on this backend's clock fires at the end of a batch
 * that caught up (fire_due), and the worker sleeps no longer than until the
 * next deadline.  First-seen rules (seen.c) keep their values in a table,
 * written in the batch's transaction, with a bounded memory in front.
 *
 * The windows are bounded, so that no writer can grow the worker at will
 * (settings activity_monitor.max_*, reloaded on SIGHUP, that this file
 * hands to window.c with each rule, which applies them): a rule keeps at
 * most max_keys_per_rule group keys and max_events_per_rule events in all
 * its windows, a window at most max_events_per_window events (a count
 * window only as many as its threshold: that loses nothing), and a window
 * is at most max_window long.  Beyond a bound the oldest go first: the
 * least recently active key of the rule, the oldest events of a window;
 * rule_stats counts them (keys_evicted, events_evicted).  An eviction can
 * cost an alert; a rule that evicted may also rebuild slightly different
 * windows after a restart (the replay evicts what it meets in id order).
 * The rebuild reads its events through a cursor, a bounded number at a
 * time.
 *
 * IDENTIFICATION
 *	  src/alerts.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "partitioning/partbounds.h"
#include "partitioning/partdesc.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/guc.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/partcache.h"
#include "utils/rel.h"
#include "utils/resowner.h"
#include "utils/timestamp.h"
#include "detect.h"
#include "window.h"

PG_FUNCTION_INFO_V1(activity_monitor_process_alerts);

#define REBUILD_FETCH 1000		/* events the rebuild reads at a time */
#define BATCH_WORK_MEM "64MB"	/* the batch query's sort (see there) */

/* Bounds of the windows (see the header); PGC_SIGHUP. */
static int	max_window_secs = SECS_PER_DAY; /* activity_monitor.max_window */
static int	max_keys_per_rule = 10000;	/* activity_monitor.max_keys_per_rule */
static int	max_events_per_window = 1000;	/* activity_monitor.max_events_per_window */
static int	max_events_per_rule = 100000;	/* activity_monitor.max_events_per_rule */

/*
 * A rule as one call sees it: the rule cache's fields (pointing into the
 * cache, see load_rules) and the call's counters.
 */
typedef struct Rule
{
	int64		id;
	char	   *name;
	char	   *severity;
	char	   *channel;
	bool		full_payload;	/* NOTIFY the whole alert */
	bool		enabled;
	bool		windowed;		/* a window rule (count, sum, distinct) */
	int			nsteps;			/* a sequence (or absence) rule's steps */
	bool		absence;
	Interval   *lookback;		/* a first-seen rule's */
	Interval   *within;			/* at most max_window (rule_within) */
	Numeric		threshold;
	WindowThreshold thr;		/* the threshold, for integer measures */
	char		measure;		/* 'c'ount, 's'um, 'd'istinct */
	bool		has_measure_path;
	Interval   *cooldown;
	int64		matched;		/* counters of this call */
	int64		errors;
	int64		fired;
	int64		keys_evicted;
	int64		events_evicted;
} Rule;

/*
 * Whether the windows are what the events processed so far made them:
 * valid while "processed" matches alert_state.
 */
static bool engine_valid = false;
static int64 engine_processed;
static char *engine_snapshot = NULL;	/* in am_window_memory() */
static int64 engine_last_id;
static TimestampTz engine_swept;

static Rule *rules;
static int	nrules;

/* First-seen rules' memory in front of activity_monitor.seen (seen.c). */
static SeenMemory *seen_memory = NULL;
static TimestampTz seen_pruned = 0;

#define SEEN_PRUNE_USECS ((int64) 3600 * USECS_PER_SEC)
#define IDLE_LAG_USECS ((int64) 3600 * USECS_PER_SEC)	/* see fire_due's caller */

/* The transaction of the batch running in this backend, if one is. */
static LocalTransactionId batch_lxid = InvalidLocalTransactionId;

/* The engine's statements, prepared once per backend (run_saved). */
static SPIPlanPtr plan_lock,
			plan_lock_tid,
			plan_horizon,
			plan_consumed,
			plan_due_event,
			plan_state,
			plan_batch,
			plan_rebuild,
			plan_alert,
			plan_full_payload,
			plan_error,
			plan_counters,
			plan_counters_tid,
			plan_more,
			plan_done,
			plan_xips,
			plan_received,
			plan_batch_xips;

/* The partition start plan_batch and plan_batch_xips were made for. */
static TimestampTz plan_batch_floor,
			plan_batch_xips_floor;

/*
 * The row versions of alert_state and of each rule's rule_stats this backend
 * last locked or wrote: both rows are updated at every batch, and while an
 * old snapshot (a transaction left open, a long pg_dump) keeps their dead
 * versions, finding the row by a scan or its index reads them all, every
 * batch, ever more.  The batch goes straight to the version it knows (a TID
 * scan), and searches only when that is no longer the row's current one.
 */
static ItemPointerData state_tid;
static bool state_tid_valid = false;

typedef struct StatsTid
{
	int64		rule_id;		/* hash key */
	ItemPointerData tid;
} StatsTid;

static HTAB *stats_tids = NULL;

/* The value as ->> renders it (NULL for JSON null); test_rule's too. */
char *
am_jsonb_value_text(JsonbValue *v)
{
	switch (v->type)
	{
		case jbvNull:
			return NULL;
		case jbvString:
			return pnstrdup(v->val.string.val, v->val.string.len);
		case jbvNumeric:
			return DatumGetCString(DirectFunctionCall1(numeric_out, NumericGetDatum(v->val.numeric)));
		case jbvBool:
			return pstrdup(v->val.boolean ? "true" : "false");
		default:
			return JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
	}
}

static Numeric
num_int(int64 i)
{
	return int64_to_numeric(i);
}

/* Forget every window (the next call rebuilds them). */
static void
engine_reset(void)
{
	am_seq_reset();
	if (seen_memory == NULL)
		seen_memory = am_seen_create(TopMemoryContext, true, max_events_per_rule);
	else
		am_seen_clear(seen_memory, max_events_per_rule);
	am_window_reset();			/* frees engine_snapshot too */
	engine_snapshot = NULL;
	engine_valid = false;
	engine_swept = GetCurrentTimestamp();
}

/*
 * Forget the windows, for another user of the window engine in this
 * backend (test_rule(), backtest.c): the next batch here rebuilds them.
 */
void
am_alerts_forget_windows(void)
{
	if (batch_lxid != InvalidLocalTransactionId && batch_lxid == MyProc->lxid)
		ereport(ERROR,
				(errcode(ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE),
				 errmsg("cannot backtest a rule inside an alert batch"),
				 errdetail("The batch's windows are in use in this backend.")));
	engine_reset();
}

/* activity_monitor.max_window as an interval (days and time). */
static Interval *
max_window_interval(void)
{
	static Interval iv;

	iv.month = 0;
	iv.day = max_window_secs / SECS_PER_DAY;
	iv.time = (int64) (max_window_secs % SECS_PER_DAY) * USECS_PER_SEC;
	return &iv;
}

/*
 * A rule's window: its "within", at most activity_monitor.max_window (a
 * copy in the call's memory: the setting may change at the next reload).
 */
static Interval *
rule_within(Interval *within)
{
	Interval   *iv = palloc(sizeof(Interval));

	*iv = *within;
	if (DatumGetBool(DirectFunctionCall2(interval_gt, IntervalPGetDatum(within),
										 IntervalPGetDatum(max_window_interval()))))
		*iv = *max_window_interval();
	return iv;
}

/* What the windows need of rule r (window.h), with the bounds in force. */
static WindowRule
window_rule(Rule *r)
{
	WindowRule	wr;

	wr.id = r->id;
	wr.measure = r->measure;
	wr.within = r->within;
	wr.threshold = r->threshold;
	wr.thr = r->thr;
	wr.max_keys = max_keys_per_rule;
	wr.max_events = max_events_per_rule;
	wr.max_window_events = max_events_per_window;
	return wr;
}

/*
 * What the window engine needs of a rule made outside alert_rule
 * (test_rule(), backtest.c), with the bounds in force now.
 */
WindowRule
am_alerts_window_rule(int64 id, char measure, Interval *within, Numeric threshold)
{
	Rule		r;

	memset(&r, 0, sizeof(r));
	r.id = id;
	r.measure = measure;
	r.within = rule_within(within);
	r.threshold = threshold;
	if (threshold != NULL)
		r.thr = am_window_threshold(threshold);
	return window_rule(&r);
}

/* What the sequence engine needs of rule r (detect.h), with the bounds. */
static SeqRule
seq_rule(Rule *r)
{
	SeqRule		sr;

	sr.id = r->id;
	sr.nsteps = r->nsteps;
	sr.absence = r->absence;
	sr.within = r->within;
	sr.max_keys = max_keys_per_rule;
	sr.max_events = max_events_per_rule;
	sr.max_window_events = max_events_per_window;
	return sr;
}

/* The same for a rule made outside alert_rule (test_rule(), backtest.c). */
SeqRule
am_alerts_seq_rule(int64 id, int nsteps, bool absence, Interval *within)
{
	Rule		r;

	memset(&r, 0, sizeof(r));
	r.id = id;
	r.nsteps = nsteps;
	r.absence = absence;
	r.within = rule_within(within);
	return seq_rule(&r);
}

/*
 * The earliest deadline of an absence this backend's engine waits for
 * (DT_NOEND: none): the worker wakes up for it.
 */
TimestampTz
am_alerts_next_deadline(void)
{
	return engine_valid ? am_seq_next_deadline() : DT_NOEND;
}

/*
 * Forget keys idle for more than an hour past their window, and the windows
 * of rules that have none any more (am_window_sweep, am_seq_sweep).
 */
static void
engine_sweep(TimestampTz now)
{
	WindowRule *wr = palloc(sizeof(WindowRule) * Max(nrules, 1));
	SeqRule    *sr = palloc(sizeof(SeqRule) * Max(nrules, 1));
	int			n = 0;
	int			ns = 0;

	for (int i = 0; i < nrules; i++)
	{
		if (rules[i].windowed)
			wr[n++] = window_rule(&rules[i]);
		if (rules[i].nsteps > 0 && rules[i].enabled)
			sr[ns++] = seq_rule(&rules[i]);
	}
	am_window_sweep(wr, n, now);
	am_seq_sweep(sr, ns, now);
	pfree(wr);
	pfree(sr);
	engine_swept = now;
}

static Rule *
rule_find(int64 id)
{
	/* rules come ordered by id */
	int			lo = 0,
				hi = nrules - 1;

	while (lo <= hi)
	{
		int			mid = (lo + hi) / 2;

		if (rules[mid].id == id)
			return &rules[mid];
		if (rules[mid].id < id)
			lo = mid + 1;
		else
			hi = mid - 1;
	}
	return NULL;
}

/*
 * A snapshot as the engine keeps it (txid_snapshot text, from alert_state)
 * made a txid_snapshot value once, passed to the statements as such: given
 * as text and cast in the statement, it was parsed again for every row the
 * batch query looked at (the cast of a parameter is not folded in a saved
 * plan), a quarter of the worker's time under a stream of commits.
 */
static Datum
snapshot_datum(const char *s)
{
	Oid			typinput;
	Oid			typioparam;

	getTypeInputInfo(TXID_SNAPSHOTOID, &typinput, &typioparam);
	return OidInputFunctionCall(typinput, (char *) s, typioparam, -1);
}

/*
 * Run one of the engine's statements with a plan prepared once and kept for
 * the backend's life (the worker runs them on every wake-up).
 */
static SPIPlanPtr
saved_plan(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types)
{
	if (*plan == NULL)
	{
		SPIPlanPtr	p = SPI_prepare(sql, nargs, types);

		if (p == NULL)
			elog(ERROR, "could not prepare \"%s\": %s", sql, SPI_result_code_string(SPI_result));
		if (SPI_keepplan(p) != 0)
			elog(ERROR, "could not keep a plan");
		*plan = p;
	}
	return *plan;
}

static int
run_saved(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
		  Datum *args, const char *nulls)
{
	return SPI_execute_plan(saved_plan(plan, sql, nargs, types), args, nulls, false, 0);
}

/*
 * Plan and run the engine's statements with generic plans, without
 * sequential scans and jit, until engine_settings_pop(level).  Its
 * statements run again and again on plans kept for the backend's life:
 * a custom plan (the plan cache's choice while it estimates it cheaper)
 * plans the batch query, over every partition and its indexes, at every
 * batch, which costs more than running it; a plan made while a partition
 * was empty scans it whole at every batch once it has filled (until an
 * ANALYZE), where its indexes find the few rows wanted; and a plan whose
 * estimate passes jit_above_cost (the rebuild's, on a large activity table)
 * would be compiled at every execution: seconds, and tens of MB outside any
 * memory context.  An error restores the settings with the transaction.
 */
static int
engine_settings_push(void)
{
	int			level = NewGUCNestLevel();

	(void) set_config_option("plan_cache_mode", "force_generic_plan", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	return level;
}

static void
engine_settings_pop(int level)
{
	AtEOXact_GUC(true, level);
}

/*
 * run_saved() with two settings (name, value) in force while it plans and
 * runs the statement, and restored after it.
 */
static int
run_with(const char *name1, const char *value1, const char *name2, const char *value2,
		 SPIPlanPtr *plan, const char *sql, int nargs, Oid *types, Datum *args,
		 const char *nulls)
{
	int			level = NewGUCNestLevel();
	int			rc;

	(void) set_config_option(name1, value1, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option(name2, value2, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	rc = run_saved(plan, sql, nargs, types, args, nulls);
	AtEOXact_GUC(true, level);
	return rc;
}

/*
 * run_saved() for a statement that finds its rows by TID (see state_tid):
 * planned and run with index and bitmap scans off too, or the planner,
 * believing the table a page long, would walk its index through every dead
 * version.
 */
static int
run_by_tid(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
		   Datum *args, const char *nulls)
{
	return run_with("enable_indexscan", "off", "enable_bitmapscan", "off",
					plan, sql, nargs, types, args, nulls);
}

/*
 * run_saved() for a statement whose rows are found by occurred_at: planned
 * at each run with its parameters' values (a custom plan), so that the
 * planner keeps only the partitions they name.  A generic plan, the
 * engine's choice otherwise, locks every partition at every run (their
 * pruning comes at execution), and at a thousand partitions a batch took
 * seconds.  Without bitmap scans: the batch's bound on occurred_at is
 * there to name partitions, and a bitmap of the time index ANDed with the
 * txid index's read every event of the day at every batch.
 */
static int
run_custom(SPIPlanPtr *plan, const char *sql, int nargs, Oid *types,
		   Datum *args, const char *nulls)
{
	return run_with("plan_cache_mode", "force_custom_plan", "enable_bitmapscan", "off",
					plan, sql, nargs, types, args, nulls);
}

/*
 * t as an SQL literal that reads the same whatever the session's DateStyle
 * and TimeZone: ISO, in UTC, with its offset (without it, the worker read
 * the floor in the server's time zone: west of UTC, a bound in the future,
 * and the batch's events skipped; shell/alert_batch_timezone).
 */
static char *
timestamptz_literal(TimestampTz t)
{
	struct pg_tm tm;
	fsec_t		fsec;
	char		buf[MAXDATELEN + 1];

	if (TIMESTAMP_IS_NOBEGIN(t))
		strcpy(buf, EARLY);
	else if (TIMESTAMP_IS_NOEND(t))
		strcpy(buf, LATE);
	else if (timestamp2tm(t, NULL, &tm, &fsec, NULL, NULL) != 0)
		ereport(ERROR,
				(errcode(ERRCODE_DATETIME_VALUE_OUT_OF_RANGE),
				 errmsg("timestamp out of range")));
	else
	{
		/* in UTC, and said so: EncodeDateTime prints no offset for -1 */
		tm.tm_isdst = 0;
		EncodeDateTime(&tm, fsec, true, 0, NULL, USE_ISO_DATES, buf);
	}
	return psprintf("'%s'::pg_catalog.timestamptz", buf);
}

/*
 * run_saved() for a statement whose rows are found by occurred_at from a
 * partition's start: sql's %s (or %1$s, as often as it needs) is that start
 * (floor), written into the statement as a constant, so that the planner
 * keeps only the partitions from there on, as a custom plan would, and the
 * plan is kept while the floor stays (*plan_floor), a day's batches on one
 * plan.  A generic plan of a parameter locks and opens every partition at
 * every run (its pruning comes at execution; at a thousand partitions a
 * batch took seconds); a custom plan costs about a millisecond at every
 * batch, a quarter of the worker's CPU under a stream of commits (about a
 * hundred batches a second).  A partition attached or detached invalidates the plan, which
 * is made again.  Without bitmap scans: the floor is there to name
 * partitions, and a bitmap of the time index ANDed with the txid index's
 * read every event of the day at every batch.
 */
static int
run_from_floor(SPIPlanPtr *plan, TimestampTz *plan_floor, TimestampTz floor,
			   const char *sql, int nargs, Oid *types, Datum *args, const char *nulls)
{
	if (*plan != NULL && *plan_floor != floor)
	{
		SPI_freeplan(*plan);
		*plan = NULL;
	}
	if (*plan == NULL)
	{
		char	   *text = psprintf(sql, timestamptz_literal(floor));

		(void) saved_plan(plan, text, nargs, types);
		*plan_floor = floor;
		pfree(text);
	}
	return run_with("plan_cache_mode", "force_generic_plan", "enable_bitmapscan", "off",
					plan, NULL, nargs, types, args, nulls);
}

/*
 * The start of the activity partition that holds time t (t itself when
 * none does, or before every partition).  The batch's bound is rounded
 * down to it: the query keeps the partitions from there on, and in the
 * first of them the bound selects every row, so the planner looks the
 * batch's transactions up in their txid index rather than reading the
 * time index from the bound (a second or more of every event, at every
 * batch: the plan alert_batch_plan.sh rules out).
 */
static TimestampTz
partition_floor(TimestampTz t)
{
	Relation	parent = table_open(am_catalog()->activity, AccessShareLock);
	PartitionKey key = RelationGetPartitionKey(parent);
	PartitionBoundInfo bi = RelationGetPartitionDesc(parent, true)->boundinfo;
	TimestampTz floor = t;

	if (bi != NULL && bi->ndatums > 0 && !TIMESTAMP_NOT_FINITE(t))
	{
		bool		equal;
		Datum		v = TimestampTzGetDatum(t);
		int			off = partition_range_datum_bsearch(key->partsupfunc, key->partcollation,
														bi, 1, &v, &equal);

		if (off >= 0 && bi->kind[off][0] == PARTITION_RANGE_DATUM_VALUE)
			floor = DatumGetTimestampTz(bi->datums[off][0]);
	}
	table_close(parent, NoLock);
	return floor;
}

/*
 * The rules of this call: the rule cache's (rules.c), in id order, with
 * this call's counters.  The cache's rules stay valid until the end of the
 * transaction, whatever reloads it meanwhile; the array lives in the
 * call's memory.
 */
static void
load_rules(void)
{
	AmRule	   *cache;

	nrules = am_rules_all(&cache);
	rules = palloc0(sizeof(Rule) * Max(nrules, 1));
	for (int i = 0; i < nrules; i++)
	{
		AmRule	   *c = &cache[i];
		Rule	   *r = &rules[i];

		r->id = c->id;
		r->name = c->name;
		r->severity = c->severity;
		r->channel = c->channel;
		r->full_payload = c->full_payload;
		r->enabled = c->enabled;
		r->nsteps = c->nsteps;
		r->absence = c->has_missing;
		r->lookback = c->lookback;
		r->windowed = c->within != NULL && c->nsteps == 0;
		r->within = c->within ? rule_within(c->within) : NULL;
		r->threshold = c->threshold;
		if (r->windowed && r->threshold != NULL)
			r->thr = am_window_threshold(r->threshold);
		r->measure = c->measure;
		r->has_measure_path = c->measure_path != (Datum) 0;
		r->cooldown = c->cooldown;
	}
}

/*
 * Call fn for each rule an event's "matched" column names, in rule id
 * order, with the group key k and measure v (JSON null when absent).
 */
typedef void (*MatchFn) (Rule *r, JsonbValue *k, JsonbValue *v, void *arg);

/* A rule id as "matched" writes it (decimal digits); -1 if it is not one. */
static int64
key_rule_id(const char *s, int len)
{
	int64		id = 0;

	if (len < 1 || len > 18)
		return -1;
	for (int i = 0; i < len; i++)
	{
		if (s[i] < '0' || s[i] > '9')
			return -1;
		id = id * 10 + (s[i] - '0');
	}
	return id;
}

static void
for_each_match(Jsonb *matched, MatchFn fn, void *arg)
{
	JsonbIterator *it = JsonbIteratorInit(&matched->root);
	JsonbValue	key;
	JsonbValue	val;
	JsonbValue	shared;
	JsonbIteratorToken tok;
	bool		compact = am_matched_shared_key(matched, &shared);

	/* keys of a jsonb object are ordered by length, then bytes: id order */
	while ((tok = JsonbIteratorNext(&it, &key, true)) != WJB_DONE)
	{
		Rule	   *r;
		JsonbValue	k,
					v;

		if (tok != WJB_KEY)
			continue;
		tok = JsonbIteratorNext(&it, &val, true);
		r = rule_find(key_rule_id(key.val.string.val, key.val.string.len));
		if (r == NULL || !r->enabled)
			continue;
		am_matched_entry(&val, compact, &shared, &k, &v);
		fn(r, &k, &v, arg);
	}
}

/* Rebuild: replay one processed event into the windows, firing nothing. */
static void
replay_match(Rule *r, JsonbValue *k, JsonbValue *v, void *arg)
{
	Datum	   *ev = (Datum *) arg;
	WindowRule	wr;
	Window	   *w;
	WindowMeasure val,
				before;
	WindowEvictions evicted;

	if (r->nsteps > 0 && r->within != NULL)
	{
		SeqRule		sr = seq_rule(r);
		int			ek = 0,
					ee = 0;
		ArrayType  *ids;

		(void) am_seq_add(&sr, k, DatumGetTimestampTz(ev[1]), DatumGetInt64(ev[0]),
						  am_seq_mask(v), true, &ids, &ek, &ee);
		return;
	}
	if (!r->windowed)
		return;
	/* what the bounds evicted was counted when the event was processed */
	wr = window_rule(r);
	(void) am_window_add(&wr, k, DatumGetTimestampTz(ev[1]), DatumGetInt64(ev[0]), v,
						 &w, &val, &before, &evicted);
}

/*
 * Rebuild the windows from the processed events of the longest window (at
 * most max_window) plus an hour, in id order, read through a cursor a
 * bounded number at a time: its memory does not depend on how many there
 * are (the sort spills to disk beyond work_mem).
 */
static void
engine_rebuild(const char *last, const char *batch, int64 batch_last_id)
{
	Datum		args[4];
	Oid			types[4] = {TXID_SNAPSHOTOID, TXID_SNAPSHOTOID, INT8OID, TIMESTAMPTZOID};
	char		nulls[4] = {' ', batch ? ' ' : 'n', ' ', ' '};
	Portal		portal;
	MemoryContext fetch_cxt;
	bool		any = false;
	bool		any_seq = false;
	bool		isnull;
	Datum		horizon;
	int			level;

	engine_reset();
	for (int i = 0; i < nrules; i++)
	{
		any |= rules[i].windowed && rules[i].enabled;
		any_seq |= rules[i].nsteps > 0 && rules[i].enabled;
	}
	if (!any && !any_seq)
		return;					/* no window to rebuild */

	/*
	 * From the longest window (at most max_window) plus an hour before the
	 * last batch (not now: absences whose deadline passed while the worker
	 * was away still fire).
	 */
	{
		Datum		arg = IntervalPGetDatum(max_window_interval());
		Oid			type = INTERVALOID;

		if (run_saved(&plan_horizon,
					  "SELECT GREATEST(s.since, LEAST(pg_catalog.now(), coalesce(s.last_run_at, pg_catalog.now())) "
					  "  - interval '1 hour' "
					  "  - LEAST((SELECT pg_catalog.max(r.within) FROM activity_monitor.alert_rule r), $1)) "
					  "FROM activity_monitor.alert_state s",
					  1, &type, &arg, NULL) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "activity_monitor.alert_state must hold one row");
		horizon = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	}

	/*
	 * The events of the sequences and absences that fired are consumed
	 * (sequence.c): read back from their alerts.
	 */
	if (any_seq)
	{
		Datum		arg[2];
		Oid			atypes[2] = {TIMESTAMPTZOID, INTERVALOID};
		Portal		consumed;

		arg[0] = horizon;
		arg[1] = IntervalPGetDatum(max_window_interval());
		consumed = SPI_cursor_open(NULL,
								   saved_plan(&plan_consumed,
											  "SELECT a.rule_id, e.id FROM activity_monitor.alerts a, "
											  "  pg_catalog.unnest(a.event_ids) e(id) "
											  "WHERE a.rule_id IN (SELECT r.id FROM activity_monitor.alert_rule r "
											  "                    WHERE r.steps IS NOT NULL) "
											  "  AND a.fired_at >= $1 - $2 AND a.occurred_at >= $1 - $2",
											  2, atypes),
								   arg, NULL, true);
		for (;;)
		{
			SPI_cursor_fetch(consumed, true, REBUILD_FETCH);
			if (SPI_processed == 0)
				break;
			for (uint64 i = 0; i < SPI_processed; i++)
				am_seq_consumed(DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull)),
								DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull)));
			SPI_freetuptable(SPI_tuptable);
		}
		SPI_freetuptable(SPI_tuptable);
		SPI_cursor_close(consumed);
	}

	args[0] = snapshot_datum(last);
	args[1] = batch ? snapshot_datum(batch) : (Datum) 0;
	args[2] = Int64GetDatum(batch_last_id);
	args[3] = horizon;
	/* planned with the horizon's value: its partitions only (run_custom) */
	level = NewGUCNestLevel();
	(void) set_config_option("plan_cache_mode", "force_custom_plan", PGC_USERSET,
							 PGC_S_SESSION, GUC_ACTION_SAVE, true, 0, false);
	portal = SPI_cursor_open(NULL,
							 saved_plan(&plan_rebuild,
										"SELECT a.id, a.occurred_at, a.matched "
										"FROM activity_monitor.activity a "
										"WHERE a.matched IS NOT NULL "
										"  AND a.occurred_at >= $4 "
										"  AND a.txid < pg_catalog.txid_snapshot_xmax(coalesce($2, $1)) "
										"  AND (pg_catalog.txid_visible_in_snapshot(a.txid, $1) "
										"       OR (pg_catalog.txid_visible_in_snapshot(a.txid, $2) AND a.id <= $3)) "
										"ORDER BY a.id",
										4, types),
							 args, nulls, false);
	AtEOXact_GUC(true, level);
	fetch_cxt = AllocSetContextCreate(CurrentMemoryContext, "activity_monitor rebuild",
									  ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		MemoryContext old;

		SPI_cursor_fetch(portal, true, REBUILD_FETCH);
		if (SPI_processed == 0)
			break;
		old = MemoryContextSwitchTo(fetch_cxt);
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum		ev[2];
			bool		isnull;
			Jsonb	   *m;

			ev[0] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
			ev[1] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
			m = DatumGetJsonbP(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &isnull));
			for_each_match(m, replay_match, ev);
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(SPI_tuptable);
		MemoryContextReset(fetch_cxt);
	}
	SPI_freetuptable(SPI_tuptable);
	SPI_cursor_close(portal);
	MemoryContextDelete(fetch_cxt);
	am_seq_consumed_done();
}

/*
 * Lock alert_state's row, and set state_tid to the version locked: the one
 * this backend wrote last if it is still current (a TID scan), else the one
 * a scan finds (see state_tid).  A version another caller updated meanwhile
 * is not current: the TID scan finds nothing, or, waiting for that caller,
 * re-checks the updated version against "ctid = $1", which fails.
 */
static void
state_lock(void)
{
	int			rc;
	bool		isnull;
	Datum		tid;

	if (state_tid_valid)
	{
		Datum		arg = PointerGetDatum(&state_tid);
		Oid			type = TIDOID;

		rc = run_by_tid(&plan_lock_tid, "SELECT ctid FROM activity_monitor.alert_state "
					    "WHERE ctid = $1 FOR UPDATE", 1, &type, &arg, NULL);
		if (rc == SPI_OK_SELECT && SPI_processed == 1)
			return;
	}
	rc = run_saved(&plan_lock, "SELECT ctid FROM activity_monitor.alert_state FOR UPDATE",
				   0, NULL, NULL, NULL);
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "activity_monitor.alert_state must hold one row");
	tid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	state_tid = *(ItemPointer) DatumGetPointer(tid);
	state_tid_valid = true;
}

/* What processing one event needs: its row and the call's totals. */
typedef struct EventCtx
{
	HeapTuple	tup;
	TupleDesc	desc;
	int64		id;
	TimestampTz at;
	int			fired;
} EventCtx;

#define EVENT_QUERY_COLUMNS \
	"a.id, a.occurred_at, a.kind, a.action, a.table_name, a.subject_id, " \
	"a.actor_type, a.actor_id, a.matched, a.rule_errors"

/* An event that could not be processed: log it, record it, go on. */
static void
record_event_error(int64 id, const char *message)
{
	Datum		arg;
	Oid			type = TEXTOID;

	ereport(WARNING,
			(errmsg("activity_monitor: event " INT64_FORMAT " skipped by alert processing: %s",
					id, message)));
	arg = CStringGetTextDatum(psprintf("alert processing: event " INT64_FORMAT ": %s", id, message));
	(void) run_saved(&plan_error, "UPDATE activity_monitor.worker_state "
					 "SET last_error = $1, last_error_at = pg_catalog.now()",
					 1, &type, &arg, NULL);
}

/*
 * Whether a rule that sent the whole alert when this batch loaded the rules
 * still does: turned off (or the rule dropped) since, it sends the public
 * payload from the next alert on, as alert_payload(alert) would.  (Turned
 * on, it takes effect from the next batch: the public payload is the safe
 * side.)
 */
static bool
full_payload_now(Rule *r)
{
	Datum		arg = Int64GetDatum(r->id);
	Oid			type = INT8OID;
	bool		full = false;
	int			rc;

	rc = run_saved(&plan_full_payload,
				   "SELECT r.full_payload FROM activity_monitor.alert_rule r WHERE r.id = $1",
				   1, &type, &arg, NULL);
	if (rc != SPI_OK_SELECT)
		elog(ERROR, "could not read alert rule " INT64_FORMAT ": %s", r->id,
			 SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		bool		isnull;
		Datum		d = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

		full = !isnull && DatumGetBool(d);
	}
	SPI_freetuptable(SPI_tuptable);
	return full;
}

/* fire()'s arguments, for am_subxact_try. */
typedef struct FireCall
{
	Rule	   *r;
	EventCtx   *ec;
	char	   *group_key;
	Numeric		val;
	ArrayType  *ids;
} FireCall;

/* Insert the alert, cooldown permitting, and NOTIFY it (fire()'s work). */
static void
fire_call(void *arg)
{
	FireCall   *c = (FireCall *) arg;
	Rule	   *r = c->r;
	EventCtx   *ec = c->ec;
	char	   *group_key = c->group_key;
	Numeric		val = c->val;
	ArrayType  *ids = c->ids;
	Datum		args[16];
	Oid			types[16] = {INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID,
		INT8OID, INT8ARRAYOID, TIMESTAMPTZOID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, INTERVALOID};
	char		nulls[16];
	int			rc;

	memset(nulls, ' ', sizeof(nulls));
	args[0] = Int64GetDatum(r->id);
	args[1] = CStringGetTextDatum(r->name);
	args[2] = CStringGetTextDatum(r->severity);
	args[3] = CStringGetTextDatum(r->channel);
	/* indexed (rule, key, time): a long key is cut, never the alert */
	args[4] = group_key ? am_indexable_text(CStringGetTextDatum(group_key)) : (Datum) 0;
	nulls[4] = group_key ? ' ' : 'n';
	args[5] = val ? NumericGetDatum(val) : (Datum) 0;
	nulls[5] = val ? ' ' : 'n';
	args[6] = Int64GetDatum(ec->id);
	args[7] = PointerGetDatum(ids);
	/* occurred_at, kind, action, table_name, subject_id, actor_type, actor_id */
	for (int c = 0; c < 7; c++)
	{
		bool		isnull;

		args[8 + c] = SPI_getbinval(ec->tup, ec->desc, 2 + c, &isnull);
		nulls[8 + c] = isnull ? 'n' : ' ';
	}
	args[15] = r->cooldown ? IntervalPGetDatum(r->cooldown) : (Datum) 0;
	nulls[15] = r->cooldown ? ' ' : 'n';
	rc = run_saved(&plan_alert,
				   "INSERT INTO activity_monitor.alerts AS a (rule_id, rule_name, severity, channel, "
				   "  group_key, value, event_id, event_ids, occurred_at, kind, action, "
				   "  table_name, subject_id, actor_type, actor_id) "
				   "SELECT $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15 "
				   "WHERE $16::interval IS NULL OR NOT EXISTS ("
				   "  SELECT 1 FROM activity_monitor.alerts x WHERE x.rule_id = $1 "
				   "    AND x.group_key IS NOT DISTINCT FROM $5 AND x.occurred_at > $9 - $16::interval) "
				   "RETURNING a.id, a",
				   16, types, args, nulls);
	if (rc != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not insert an alert: %s", SPI_result_code_string(rc));
	if (SPI_processed > 0)
	{
		SPITupleTable *inserted = SPI_tuptable;
		HeapTuple	tup = inserted->vals[0];
		TupleDesc	desc = inserted->tupdesc;
		bool		isnull;
		int64		alert_id = DatumGetInt64(SPI_getbinval(tup, desc, 1, &isnull));

		/*
		 * The payload as alert_payload(alert) gives it now (notify.c).
		 * Near a full queue the alert is stored without its notification
		 * (consumers that poll the table still see it).
		 */
		if (!am_notify_alert(SPI_getbinval(tup, desc, 2, &isnull),
							 r->full_payload && full_payload_now(r)))
			ereport(WARNING,
					(errmsg("activity_monitor: alert " INT64_FORMAT " stored without NOTIFY: the notification queue is 90%% full",
							alert_id),
					 errhint("A session LISTENs without reading its notifications: find it in pg_stat_activity and end it.")));
		/* (a batch may fire many: each result freed at once) */
		SPI_freetuptable(inserted);
		r->fired++;
		ec->fired++;
	}
	else
		SPI_freetuptable(SPI_tuptable);
}

/*
 * Fire one alert, cooldown permitting: insert it and NOTIFY its payload.
 * Runs in a subtransaction: an alert that cannot be written is logged and
 * recorded, and must not stop the batch.
 */
static void
fire(Rule *r, EventCtx *ec, JsonbValue *k, Numeric val, ArrayType *ids)
{
	FireCall	c = {r, ec, am_jsonb_value_text(k), val, ids};
	ErrorData  *edata;

	if (!am_subxact_try(fire_call, &c, &edata))
	{
		record_event_error(ec->id, edata->message);
		FreeErrorData(edata);
	}
}

/*
 * Whether an event (id, time at) that matched a rule, with group key k and
 * measure v, fires it, and if so the alert's value and events: a rule per
 * event (wr NULL) fires for each, a window rule when the event makes its
 * measure reach the threshold.  *evicted says what the window's bounds
 * cost.  The batch's and test_rule()'s (backtest.c) one definition.
 */
bool
am_alerts_match(const WindowRule *wr, bool has_measure_path, JsonbValue *k, JsonbValue *v,
				TimestampTz at, int64 id, Numeric *val, ArrayType **ids,
				WindowEvictions *evicted)
{
	Window	   *w;
	WindowMeasure after,
				before;

	evicted->keys = evicted->events = 0;
	if (wr == NULL)
	{
		Numeric		n = has_measure_path ? am_window_measure_num(v) : NULL;
		Datum		d = Int64GetDatum(id);

		*val = n ? n : num_int(1);
		*ids = construct_array(&d, 1, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE);
		return true;
	}
	if (!am_window_add(wr, k, at, id, v, &w, &after, &before, evicted) ||
		!am_window_reached(wr, &after) || am_window_reached(wr, &before))
		return false;
	*val = am_window_numeric(&after);
	*ids = am_window_ids(w);
	return true;
}

/* One rule an event matched: per event, or through its window. */
static void
process_match(Rule *r, JsonbValue *k, JsonbValue *v, void *arg)
{
	EventCtx   *ec = (EventCtx *) arg;
	WindowRule	wr;
	WindowEvictions evicted;
	Numeric		val;
	ArrayType  *ids;
	bool		fires;

	r->matched++;
	if (r->nsteps > 0 && r->within != NULL)
	{
		/* a sequence fires when complete; an absence waits (fire_due) */
		SeqRule		sr = seq_rule(r);
		int			ek = 0,
					ee = 0;

		if (am_seq_add(&sr, k, ec->at, ec->id, am_seq_mask(v), false, &ids, &ek, &ee))
			fire(r, ec, k, num_int(r->nsteps), ids);
		r->keys_evicted += ek;
		r->events_evicted += ee;
		return;
	}
	if (r->lookback != NULL)
	{
		/* first seen: the event alone is the alert's, and no value */
		Datum		d = Int64GetDatum(ec->id);

		if (am_seen_note(seen_memory, r->id, r->lookback, k, v, ec->at, false))
			fire(r, ec, k, NULL,
				 construct_array(&d, 1, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
		return;
	}
	if (r->windowed)
		wr = window_rule(r);
	fires = am_alerts_match(r->windowed ? &wr : NULL, r->has_measure_path, k, v, ec->at, ec->id,
							&val, &ids, &evicted);
	r->keys_evicted += evicted.keys;
	r->events_evicted += evicted.events;
	if (fires)
		fire(r, ec, k, val, ids);
}

/*
 * Fire the absences whose deadline has passed on this backend's clock
 * (sequence.c), at most max of them (*left says whether more are due): the
 * alert is their last step's event's, read back from the activity.  Each
 * in a memory context of its own, reset after it.  Returns the alerts
 * fired.
 */
static int
fire_due(TimestampTz now, int max, bool *left)
{
	SeqDue		due;
	int			fired = 0;
	int			n = 0;
	MemoryContext due_cxt = AllocSetContextCreate(CurrentMemoryContext,
												  "activity_monitor absence",
												  ALLOCSET_DEFAULT_SIZES);
	MemoryContext old = MemoryContextSwitchTo(due_cxt);

	for (;;)
	{
		Rule	   *r;
		Datum		args[2];
		Oid			types[2] = {INT8OID, TIMESTAMPTZOID};
		EventCtx	ec;
		JsonbValue	k;
		bool		isnull;

		MemoryContextReset(due_cxt);
		if (n == max || !am_seq_due(now, &due))
			break;
		n++;
		r = rule_find(due.rule_id);
		if (r == NULL || !r->enabled || !r->absence)
			continue;
		args[0] = Int64GetDatum(due.last_id);
		args[1] = TimestampTzGetDatum(due.last_at);
		if (run_custom(&plan_due_event,
					   "SELECT " EVENT_QUERY_COLUMNS " FROM activity_monitor.activity a "
					   "WHERE a.occurred_at = $2 AND a.id = $1",
					   2, types, args, NULL) != SPI_OK_SELECT || SPI_processed != 1)
		{
			SPI_freetuptable(SPI_tuptable);
			record_event_error(due.last_id, "the last step of an absence is no longer stored");
			continue;
		}
		ec.tup = SPI_copytuple(SPI_tuptable->vals[0]);
		ec.desc = CreateTupleDescCopy(SPI_tuptable->tupdesc);
		SPI_freetuptable(SPI_tuptable);
		ec.id = DatumGetInt64(SPI_getbinval(ec.tup, ec.desc, 1, &isnull));
		ec.at = due.last_at;
		ec.fired = 0;
		if (due.key == NULL)
			k.type = jbvNull;
		else
		{
			k.type = jbvString;
			k.val.string.val = due.key;
			k.val.string.len = strlen(due.key);
		}
		fire(r, &ec, &k, num_int(r->nsteps), due.ids);
		fired += ec.fired;
	}
	*left = am_seq_next_deadline() <= now;
	MemoryContextSwitchTo(old);
	MemoryContextDelete(due_cxt);
	return fired;
}

/* Remember the rule_stats row versions an update returned (rule_id, ctid). */
static void
stats_tids_note(void)
{
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		isnull;
		int64		id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		tid = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &isnull);
		StatsTid   *st = hash_search(stats_tids, &id, HASH_ENTER, NULL);

		st->tid = *(ItemPointer) DatumGetPointer(tid);
	}
}

/*
 * Write the call's per-rule counters, once (not a row update per event):
 * first straight at the row versions this backend wrote last (see
 * state_tid), then, for the rules that one did not reach, by rule id.
 */
static void
write_counters(void)
{
	Datum	   *d[7];
	Datum		args[7];
	Oid			types[7] = {INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID, INT8ARRAYOID,
	INT8ARRAYOID, INT8ARRAYOID, TIDARRAYOID};
	int			n = 0;
	int			ntid = 0;

	if (stats_tids == NULL || hash_get_num_entries(stats_tids) > 4 * nrules + 64)
	{
		HASHCTL		ctl;

		/* (rules come and go: forget them all now and then) */
		if (stats_tids != NULL)
			hash_destroy(stats_tids);
		ctl.keysize = sizeof(int64);
		ctl.entrysize = sizeof(StatsTid);
		ctl.hcxt = TopMemoryContext;
		stats_tids = hash_create("activity_monitor rule_stats versions", 64, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	for (int c = 0; c < 7; c++)
		d[c] = palloc(sizeof(Datum) * Max(nrules, 1));
	for (int i = 0; i < nrules; i++)
	{
		Rule	   *r = &rules[i];
		StatsTid   *st;

		if (r->matched == 0 && r->errors == 0 && r->fired == 0 && r->keys_evicted == 0 &&
			r->events_evicted == 0)
			continue;
		st = hash_search(stats_tids, &r->id, HASH_FIND, NULL);
		d[0][n] = Int64GetDatum(r->id);
		d[1][n] = Int64GetDatum(r->matched);
		d[2][n] = Int64GetDatum(r->errors);
		d[3][n] = Int64GetDatum(r->fired);
		d[4][n] = Int64GetDatum(r->keys_evicted);
		d[5][n] = Int64GetDatum(r->events_evicted);
		if (st != NULL)
		{
			d[6][ntid] = PointerGetDatum(&st->tid);
			ntid++;
		}
		n++;
	}
	if (n == 0)
		return;
	for (int c = 0; c < 6; c++)
		args[c] = PointerGetDatum(construct_array(d[c], n, INT8OID, sizeof(int64), true,
												  TYPALIGN_DOUBLE));
	if (ntid > 0)
	{
		args[6] = PointerGetDatum(construct_array(d[6], ntid, TIDOID, sizeof(ItemPointerData),
												  false, TYPALIGN_SHORT));
		if (run_by_tid(&plan_counters_tid,
					   "UPDATE activity_monitor.rule_stats s "
					   "SET events_matched = s.events_matched + u.m, "
					   "    evaluation_errors = s.evaluation_errors + u.e, "
					   "    alerts_fired = s.alerts_fired + u.f, "
					   "    last_fired_at = CASE WHEN u.f > 0 THEN pg_catalog.now() ELSE s.last_fired_at END, "
					   "    keys_evicted = s.keys_evicted + u.k, "
					   "    events_evicted = s.events_evicted + u.v "
					   "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
					   "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
					   "  pg_catalog.unnest($6)) u(id, m, e, f, k, v) "
					   "WHERE s.ctid = ANY ($7) AND s.rule_id = u.id "
					   "RETURNING s.rule_id, s.ctid",
					   7, types, args, NULL) != SPI_OK_UPDATE_RETURNING)
			elog(ERROR, "could not update activity_monitor.rule_stats");
		stats_tids_note();
		if (SPI_processed == n)
			return;
		/* the others by rule id (they are not updated twice: "NOT = ANY") */
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			bool		isnull;

			d[6][i] = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull);
		}
		args[6] = PointerGetDatum(construct_array(d[6], SPI_processed, INT8OID, sizeof(int64), true,
												  TYPALIGN_DOUBLE));
	}
	else
		args[6] = PointerGetDatum(construct_empty_array(INT8OID));
	types[6] = INT8ARRAYOID;
	if (run_saved(&plan_counters,
				  "INSERT INTO activity_monitor.rule_stats AS s "
				  "  (rule_id, events_matched, evaluation_errors, alerts_fired, last_fired_at, "
				  "   keys_evicted, events_evicted) "
				  "SELECT u.id, u.m, u.e, u.f, CASE WHEN u.f > 0 THEN pg_catalog.now() END, u.k, u.v "
				  "FROM ROWS FROM (pg_catalog.unnest($1), pg_catalog.unnest($2), "
				  "  pg_catalog.unnest($3), pg_catalog.unnest($4), pg_catalog.unnest($5), "
				  "  pg_catalog.unnest($6)) u(id, m, e, f, k, v) "
				  "WHERE NOT u.id = ANY ($7) "
				  "ON CONFLICT (rule_id) DO UPDATE "
				  "  SET events_matched = s.events_matched + excluded.events_matched, "
				  "      evaluation_errors = s.evaluation_errors + excluded.evaluation_errors, "
				  "      alerts_fired = s.alerts_fired + excluded.alerts_fired, "
				  "      last_fired_at = coalesce(excluded.last_fired_at, s.last_fired_at), "
				  "      keys_evicted = s.keys_evicted + excluded.keys_evicted, "
				  "      events_evicted = s.events_evicted + excluded.events_evicted "
				  "RETURNING s.rule_id, s.ctid",
				  7, types, args, NULL) != SPI_OK_INSERT_RETURNING)
		elog(ERROR, "could not update activity_monitor.rule_stats");
	stats_tids_note();
}

/*
 * One bounded batch (see the file header): the events committed since the
 * last batch, at most max_events of them.  Sets *events_out (events
 * processed) and *fired_out (alerts fired); returns whether more events
 * wait, or more absences are due.  Runs in the caller's transaction, which must be able to write
 * (the worker's own, or that of a _process_alerts() call); an ERROR
 * leaves alert_state as it was once that transaction rolls back.
 */
bool
am_process_alerts(int max_events, int *events_out, int *fired_out)
{
	char	   *last;
	char	   *batch;
	int64		after_id;
	int64		processed;
	Datum		since;
	int			events = 0;
	int			fired = 0;
	uint64		rows;
	bool		more;
	bool		dues_left = false;
	TimestampTz last_at = DT_NOBEGIN;
	bool		isnull;
	HeapTuple	st;
	TupleDesc	sd;
	int			rc;
	int			settings_level;
	Datum		new_bound;		/* of a snapshot taken now */
	bool		bound_unknown;
	Datum		last_bound;		/* of last_snapshot */
	bool		last_bound_null;
	Datum		batch_bound;	/* of batch_snapshot */
	bool		batch_bound_null;
	TimestampTz clock;

	Assert(max_events > 0);
	batch_lxid = MyProc->lxid;
	SPI_connect();
	settings_level = engine_settings_push();

	/*
	 * Lock alert_state first, then read it and take the batch snapshot in a
	 * statement of its own: a snapshot taken before waiting for another
	 * caller's lock would be older than the last_snapshot that caller
	 * commits, and storing it would move last_snapshot backwards (the events
	 * in between processed twice).  (In a repeatable read transaction the
	 * lock fails instead when another caller got there first.)
	 */
	state_lock();

	/*
	 * The bound of a batch snapshot taken now, read before it: its horizon
	 * (seal.c, am_xact_horizon; while a transaction's start is not known,
	 * no later than the last snapshot's bound, below), a minute less: for
	 * a capture between its clock and its write (an admin event reads the
	 * clock before its transaction has an id), and for the clock stepping
	 * back that much (further back, the check below sees it).  Rounded
	 * down to its partition's start, the minute costs nothing but in the
	 * first minute of a partition.  Under repeatable read the batch
	 * snapshot is the transaction's, taken before: a transaction it saw
	 * running may have ended before the horizon is read, so the bound is
	 * unknown.
	 */
	{
		TimestampTz h = am_xact_horizon(&bound_unknown);

		if (IsolationUsesXactSnapshot())
			h = DT_NOBEGIN;
		new_bound = TimestampTzGetDatum(TIMESTAMP_NOT_FINITE(h) ? h : h - 60 * USECS_PER_SEC);
		clock = GetCurrentTimestamp();
	}
	{
		Datum		arg = PointerGetDatum(&state_tid);
		Oid			type = TIDOID;

		/* in a statement of its own, after the bound (see above) */
		rc = run_by_tid(&plan_state, "SELECT last_snapshot::text, since, batch_snapshot::text, "
					    "coalesce(batch_last_id, 0), events_processed, "
					    "pg_catalog.txid_current_snapshot()::text, last_bound, batch_bound "
					    "FROM activity_monitor.alert_state WHERE ctid = $1", 1, &type, &arg, NULL);
	}
	if (rc != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "activity_monitor.alert_state must hold one row");
	st = SPI_copytuple(SPI_tuptable->vals[0]);
	sd = CreateTupleDescCopy(SPI_tuptable->tupdesc);
	last = SPI_getvalue(st, sd, 1);
	since = SPI_getbinval(st, sd, 2, &isnull);
	batch = SPI_getvalue(st, sd, 3);
	after_id = DatumGetInt64(SPI_getbinval(st, sd, 4, &isnull));
	processed = DatumGetInt64(SPI_getbinval(st, sd, 5, &isnull));
	last_bound = SPI_getbinval(st, sd, 7, &last_bound_null);
	batch_bound = SPI_getbinval(st, sd, 8, &batch_bound_null);
	if (bound_unknown)
		new_bound = TimestampTzGetDatum(last_bound_null ? DT_NOBEGIN :
										Min(DatumGetTimestampTz(new_bound), DatumGetTimestampTz(last_bound)));
	/* the clock went back past the last bound: the events since may be dated before it */
	if (!last_bound_null && clock < DatumGetTimestampTz(last_bound) + 60 * USECS_PER_SEC)
		last_bound_null = true;

	load_rules();
	/* the windows are what the events processed so far made them, or rebuilt */
	if (!engine_valid || engine_processed != processed || engine_last_id != after_id ||
		engine_snapshot == NULL || strcmp(engine_snapshot, last) != 0)
		engine_rebuild(last, batch, after_id);
	else if (GetCurrentTimestamp() - engine_swept > 60 * USECS_PER_SEC)
		engine_sweep(GetCurrentTimestamp());
	if (GetCurrentTimestamp() - seen_pruned > SEEN_PRUNE_USECS)
	{
		bool		any_seen = false;

		for (int i = 0; i < nrules; i++)
			any_seen |= rules[i].lookback != NULL;
		if (any_seen)
			am_seen_prune_table();
		seen_pruned = GetCurrentTimestamp();
	}
	engine_valid = false;		/* until this transaction's outcome is known */
	if (batch == NULL)
	{
		batch = SPI_getvalue(st, sd, 6);
		batch_bound = new_bound;
		batch_bound_null = false;
	}

	/*
	 * Not read-only: the query must take a snapshot newer than the one
	 * txid_current_snapshot() described above, or it would miss events that
	 * the batch snapshot says are committed.
	 */
	{
		Datum		args[6];
		Oid			types[6] = {TXID_SNAPSHOTOID, TXID_SNAPSHOTOID, INT8OID, INT4OID,
		TIMESTAMPTZOID, INT8ARRAYOID};
		char		nulls[6] = {' ', ' ', ' ', ' ', ' ', ' '};
		int			work_mem_level;
		TimestampTz floor;

		args[0] = snapshot_datum(last);
		args[1] = snapshot_datum(batch);
		args[2] = Int64GetDatum(after_id);
		args[3] = Int32GetDatum(max_events);

		/*
		 * The oldest the batch's events can be: the last snapshot's bound,
		 * or, for events received from other clusters (dated at their
		 * source), the oldest the batch's receiving transactions noted in
		 * activity_monitor.received (receive.c; the sealing rounds leave
		 * the notes the engine has yet to pass).  Unknown (no bound kept
		 * yet: the first batch after the update from 0.1.0): every
		 * partition.
		 */
		args[4] = last_bound_null ? TimestampTzGetDatum(DT_NOBEGIN) : last_bound;
		/* the transactions the last snapshot saw running that have committed */
		if (run_saved(&plan_xips,
					  "SELECT pg_catalog.array_agg(x) FROM pg_catalog.txid_snapshot_xip($1) x "
					  "WHERE pg_catalog.txid_visible_in_snapshot(x, $2)",
					  2, types, args, NULL) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read a snapshot");
		args[5] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		nulls[5] = isnull ? 'n' : ' ';
		if (run_saved(&plan_received,
					  "SELECT pg_catalog.min(r.oldest) FROM activity_monitor.received r "
					  "WHERE (r.txid >= pg_catalog.txid_snapshot_xmax($1) "
					  "       AND r.txid < pg_catalog.txid_snapshot_xmax($2)) "
					  "   OR r.txid = ANY ($6)",
					  6, types, args, nulls) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read activity_monitor.received");
		{
			Datum		oldest = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

			if (!isnull && DatumGetTimestampTz(oldest) < DatumGetTimestampTz(args[4]))
				args[4] = oldest;
		}
		floor = partition_floor(DatumGetTimestampTz(args[4]));

		/*
		 * The events visible in the batch snapshot and not in the last one:
		 * those of transactions that started after the last snapshot (txid
		 * from its xmax), and those of the transactions it saw in progress
		 * (its xip list) that have committed since, looked up by txid.  Not
		 * "txid >= the last snapshot's xmin": a transaction left open keeps
		 * that xmin back, and every batch would read every event committed
		 * since it began (PgQ's batch query avoids it the same way).
		 *
		 * The two kinds are two branches of a UNION ALL (they cannot
		 * overlap: the xip list is below the last snapshot's xmax), each
		 * with a range of txids; the second only when the last snapshot saw
		 * transactions that have committed since, in its range, their ids
		 * ($6) an array the generic plan does not know.  (With the two
		 * conditions ORed, on a plan made while today's partition was
		 * small, the planner read that partition through its txid index
		 * without any condition, or through the time index on "id > $3":
		 * every event of the day at every batch, 26 ms per batch after 25 s
		 * of pgbench on a new database.  Without the range, the second
		 * branch took the time index the same way: "= ANY" of an unknown
		 * array is no cheaper to the planner than "occurred_at >= floor AND
		 * id > $3" on an empty partition.  A range of a parameter's values
		 * is, whatever the sizes.)
		 *
		 * The bound on occurred_at (the floor, above) names the partitions:
		 * it is written into the statement, whose plan keeps the
		 * partitions from there on and serves every batch until the floor
		 * moves (run_from_floor).  (On a generic plan of a parameter kept
		 * for the worker's life, as before, each batch locked every
		 * partition and looked in each one's txid index: 2.6 to 7 s a batch
		 * at 1,834 daily partitions, an update from 0.1.0 with five years
		 * of history before merges.  Planned at each batch with the
		 * parameter's value, as next, the planning cost a millisecond a
		 * batch, a quarter of the worker's CPU under pgbench.)
		 *
		 * With work_mem of BATCH_WORK_MEM: the query sorts the rows of the
		 * committed transactions by id to keep the first max_events, and
		 * 10,000 events with their "matched" documents do not fit in the
		 * default 4 MB, so the sort wrote every candidate row to a
		 * temporary file and read it back, batch after batch, while a
		 * backlog lasted (a tenth of the worker's time with 200 rules
		 * behind a 100,000-event transaction).  In memory the sort keeps
		 * only twice max_events rows.  (Only here: the rebuild's sort of a
		 * whole window's events spills, so that its memory stays bounded.)
		 */
		work_mem_level = NewGUCNestLevel();
		(void) set_config_option("work_mem", BATCH_WORK_MEM, PGC_USERSET, PGC_S_SESSION,
								 GUC_ACTION_SAVE, true, 0, false);
		if (nulls[5] == 'n')
			rc = run_from_floor(&plan_batch, &plan_batch_floor, floor,
						   "SELECT " EVENT_QUERY_COLUMNS " FROM activity_monitor.activity a "
						   "WHERE (a.matched IS NOT NULL OR a.rule_errors IS NOT NULL) "
						   "  AND a.occurred_at >= %s "
						   "  AND a.txid >= pg_catalog.txid_snapshot_xmax($1) "
						   "  AND a.txid < pg_catalog.txid_snapshot_xmax($2) "
						   "  AND pg_catalog.txid_visible_in_snapshot(a.txid, $2) "
						   "  AND a.id > $3 "
						   "ORDER BY a.id LIMIT $4",
						   5, types, args, nulls);
		else
			rc = run_from_floor(&plan_batch_xips, &plan_batch_xips_floor, floor,
						   "SELECT * FROM ("
						   " SELECT " EVENT_QUERY_COLUMNS " FROM activity_monitor.activity a "
						   " WHERE (a.matched IS NOT NULL OR a.rule_errors IS NOT NULL) "
						   "   AND a.occurred_at >= %1$s "
						   "   AND a.txid >= pg_catalog.txid_snapshot_xmax($1) "
						   "   AND a.txid < pg_catalog.txid_snapshot_xmax($2) "
						   "   AND pg_catalog.txid_visible_in_snapshot(a.txid, $2) "
						   "   AND a.id > $3 "
						   " UNION ALL "
						   " SELECT " EVENT_QUERY_COLUMNS " FROM activity_monitor.activity a "
						   " WHERE (a.matched IS NOT NULL OR a.rule_errors IS NOT NULL) "
						   "   AND a.occurred_at >= %1$s "
						   "   AND a.txid >= pg_catalog.txid_snapshot_xmin($1) "
						   "   AND a.txid < pg_catalog.txid_snapshot_xmax($1) "
						   "   AND a.txid = ANY ($6) "
						   "   AND a.id > $3) e "
						   "ORDER BY e.id LIMIT $4",
						   6, types, args, nulls);
		AtEOXact_GUC(true, work_mem_level);
		if (rc != SPI_OK_SELECT)
			elog(ERROR, "could not read activity_monitor.activity: %s", SPI_result_code_string(rc));
	}

	{
		SPITupleTable *tt = SPI_tuptable;
		uint64		n = SPI_processed;

		/*
		 * What one event's processing allocates (its matched document, the
		 * measures, the alert's arguments) is freed after it: a batch's
		 * memory is one event's, and stays in the CPU's caches.
		 */
		MemoryContext event_cxt = AllocSetContextCreate(CurrentMemoryContext,
														"activity_monitor event",
														ALLOCSET_DEFAULT_SIZES);
		MemoryContext batch_cxt = MemoryContextSwitchTo(event_cxt);

		rows = n;
		for (uint64 i = 0; i < n; i++)
		{
			EventCtx	ec;
			Datum		d;

			MemoryContextReset(event_cxt);

			ec.tup = tt->vals[i];
			ec.desc = tt->tupdesc;
			ec.id = DatumGetInt64(SPI_getbinval(ec.tup, ec.desc, 1, &isnull));
			ec.at = DatumGetTimestampTz(SPI_getbinval(ec.tup, ec.desc, 2, &isnull));
			ec.fired = 0;
			after_id = ec.id;
			last_at = ec.at;
			/* events restored from a dump (older than "since") are not alerted on */
			if (ec.at < DatumGetTimestampTz(since))
				continue;
			events++;

			d = SPI_getbinval(ec.tup, ec.desc, 10, &isnull);
			if (!isnull)
			{
				ArrayType  *errs = DatumGetArrayTypeP(d);
				Datum	   *ed;
				int			ne;

				deconstruct_array(errs, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE,
								  &ed, NULL, &ne);
				for (int j = 0; j < ne; j++)
				{
					Rule	   *r = rule_find(DatumGetInt64(ed[j]));

					if (r)
						r->errors++;
				}
			}
			d = SPI_getbinval(ec.tup, ec.desc, 9, &isnull);
			if (!isnull)
				for_each_match(DatumGetJsonbP(d), process_match, &ec);
			fired += ec.fired;
		}
		MemoryContextSwitchTo(batch_cxt);
		MemoryContextDelete(event_cxt);
	}

	more = rows == max_events;

	/*
	 * The absences whose deadline has passed, at most max_events of them.
	 * Caught up, those of the clock; behind a backlog, only those whose
	 * deadline is an hour before the last event processed (a missing step
	 * later in the backlog would have cancelled them; one older than that
	 * is as unlikely as the windows' late events, see the file header).
	 */
	{
		TimestampTz due_by = GetCurrentTimestamp();

		if (more)
			due_by = Min(due_by, last_at - IDLE_LAG_USECS);
		fired += fire_due(due_by, max_events, &dues_left);
	}
	write_counters();
	{
		Datum		args[5];
		Oid			types[5] = {TEXTOID, INT8OID, INT4OID, TIDOID, TIMESTAMPTZOID};
		char		nulls[5] = {' ', ' ', ' ', ' ', batch_bound_null ? 'n' : ' '};
		Datum		tid;

		args[0] = CStringGetTextDatum(batch);
		args[1] = Int64GetDatum(after_id);
		args[2] = Int32GetDatum(events);
		args[3] = PointerGetDatum(&state_tid);
		args[4] = batch_bound;
		if (more)
			rc = run_by_tid(&plan_more,
						    "UPDATE activity_monitor.alert_state "
						    "SET batch_snapshot = $1::txid_snapshot, batch_last_id = $2, "
						    "    batch_bound = $5, last_run_at = pg_catalog.clock_timestamp(), "
						    "    events_processed = events_processed + $3 "
						    "WHERE ctid = $4 RETURNING ctid",
						    5, types, args, nulls);
		else
			rc = run_by_tid(&plan_done,
						    "UPDATE activity_monitor.alert_state "
						    "SET last_snapshot = $1::txid_snapshot, last_bound = $5, "
						    "    batch_snapshot = NULL, batch_last_id = NULL, batch_bound = NULL, "
						    "    last_run_at = pg_catalog.clock_timestamp(), "
						    "    events_processed = events_processed + $3 "
						    "WHERE ctid = $4 RETURNING ctid",
						    5, types, args, nulls);
		if (rc != SPI_OK_UPDATE_RETURNING || SPI_processed != 1)
			elog(ERROR, "could not update activity_monitor.alert_state");
		/* the next call's, if this transaction commits (else it searches) */
		tid = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
		state_tid = *(ItemPointer) DatumGetPointer(tid);
	}

	/* what alert_state says once this commits; checked by the next call */
	engine_processed = processed + events;
	engine_last_id = more ? after_id : 0;
	/* the previous one is freed: the worker calls this for ever */
	if (engine_snapshot != NULL)
		pfree(engine_snapshot);
	engine_snapshot = MemoryContextStrdup(am_window_memory(), more ? last : batch);
	engine_valid = true;
	engine_settings_pop(settings_level);
	SPI_finish();
	batch_lxid = InvalidLocalTransactionId;

	*events_out = events;
	*fired_out = fired;
	return more || dues_left;
}

/*
 * activity_monitor._process_alerts(max_events int, OUT events int,
 * OUT fired int, OUT more boolean): one batch from SQL, for tests and by
 * hand (superuser only); the worker calls am_process_alerts directly.
 */
Datum
activity_monitor_process_alerts(PG_FUNCTION_ARGS)
{
	int32		max_events = PG_GETARG_INT32(0);
	TupleDesc	rdesc;
	Datum		result[3];
	bool		rnulls[3] = {false, false, false};
	int			events;
	int			fired;
	bool		more;

	if (get_call_result_type(fcinfo, NULL, &rdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (max_events < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be positive")));
	more = am_process_alerts(max_events, &events, &fired);
	result[0] = Int32GetDatum(events);
	result[1] = Int32GetDatum(fired);
	result[2] = BoolGetDatum(more);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(rdesc), result, rnulls)));
}

/* Define the windows' bounds; called from _PG_init. */
void
am_define_alert_gucs(void)
{
	DefineCustomIntVariable("activity_monitor.max_window",
							"Longest window (within) of an alert rule.",
							"create_rule() refuses a longer one; the worker cuts a longer "
							"window of an existing rule to this.",
							&max_window_secs, SECS_PER_DAY, 1, 366 * SECS_PER_DAY,
							PGC_SIGHUP, GUC_UNIT_S, NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.max_keys_per_rule",
							"Most group keys the windows of one alert rule keep.",
							"Beyond it the least recently active key is forgotten.",
							&max_keys_per_rule, 10000, 1, 100000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.max_events_per_window",
							"Most events one window (one rule and group key) keeps.",
							"Beyond it the window's oldest event is forgotten.",
							&max_events_per_window, 1000, 1, 10000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.max_events_per_rule",
							"Most events the windows of one alert rule keep together.",
							"Beyond it the least recently active key is forgotten.",
							&max_events_per_rule, 100000, 1, 1000000000,
							PGC_SIGHUP, 0, NULL, NULL, NULL);
}

PG_FUNCTION_INFO_V1(activity_monitor_window_limits);

/*
 * _window_limits(OUT max_window interval, OUT max_events_per_window int):
 * the longest window a rule may have, and the most events a window keeps
 * (a count or distinct threshold above it is never reached).
 */
Datum
activity_monitor_window_limits(PG_FUNCTION_ARGS)
{
	TupleDesc	desc;
	Datum		values[2];
	bool		nulls[2] = {false, false};
	Interval   *iv = palloc(sizeof(Interval));

	if (get_call_result_type(fcinfo, NULL, &desc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	*iv = *max_window_interval();
	values[0] = IntervalPGetDatum(iv);
	values[1] = Int32GetDatum(Min(max_events_per_window, max_events_per_rule));
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(desc), values, nulls)));
}
