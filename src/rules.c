/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  The rule cache, the event document alert predicates read, and the
 *	  evaluation of the predicates by the capture trigger.
 *
 * The rules (activity_monitor.alert_rule, its columns found by name in
 * catalog.c) are loaded once per backend into CacheMemoryContext and
 * reloaded after any change to the table: its statement trigger
 * (_rules_changed) sends a relcache invalidation that every backend
 * receives at its next transaction.  This one cache serves both readers of
 * the rules: the capture trigger (capture.c), which evaluates the enabled
 * rules that apply to a table, and the worker's alert engine (alerts.c),
 * which reads every rule's window, threshold and cooldown.  A reload builds
 * a new list and replaces the old one only once complete (an error while
 * loading leaves the old list, invalid); the old one is freed at the end of
 * the transaction.  A generation counter tells capture.c when its per-table
 * list of applicable rules (by kinds and tables) is stale.  A table no rule
 * applies to pays one integer compare.
 *
 * The event document (am_event_document) is what predicates see of a
 * captured event; capture.c builds the rows' parts of it, the shape is
 * defined here, next to the rules that read it, and documented in README.
 *
 * Predicates that are comparisons of plain paths with constants, joined by
 * &&, || and !, are compiled when loaded and evaluated by predicate.c, the
 * same way, each comparison once per event however many rules share it.
 * The others run with jsonb_path_match_tz(..., silent => true): a missing
 * field or a type mismatch makes a rule not match (NULL, counted as an
 * evaluation error on the event), and datetime comparisons that need a time
 * zone use the session's instead of raising.  Silent mode does not cover
 * everything: a missing $variable, a bad .datetime() template, a regular
 * expression or a deep document under .** can still raise.  Rules are
 * therefore classified when loaded (scan_path): those made only of items
 * that cannot raise are evaluated bare, the others inside one
 * subtransaction per captured row, resumed after a rule that raised, so
 * that an evaluation never breaks the platform's write; the rule's error is
 * counted in rule_errors like any other.  _check_rule(), a BEFORE trigger on
 * alert_rule, refuses to enable a rule whose paths would raise on every
 * evaluation ($variables, datetime templates that do not parse).
 *
 * IDENTIFICATION
 *	  src/rules.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/xact.h"
#include "catalog/pg_collation.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/formatting.h"
#include "utils/guc.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/jsonpath.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(activity_monitor_rules_changed);
PG_FUNCTION_INFO_V1(activity_monitor_check_rule);

/* RuleResult.compiled of a rule evaluated by jsonb_path_match_tz. */
#define PRED_GENERIC (-2)

/*
 * Paths nested deeper than this are evaluated guarded (evaluation recurses
 * once per level) and not scanned further.
 */
#define PATH_DEPTH_LIMIT 64

/* What scan_path found in a jsonpath. */
typedef struct PathScan
{
	bool		guard;			/* some item may raise: evaluate guarded */
	bool		check;			/* validating: probe datetime templates */
	char	   *variable;		/* the first $variable, or NULL */
	char	   *template;		/* the first datetime template that fails */
	char	   *template_error; /* ... and why */
} PathScan;

/* The outcome of one rule on one event. */
typedef enum RuleOutcome
{
	RO_ERROR = 0,				/* could not be evaluated */
	RO_NO_MATCH,
	RO_MATCH
} RuleOutcome;

typedef struct RuleResult
{
	int			compiled;		/* the compiled predicate's result (1, 0, -1
								 * unknown), or PRED_GENERIC */
	RuleOutcome outcome;
	int			stepc[AM_MAX_STEPS + 1];	/* the steps' compiled results */
	int			mask;			/* a sequence's steps matched, as bits; else 0 */
	bool		knull;
	bool		vnull;
	Datum		k;				/* group key (jsonb) */
	Datum		v;				/* measure (jsonb) */
} RuleResult;

static MemoryContext rules_cxt = NULL;
static AmRule *rules = NULL;	/* in id order */
static int	nrules = 0;
static bool rules_valid = false;
static uint64 rules_gen = 0;
static Oid	rules_relid = InvalidOid;
static Datum empty_vars;

static uint64 rules_invals = 0;	/* invalidations received */

/* activity_monitor.compile_predicates: use the compiled predicates */
static bool compile_predicates = true;

/* Replaced caches, kept until the end of the transaction (see load_rules). */
static MemoryContext rules_retired = NULL;

static void
rules_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rules_relid)
	{
		rules_valid = false;
		rules_invals++;
	}
}

/* At the end of a transaction, free the caches it replaced. */
static void
rules_xact_callback(XactEvent event, void *arg)
{
	switch (event)
	{
		case XACT_EVENT_COMMIT:
		case XACT_EVENT_PARALLEL_COMMIT:
		case XACT_EVENT_ABORT:
		case XACT_EVENT_PARALLEL_ABORT:
		case XACT_EVENT_PREPARE:
			if (rules_retired != NULL)
				MemoryContextReset(rules_retired);
			break;
		default:
			break;
	}
}

/* Order of rules by id (ids are unique). */
static int
rule_cmp(const void *a, const void *b)
{
	int64		x = ((const AmRule *) a)->id;
	int64		y = ((const AmRule *) b)->id;

	return x < y ? -1 : x > y;
}

/*
 * Does this .datetime() template parse?  Template errors are raised whatever
 * the input and even in silent mode; they are caught here, in a
 * subtransaction (validation only, never on the write path).
 */
/* A .datetime() template, for am_subxact_try. */
typedef struct TemplateCall
{
	const char *tmpl;
	int			len;
} TemplateCall;

static void
template_parse_call(void *arg)
{
	TemplateCall *c = (TemplateCall *) arg;
	Oid			typid;
	int32		typmod;
	int			tz;
	bool		have_error = false;

	/* an empty input stops at the first field: only the template is read */
	(void) parse_datetime(cstring_to_text(""), cstring_to_text_with_len(c->tmpl, c->len),
						  DEFAULT_COLLATION_OID, true, &typid, &typmod, &tz,
						  &have_error);
}

static bool
template_parses(const char *tmpl, int len, char **why)
{
	TemplateCall c = {tmpl, len};
	ErrorData  *edata;

	if (am_subxact_try(template_parse_call, &c, &edata))
		return true;
	*why = pstrdup(edata->message);
	FreeErrorData(edata);
	return false;
}

/*
 * Walk a jsonpath item and what follows it, noting in ps the items whose
 * evaluation can raise even in silent mode (see the file header).  Items
 * not listed below (and later PostgreSQL versions' new ones) count as
 * raising.  Recursion stops at PATH_DEPTH_LIMIT.
 */
static void
scan_path(JsonPathItem *item, int depth, PathScan *ps)
{
	JsonPathItem cur = *item;

	for (;;)
	{
		JsonPathItem a;
		JsonPathItem b;
		JsonPathItem next;

		if (++depth > PATH_DEPTH_LIMIT)
		{
			ps->guard = true;
			return;
		}
		switch (cur.type)
		{
			case jpiAnd:
			case jpiOr:
			case jpiEqual:
			case jpiNotEqual:
			case jpiLess:
			case jpiGreater:
			case jpiLessOrEqual:
			case jpiGreaterOrEqual:
			case jpiAdd:
			case jpiSub:
			case jpiMul:
			case jpiDiv:
			case jpiMod:
			case jpiStartsWith:
				/* arithmetic errors (division by zero, overflow) are silent */
				jspGetLeftArg(&cur, &a);
				scan_path(&a, depth, ps);
				jspGetRightArg(&cur, &a);
				scan_path(&a, depth, ps);
				break;
			case jpiNot:
			case jpiIsUnknown:
			case jpiPlus:
			case jpiMinus:
			case jpiExists:
			case jpiFilter:
				jspGetArg(&cur, &a);
				scan_path(&a, depth, ps);
				break;
			case jpiIndexArray:
				for (int i = 0; i < cur.content.array.nelems; i++)
				{
					bool		range = jspGetArraySubscript(&cur, &a, &b, i);

					scan_path(&a, depth, ps);
					if (range)
						scan_path(&b, depth, ps);
				}
				break;
			case jpiLikeRegex:
				/* compiling and running a regular expression can fail */
				ps->guard = true;
				jspInitByBuffer(&a, cur.base, cur.content.like_regex.expr);
				scan_path(&a, depth, ps);
				break;
			case jpiAny:
				/* recursion as deep as the document: stack depth */
				ps->guard = true;
				break;
			case jpiVariable:
				ps->guard = true;
				if (ps->variable == NULL)
				{
					int32		len;
					char	   *name = jspGetString(&cur, &len);

					ps->variable = pnstrdup(name, len);
				}
				break;
			case jpiDatetime:
				ps->guard = true;
				if (ps->check && ps->template == NULL && cur.content.arg)
				{
					int32		len;
					char	   *tmpl;

					jspGetArg(&cur, &a);
					if (a.type != jpiString)
						break;
					tmpl = jspGetString(&a, &len);
					if (!template_parses(tmpl, len, &ps->template_error))
						ps->template = pnstrdup(tmpl, len);
				}
				break;
			case jpiNull:
			case jpiString:
			case jpiNumeric:
			case jpiBool:
			case jpiAnyArray:
			case jpiAnyKey:
			case jpiKey:
			case jpiCurrent:
			case jpiRoot:
			case jpiType:
			case jpiSize:
			case jpiAbs:
			case jpiFloor:
			case jpiCeiling:
			case jpiDouble:
			case jpiKeyValue:
			case jpiLast:
				break;
			default:
				ps->guard = true;
				break;
		}
		if (!jspGetNext(&cur, &next))
			break;
		cur = next;
	}
}

/* Scan a jsonpath datum (0 for none) into ps. */
static void
scan_path_datum(Datum path, PathScan *ps)
{
	JsonPathItem item;

	if (path == (Datum) 0)
		return;
	jspInit(&item, DatumGetJsonPathP(path));
	scan_path(&item, 0, ps);
}

/*
 * Must this rule be evaluated in a subtransaction?  Also in a database
 * whose encoding is neither UTF8 nor SQL_ASCII: there jsonpath converts
 * strings to UTF8 to compare them, and a conversion can fail.
 */
static bool
rule_needs_guard(AmRule *r)
{
	PathScan	ps = {0};

	if (GetDatabaseEncoding() != PG_UTF8 && GetDatabaseEncoding() != PG_SQL_ASCII)
		return true;
	scan_path_datum(r->predicate, &ps);
	scan_path_datum(r->group_by, &ps);
	scan_path_datum(r->measure_path, &ps);
	for (int j = 0; j < r->nsteps + r->has_missing; j++)
		scan_path_datum(r->steps[j], &ps);
	return ps.guard;
}

/* Compile a rule's predicate and steps that have the compiled shape. */
static void
compile_rule(AmPredSet *set, AmRule *r)
{
	r->pred = am_pred_compile(set, r->predicate);
	for (int j = 0; j < r->nsteps + r->has_missing; j++)
		r->step_pred[j] = am_pred_compile(set, r->steps[j]);
}

static void
finish_rule(AmRule *r)
{
	am_pred_finish(r->pred);
	for (int j = 0; j < r->nsteps + r->has_missing; j++)
		am_pred_finish(r->step_pred[j]);
}

/*
 * Read every rule (disabled ones too: the alert engine counts their
 * evaluation errors) into a new context, in id order, and make it the
 * cache only once complete.  The load can fail (a lock wait cancelled, a
 * statement timeout): the new context is then a child of the caller's,
 * freed with it, and the old cache, its generation and the lists capture.c
 * built from it stay as they were, marked invalid, so the next use loads
 * again.  An invalidation that arrives while loading leaves the cache
 * invalid: the caller loads once more.  The cache it replaces is freed at
 * the end of the transaction, not at once: a caller may still hold rules
 * of it (the alert engine holds them for a batch, and a capture trigger
 * fired by the engine's own writes could reload meanwhile).
 */
static void
load_rules(void)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Datum	   *v;
	bool	   *n;
	int			cap = 16;
	MemoryContext new_cxt;
	AmRule	   *new_rules;
	int			new_nrules = 0;
	uint64		invals;
	AttrNumber	att[RC_NUM_COLUMNS];
	static bool callback_done = false;

	if (!callback_done)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		CacheRegisterRelcacheCallback(rules_relcache_callback, (Datum) 0);
		RegisterXactCallback(rules_xact_callback, NULL);
		empty_vars = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
		rules_retired = AllocSetContextCreate(CacheMemoryContext,
											  "activity_monitor replaced rules",
											  ALLOCSET_SMALL_SIZES);
		MemoryContextSwitchTo(old);
		callback_done = true;
	}
	new_cxt = AllocSetContextCreate(CurrentMemoryContext, "activity_monitor rules",
									ALLOCSET_SMALL_SIZES);
	new_rules = MemoryContextAlloc(new_cxt, sizeof(AmRule) * cap);

	invals = rules_invals;
	rules_relid = am_catalog()->alert_rule;
	memcpy(att, am_catalog()->rule_att, sizeof(att));
	rel = table_open(rules_relid, AccessShareLock);
	/* sized by the table: later versions may add columns */
	v = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	n = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		AmRule	   *r;
		MemoryContext old;

		heap_deform_tuple(tup, RelationGetDescr(rel), v, n);
		old = MemoryContextSwitchTo(new_cxt);
		if (new_nrules == cap)
		{
			cap *= 2;
			new_rules = repalloc(new_rules, sizeof(AmRule) * cap);
		}
		r = &new_rules[new_nrules++];
		memset(r, 0, sizeof(*r));
		r->id = DatumGetInt64(v[att[RC_ID] - 1]);
		snprintf(r->key, sizeof(r->key), INT64_FORMAT, r->id);
		r->enabled = DatumGetBool(v[att[RC_ENABLED] - 1]);
		r->name = TextDatumGetCString(v[att[RC_NAME] - 1]);
		r->severity = TextDatumGetCString(v[att[RC_SEVERITY] - 1]);
		r->channel = TextDatumGetCString(v[att[RC_CHANNEL] - 1]);
		r->measure = TextDatumGetCString(v[att[RC_MEASURE] - 1])[0];
		if (!n[att[RC_WITHIN] - 1])
			r->within = DatumGetIntervalP(datumCopy(v[att[RC_WITHIN] - 1], false,
													sizeof(Interval)));
		if (!n[att[RC_THRESHOLD] - 1])
			r->threshold = DatumGetNumericCopy(v[att[RC_THRESHOLD] - 1]);
		if (!n[att[RC_COOLDOWN] - 1])
			r->cooldown = DatumGetIntervalP(datumCopy(v[att[RC_COOLDOWN] - 1], false,
													  sizeof(Interval)));
		/* detoasted once here, not at every evaluation */
		r->predicate = PointerGetDatum(PG_DETOAST_DATUM_COPY(v[att[RC_PREDICATE] - 1]));
		r->group_by = PointerGetDatum(PG_DETOAST_DATUM_COPY(v[att[RC_GROUP_BY] - 1]));
		if (!n[att[RC_MEASURE_PATH] - 1])
			r->measure_path = PointerGetDatum(PG_DETOAST_DATUM_COPY(v[att[RC_MEASURE_PATH] - 1]));
		if (att[RC_STEPS] != InvalidAttrNumber && !n[att[RC_STEPS] - 1])
		{
			Datum	   *elems;
			bool	   *enulls;
			int			ne;

			deconstruct_array(DatumGetArrayTypeP(v[att[RC_STEPS] - 1]), JSONPATHOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &ne);
			/* alert_rule's CHECK keeps it at 1 to AM_MAX_STEPS, without nulls */
			for (int j = 0; j < ne && r->nsteps < AM_MAX_STEPS; j++)
				if (!enulls[j])
					r->steps[r->nsteps++] = PointerGetDatum(PG_DETOAST_DATUM_COPY(elems[j]));
		}
		if (att[RC_MISSING] != InvalidAttrNumber && !n[att[RC_MISSING] - 1] && r->nsteps > 0)
		{
			r->steps[r->nsteps] = PointerGetDatum(PG_DETOAST_DATUM_COPY(v[att[RC_MISSING] - 1]));
			r->has_missing = true;
		}
		if (att[RC_LOOKBACK] != InvalidAttrNumber && !n[att[RC_LOOKBACK] - 1])
			r->lookback = DatumGetIntervalP(datumCopy(v[att[RC_LOOKBACK] - 1], false,
													  sizeof(Interval)));
		r->full_payload = att[RC_FULL_PAYLOAD] != InvalidAttrNumber &&
			!n[att[RC_FULL_PAYLOAD] - 1] && DatumGetBool(v[att[RC_FULL_PAYLOAD] - 1]);
		r->guarded = rule_needs_guard(r);
		if (!n[att[RC_KINDS] - 1])
		{
			Datum	   *elems;
			bool	   *enulls;

			deconstruct_array(DatumGetArrayTypeP(v[att[RC_KINDS] - 1]), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &r->nkinds);
			r->kinds = palloc(sizeof(char *) * Max(r->nkinds, 1));
			for (int i = 0; i < r->nkinds; i++)
				r->kinds[i] = enulls[i] ? "" : TextDatumGetCString(elems[i]);
		}
		if (!n[att[RC_TABLES] - 1])
		{
			Datum	   *elems;
			bool	   *enulls;

			deconstruct_array(DatumGetArrayTypeP(v[att[RC_TABLES] - 1]), REGCLASSOID,
							  sizeof(Oid), true, TYPALIGN_INT, &elems, &enulls, &r->ntables);
			r->tables = palloc(sizeof(Oid) * Max(r->ntables, 1));
			for (int i = 0; i < r->ntables; i++)
				r->tables[i] = enulls[i] ? InvalidOid : DatumGetObjectId(elems[i]);
		}
		MemoryContextSwitchTo(old);
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	pfree(v);
	pfree(n);

	qsort(new_rules, new_nrules, sizeof(AmRule), rule_cmp);

	/* the enabled rules' predicates that have the compiled shape */
	{
		AmPredSet  *set = am_pred_set_create(new_cxt);

		for (int i = 0; i < new_nrules; i++)
			if (new_rules[i].enabled)
				compile_rule(set, &new_rules[i]);
		for (int i = 0; i < new_nrules; i++)
			finish_rule(&new_rules[i]);
	}

	/* complete: the new rules replace the old ones */
	MemoryContextSetParent(new_cxt, CacheMemoryContext);
	if (rules_cxt != NULL)
		MemoryContextSetParent(rules_cxt, rules_retired);
	rules_cxt = new_cxt;
	rules = new_rules;
	nrules = new_nrules;
	rules_gen++;
	rules_valid = rules_invals == invals;
}

void
am_define_rule_gucs(void)
{
	DefineCustomBoolVariable("activity_monitor.compile_predicates",
							 "Evaluates predicates of the common shape compiled (comparisons of plain paths with constants).",
							 "Off: every predicate goes through jsonb_path_match, as in 0.1.0 (the same results, more CPU per rule).",
							 &compile_predicates, true, PGC_SUSET, 0, NULL, NULL, NULL);
}

/* The current rules generation, loading the rules if they changed. */
uint64
am_rules_generation(void)
{
	while (!rules_valid)
		load_rules();
	return rules_gen;
}

/*
 * Every rule, disabled ones included, in id order, loading them if they
 * changed: for the alert engine.  The array and the rules stay valid until
 * the end of the transaction; a reload within it may replace them.
 */
int
am_rules_all(AmRule **out)
{
	(void) am_rules_generation();
	*out = rules;
	return nrules;
}

/*
 * The enabled rules that apply to events of table rootid with this kind, as
 * an array allocated in cxt (valid while the generation stays the same).
 */
int
am_rules_applicable(Oid rootid, const char *kind, AmRule ***out, MemoryContext cxt)
{
	AmRule	  **list = NULL;
	int			n = 0;

	(void) am_rules_generation();
	for (int i = 0; i < nrules; i++)
	{
		AmRule	   *r = &rules[i];
		bool		ok = r->enabled;

		if (ok && r->kinds)
		{
			ok = false;
			for (int k = 0; k < r->nkinds && !ok; k++)
				ok = strcmp(r->kinds[k], kind) == 0;
		}
		if (ok && r->tables)
		{
			ok = false;
			for (int t = 0; t < r->ntables && !ok; t++)
				ok = r->tables[t] == rootid;
		}
		if (!ok)
			continue;
		if (list == NULL)
			list = MemoryContextAlloc(cxt, sizeof(AmRule *) * nrules);
		list[n++] = r;
	}
	*out = list;
	return n;
}

/*
 * jsonb_path_match_tz or jsonb_path_query_first_tz, silent; isnull on no
 * result.  The _tz variants compare dates with timestamps in the session's
 * time zone where the plain ones raise.
 */
static Datum
path_call(PGFunction fn, Datum doc, Datum path, bool *isnull)
{
	LOCAL_FCINFO(fcinfo, 4);
	Datum		result;

	InitFunctionCallInfoData(*fcinfo, NULL, 4, InvalidOid, NULL, NULL);
	fcinfo->args[0].value = doc;
	fcinfo->args[0].isnull = false;
	fcinfo->args[1].value = path;
	fcinfo->args[1].isnull = false;
	fcinfo->args[2].value = empty_vars;
	fcinfo->args[2].isnull = false;
	fcinfo->args[3].value = BoolGetDatum(true);
	fcinfo->args[3].isnull = false;
	result = fn(fcinfo);
	*isnull = fcinfo->isnull;
	return result;
}

/*
 * The group keys and measures one event's rules asked for, by path: rules
 * mostly share a few ($.subject_id), each then evaluated once per event.
 * Only outside subtransactions (a guarded rule's results may be rolled
 * back with its subtransaction's memory).
 */
#define PATH_MEMO_SIZE 16

typedef struct PathMemo
{
	int			n;
	Datum		path[PATH_MEMO_SIZE];
	Datum		value[PATH_MEMO_SIZE];
	bool		isnull[PATH_MEMO_SIZE];
} PathMemo;

/* jsonb_path_query_first_tz of path on doc, through the memo pm (or none). */
static Datum
path_value(PathMemo *pm, Datum doc, Datum path, bool *isnull)
{
	Datum		v;

	if (pm != NULL)
		for (int i = 0; i < pm->n; i++)
		{
			/* the rules' paths are detoasted copies: compared as bytes */
			JsonPath   *a = DatumGetJsonPathP(pm->path[i]);
			JsonPath   *b = DatumGetJsonPathP(path);

			if (a == b || (VARSIZE(a) == VARSIZE(b) && memcmp(a, b, VARSIZE(a)) == 0))
			{
				*isnull = pm->isnull[i];
				return pm->value[i];
			}
		}
	v = path_call(jsonb_path_query_first_tz, doc, path, isnull);
	if (pm != NULL && pm->n < PATH_MEMO_SIZE)
	{
		pm->path[pm->n] = path;
		pm->value[pm->n] = v;
		pm->isnull[pm->n] = *isnull;
		pm->n++;
	}
	return v;
}

/*
 * Evaluate one rule on the event document into res: its predicate, then
 * for a match its steps, group key and measure (through pm, when not
 * NULL).  The outcome is set last, so that a rule that raises midway stays
 * an error.
 */
static void
evaluate_rule(AmRule *r, Datum doc, RuleResult *res, PathMemo *pm)
{
	bool		isnull;
	Datum		m;

	res->outcome = RO_ERROR;
	if (res->compiled != PRED_GENERIC)
	{
		/* compiled (predicate.c): computed already, outside any subtransaction */
		if (res->compiled < 0)
			return;
		if (res->compiled == 0)
		{
			res->outcome = RO_NO_MATCH;
			return;
		}
	}
	else
	{
		m = path_call(jsonb_path_match_tz, doc, r->predicate, &isnull);
		if (isnull)
			return;
		if (!DatumGetBool(m))
		{
			res->outcome = RO_NO_MATCH;
			return;
		}
	}
	res->knull = res->vnull = true;
	if (r->nsteps > 0)
	{
		/* a sequence's or absence's event: which steps it matches, as bits */
		int			mask = 0;

		for (int j = 0; j < r->nsteps + r->has_missing; j++)
		{
			int			c = res->stepc[j];

			if (c == PRED_GENERIC)
			{
				m = path_call(jsonb_path_match_tz, doc, r->steps[j], &isnull);
				c = isnull ? -1 : DatumGetBool(m);
			}
			if (c < 0)
				return;			/* an error */
			if (c)
				mask |= 1 << j;
		}
		if (mask == 0)
		{
			res->outcome = RO_NO_MATCH;
			return;
		}
		res->mask = mask;		/* its "v" */
	}
	if (r->group_by != (Datum) 0)
		res->k = path_value(pm, doc, r->group_by, &res->knull);
	if (r->measure_path != (Datum) 0 && r->nsteps == 0)
		res->v = path_value(pm, doc, r->measure_path, &res->vnull);
	res->outcome = RO_MATCH;
}

/* Where evaluate_guarded is in its list, for am_subxact_try. */
typedef struct GuardedCall
{
	AmRule	  **list;
	int			n;
	Datum		doc;
	RuleResult *res;
	int			i;				/* the rule being evaluated */
} GuardedCall;

static void
evaluate_guarded_from(void *arg)
{
	GuardedCall *c = (GuardedCall *) arg;

	for (; c->i < c->n; c->i++)
		if (c->list[c->i]->guarded)
			evaluate_rule(c->list[c->i], c->doc, &c->res[c->i], NULL);
}

/*
 * Evaluate the guarded rules of list, all in one subtransaction; after a
 * rule that raised, roll it back (the rule is an error) and go on with the
 * next one in a new subtransaction.  A query cancel (statement_timeout,
 * pg_cancel_backend) is not a rule error: it is raised again.  The first
 * error of each rule is logged (server log only), the others are counted.
 */
static void
evaluate_guarded(AmRule **list, int n, Datum doc, RuleResult *res)
{
	GuardedCall c = {list, n, doc, res, 0};

	while (c.i < n)
	{
		ErrorData  *edata;
		AmRule	   *r;

		while (c.i < n && !list[c.i]->guarded)
			c.i++;
		if (c.i == n || am_subxact_try(evaluate_guarded_from, &c, &edata))
			break;
		r = list[c.i];
		res[c.i].outcome = RO_ERROR;
		if (!r->logged)
		{
			r->logged = true;
			ereport(LOG,
					(errmsg("activity_monitor: alert rule " INT64_FORMAT " could not be evaluated: %s",
							r->id, edata->message),
					 errdetail("The error is counted in the event's rule_errors and the write goes on; further errors of this rule are not logged by this session."),
					 errhidestmt(true)));
		}
		FreeErrorData(edata);
		c.i++;
	}
}

/* Push the key of an object member. */
static void
doc_key(JsonbParseState **state, const char *key)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
}

/* Push "key": s (NULL: null). */
static void
doc_string(JsonbParseState **state, const char *key, const char *s)
{
	JsonbValue	v;

	doc_key(state, key);
	if (s == NULL)
		v.type = jbvNull;
	else
	{
		v.type = jbvString;
		v.val.string.val = (char *) s;
		v.val.string.len = strlen(s);
	}
	pushJsonbValue(state, WJB_VALUE, &v);
}

/* Push "key": the text activity column c. */
static void
doc_text(JsonbParseState **state, const char *key, Datum *values, bool *nulls, int c)
{
	doc_string(state, key, nulls[c] ? NULL : TextDatumGetCString(values[c]));
}

/* The jsonb datum (0: null) as a value to push. */
static void
jsonb_value(Datum jsonb, JsonbValue *v)
{
	if (jsonb == (Datum) 0)
		v->type = jbvNull;
	else
	{
		Jsonb	   *jb = DatumGetJsonbP(jsonb);

		v->type = jbvBinary;
		v->val.binary.data = &jb->root;
		v->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	}
}

/* Push "key": the jsonb datum (0: null). */
static void
doc_jsonb(JsonbParseState **state, const char *key, Datum jsonb)
{
	JsonbValue	v;

	doc_key(state, key);
	jsonb_value(jsonb, &v);
	pushJsonbValue(state, WJB_VALUE, &v);
}

/*
 * The event document alert predicates see (see README): the event's fields
 * (the activity row's values, in ActivityColumn order), the names of the
 * changed columns, and the whole old and new rows, although the activity
 * row keeps only what changed (capture.c hands them in rows).  Built only
 * when some rule applies to the table.
 */
Datum
am_event_document(Datum *values, bool *nulls, const AmEventRows *rows)
{
	JsonbParseState *state = NULL;
	JsonbValue	v;
	char		buf[MAXDATELEN + 1];

	/*
	 * The keys in jsonb's order (shorter first, then bytewise): the object's
	 * sort, at the end, then finds them sorted at once.
	 */
	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	doc_key(&state, "id");
	v.type = jbvNumeric;
	v.val.numeric = int64_to_numeric(DatumGetInt64(values[AC_ID]));
	pushJsonbValue(&state, WJB_VALUE, &v);
	doc_jsonb(&state, "new", rows->new_row);
	doc_jsonb(&state, "old", rows->old_row);
	doc_text(&state, "kind", values, nulls, AC_KIND);
	doc_text(&state, "table", values, nulls, AC_TABLE_NAME);
	doc_text(&state, "action", values, nulls, AC_ACTION);
	if (rows->source != NULL)
		doc_string(&state, "source", rows->source);
	doc_key(&state, "changed");
	pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
	for (int i = 0; i < rows->nchanged; i++)
	{
		v.type = jbvString;
		v.val.string.val = (char *) rows->changed[i];
		v.val.string.len = strlen(rows->changed[i]);
		pushJsonbValue(&state, WJB_ELEM, &v);
	}
	pushJsonbValue(&state, WJB_END_ARRAY, NULL);
	doc_text(&state, "db_user", values, nulls, AC_DB_USER);
	doc_text(&state, "row_key", values, nulls, AC_ROW_KEY);
	doc_text(&state, "actor_id", values, nulls, AC_ACTOR_ID);
	doc_key(&state, "critical");
	v.type = jbvBool;
	v.val.boolean = DatumGetBool(values[AC_CRITICAL]);
	pushJsonbValue(&state, WJB_VALUE, &v);
	doc_text(&state, "status_to", values, nulls, AC_STATUS_TO);
	doc_text(&state, "actor_type", values, nulls, AC_ACTOR_TYPE);
	doc_text(&state, "subject_id", values, nulls, AC_SUBJECT_ID);
	doc_string(&state, "client_addr", nulls[AC_CLIENT_ADDR] ? NULL :
			   DatumGetCString(DirectFunctionCall1(inet_out, values[AC_CLIENT_ADDR])));
	JsonEncodeDateTime(buf, values[AC_OCCURRED_AT], TIMESTAMPTZOID, NULL);
	doc_string(&state, "occurred_at", buf);
	doc_text(&state, "status_from", values, nulls, AC_STATUS_FROM);
	doc_text(&state, "actor_reason", values, nulls, AC_ACTOR_REASON);
	doc_text(&state, "application_name", values, nulls, AC_APPLICATION_NAME);
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/* The names of the top-level keys of a jsonb object (an update's diff). */
static int
object_keys(Datum jsonb, const char ***out)
{
	Jsonb	   *jb = DatumGetJsonbP(jsonb);
	JsonbIterator *it;
	JsonbValue	v;
	JsonbIteratorToken tok;
	const char **keys;
	int			n = 0;

	*out = NULL;
	if (!JB_ROOT_IS_OBJECT(jb))
		return 0;
	keys = palloc(sizeof(char *) * Max(JB_ROOT_COUNT(jb), 1));
	it = JsonbIteratorInit(&jb->root);
	while ((tok = JsonbIteratorNext(&it, &v, true)) != WJB_DONE)
		if (tok == WJB_KEY)
			keys[n++] = pnstrdup(v.val.string.val, v.val.string.len);
	*out = keys;
	return n;
}

/*
 * The rows of the event document of a stored activity row (values and
 * nulls in ActivityColumn order), for an event received from another
 * cluster (receive.c: source its source) or read back from the table
 * (backtest.c): old and new as stored, for an update the changed columns
 * only, "changed" their names.  With all_changed, an insert's or a
 * delete's "changed" names the stored row's columns, as the capture
 * trigger's does (in the key order of jsonb, not the table's).
 */
void
am_stored_event_rows(Datum *values, bool *nulls, const char *source, bool all_changed,
					 AmEventRows *rows)
{
	const char *action = nulls[AC_ACTION] ? "" : TextDatumGetCString(values[AC_ACTION]);
	Datum		named = (Datum) 0;	/* the row whose columns "changed" names */

	rows->old_row = nulls[AC_OLD_VALUES] ? (Datum) 0 : values[AC_OLD_VALUES];
	rows->new_row = nulls[AC_NEW_VALUES] ? (Datum) 0 : values[AC_NEW_VALUES];
	if (strcmp(action, "update") == 0 || (all_changed && strcmp(action, "insert") == 0))
		named = rows->new_row;
	else if (all_changed && strcmp(action, "delete") == 0)
		named = rows->old_row;
	rows->nchanged = named ? object_keys(named, &rows->changed) : 0;
	if (rows->nchanged == 0)
		rows->changed = NULL;
	rows->source = source;
}

/* Are the two group keys (jsonb datums, or null) the same bytes? */
static bool
same_key(bool anull, Datum a, bool bnull, Datum b)
{
	Jsonb	   *ja,
			   *jb;

	if (anull || bnull)
		return anull && bnull;
	ja = DatumGetJsonbP(a);
	jb = DatumGetJsonbP(b);
	return VARSIZE(ja) == VARSIZE(jb) && memcmp(ja, jb, VARSIZE(ja)) == 0;
}

/*
 * The "matched" document, compact (0.2.0): {"k": K, "rule id": V, ...},
 * where K is the group key of the first rule that matched, V a rule's
 * measure when its group key is K and V is not an array, and [key, V]
 * otherwise.  (0.1.0 wrote {"rule id": {"k": key, "v": V}}: 30 to 45 bytes
 * a rule, most of the row with many rules; am_matched_entry reads both.)
 * A sequence's V is the steps the event matched, as bits.
 */
static Datum
matched_document(AmRule **list, int n, RuleResult *results)
{
	JsonbParseState *state = NULL;
	int			first = -1;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		RuleResult *res = &results[i];
		JsonbValue	k,
					v;

		if (res->outcome != RO_MATCH)
			continue;
		jsonb_value(res->knull ? (Datum) 0 : res->k, &k);
		if (res->mask != 0)
		{
			v.type = jbvNumeric;
			v.val.numeric = int64_to_numeric(res->mask);
		}
		else
			jsonb_value(res->vnull ? (Datum) 0 : res->v, &v);
		if (first < 0)
		{
			first = i;
			doc_key(&state, "k");
			pushJsonbValue(&state, WJB_VALUE, &k);
		}
		doc_key(&state, list[i]->key);
		if (same_key(res->knull, res->k, results[first].knull, results[first].k) &&
			!(v.type == jbvBinary && JsonContainerIsArray(v.val.binary.data) &&
			  !JsonContainerIsScalar(v.val.binary.data)))
			pushJsonbValue(&state, WJB_VALUE, &v);
		else
		{
			pushJsonbValue(&state, WJB_BEGIN_ARRAY, NULL);
			pushJsonbValue(&state, WJB_ELEM, &k);
			pushJsonbValue(&state, WJB_ELEM, &v);
			pushJsonbValue(&state, WJB_END_ARRAY, NULL);
		}
	}
	return JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL)));
}

/*
 * The shared group key of a "matched" document (see matched_document):
 * false for 0.1.0's format, which has none.
 */
bool
am_matched_shared_key(Jsonb *matched, JsonbValue *k)
{
	return getKeyJsonValueFromContainer(&matched->root, "k", 1, k) != NULL;
}

/*
 * One rule's entry of a "matched" document, entry (the value under its id),
 * as its group key (k) and measure (v): compact, with the document's shared
 * key (am_matched_shared_key), or 0.1.0's {"k": key, "v": measure}.
 */
void
am_matched_entry(const JsonbValue *entry, bool compact, const JsonbValue *shared,
				 JsonbValue *k, JsonbValue *v)
{
	k->type = v->type = jbvNull;
	if (!compact)
	{
		if (entry->type == jbvBinary && JsonContainerIsObject(entry->val.binary.data))
		{
			if (!getKeyJsonValueFromContainer(entry->val.binary.data, "k", 1, k))
				k->type = jbvNull;
			if (!getKeyJsonValueFromContainer(entry->val.binary.data, "v", 1, v))
				v->type = jbvNull;
		}
		return;
	}
	if (entry->type == jbvBinary && JsonContainerIsArray(entry->val.binary.data))
	{
		JsonbValue *e;

		if ((e = getIthJsonbValueFromContainer(entry->val.binary.data, 0)) != NULL)
			*k = *e;
		if ((e = getIthJsonbValueFromContainer(entry->val.binary.data, 1)) != NULL)
			*v = *e;
		return;
	}
	*k = *shared;
	*v = *entry;
}

/*
 * Evaluate the rules on the event document and fill the event's "matched"
 * (matched_document) and "rule_errors" columns.
 * Rules that cannot raise are evaluated bare, the others guarded (see the
 * file header).  Returns true if any rule matched or failed (the worker has
 * work).
 */
bool
am_rules_evaluate(AmRule **list, int n, Datum doc, Datum *values, bool *nulls)
{
	RuleResult *results = palloc0(sizeof(RuleResult) * n);
	Datum	   *errors = NULL;
	int			nerrors = 0;
	int			nmatched = 0;
	bool		guarded = false;
	AmPredMemo *memo = NULL;
	PathMemo	pm;

	/*
	 * Compiled predicates first, all of them: they cannot raise, and their
	 * memo (the event's path lookups and comparisons, shared by the rules)
	 * must live in this context, not in a guarded rule's subtransaction.
	 */
	for (int i = 0; i < n; i++)
	{
		results[i].compiled = list[i]->pred && compile_predicates ?
			am_pred_eval(list[i]->pred, doc, &memo) : PRED_GENERIC;
		/* a sequence's steps only when its predicate may match */
		for (int j = 0; j < list[i]->nsteps + list[i]->has_missing; j++)
			results[i].stepc[j] = results[i].compiled != 0 && list[i]->step_pred[j] &&
				compile_predicates ? am_pred_eval(list[i]->step_pred[j], doc, &memo) :
				PRED_GENERIC;
	}
	pm.n = 0;
	for (int i = 0; i < n; i++)
	{
		if (list[i]->guarded)
			guarded = true;
		else
			evaluate_rule(list[i], doc, &results[i], &pm);
	}
	if (guarded)
		evaluate_guarded(list, n, doc, results);

	for (int i = 0; i < n; i++)
	{
		if (results[i].outcome == RO_ERROR)
		{
			if (errors == NULL)
				errors = palloc(sizeof(Datum) * n);
			errors[nerrors++] = Int64GetDatum(list[i]->id);
		}
		else if (results[i].outcome == RO_MATCH)
			nmatched++;
	}
	if (nmatched > 0)
	{
		values[AC_MATCHED] = matched_document(list, n, results);
		nulls[AC_MATCHED] = false;
	}
	if (nerrors > 0)
	{
		values[AC_RULE_ERRORS] = PointerGetDatum(construct_array(errors, nerrors, INT8OID,
																 sizeof(int64), true, TYPALIGN_DOUBLE));
		nulls[AC_RULE_ERRORS] = false;
	}
	return nmatched > 0 || nerrors > 0;
}

/*
 * Statement trigger on alert_rule: make every backend reload its rules
 * (the invalidation is sent when this transaction commits).
 */
Datum
activity_monitor_rules_changed(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor._rules_changed() must be called as a trigger")));
	CacheInvalidateRelcache(td->tg_relation);
	return PointerGetDatum(NULL);
}

/*
 * Refuse, with a hint, a jsonpath of an enabled rule that would raise at
 * every evaluation that reaches the offending item: column names the
 * alert_rule column (for the message), rule the rule's name.
 */
static void
check_path(Datum path, const char *column, const char *rule)
{
	PathScan	ps = {0};

	ps.check = true;
	scan_path_datum(path, &ps);
	if (ps.variable)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of rule \"%s\" uses the jsonpath variable \"%s\"",
						column, rule, ps.variable),
				 errdetail("Rules are evaluated without variables: every evaluation that reaches $%s would fail.",
						   ps.variable),
				 errhint("Write the value into the path as a literal, for example $.new.amount > 1000.")));
	if (ps.template)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("%s of rule \"%s\" has an invalid datetime template \"%s\"",
						column, rule, ps.template),
				 errdetail("%s", ps.template_error),
				 errhint("Use a template that .datetime() accepts, such as \"YYYY-MM-DD HH24:MI:SS\", or .datetime() without a template.")));
}

/*
 * Make r, a rule filled by a caller rather than loaded from alert_rule
 * (test_rule(), backtest.c), ready for am_rules_evaluate: its paths
 * refused as _check_rule() refuses them (name for the messages), its
 * predicate compiled if it has the compiled shape (in cxt), its guard
 * chosen as for a loaded rule.
 */
void
am_rule_prepare(AmRule *r, const char *name, MemoryContext cxt)
{
	AmRule	   *cache;
	AmPredSet  *set;

	check_path(r->predicate, "predicate", name);
	check_path(r->group_by, "group_by", name);
	if (r->measure_path != (Datum) 0)
		check_path(r->measure_path, "measure_path", name);
	for (int j = 0; j < r->nsteps + r->has_missing; j++)
		check_path(r->steps[j], j < r->nsteps ? "a step" : "missing", name);
	(void) am_rules_all(&cache);	/* the evaluation's state, loaded once */
	r->guarded = rule_needs_guard(r);
	set = am_pred_set_create(cxt);
	compile_rule(set, r);
	finish_rule(r);
}

/*
 * BEFORE INSERT OR UPDATE row trigger on alert_rule: every row that is, or
 * becomes, an enabled rule has paths that cannot raise at every evaluation
 * (see check_path).  Disabled rules are never evaluated and are not
 * checked: a rule of 0.1.0 that is refused now was disabled by the update
 * and cannot be enabled again as it is.  The trigger sits on the table, so
 * create_rule(), set_rule_enabled() and direct writes all pass it.
 */
Datum
activity_monitor_check_rule(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	HeapTuple	tup;
	TupleDesc	desc;
	bool		isnull;
	Datum		d;
	char	   *name;
	AttrNumber	att[RC_NUM_COLUMNS];

	if (!CALLED_AS_TRIGGER(fcinfo) || !TRIGGER_FIRED_BEFORE(td->tg_event) ||
		!TRIGGER_FIRED_FOR_ROW(td->tg_event) || TRIGGER_FIRED_BY_DELETE(td->tg_event))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor._check_rule() must be called as a BEFORE INSERT OR UPDATE row trigger")));
	tup = TRIGGER_FIRED_BY_UPDATE(td->tg_event) ? td->tg_newtuple : td->tg_trigtuple;
	desc = RelationGetDescr(td->tg_relation);
	memcpy(att, am_catalog()->rule_att, sizeof(att));

	d = heap_getattr(tup, att[RC_ENABLED], desc, &isnull);
	if (isnull || !DatumGetBool(d))
		return PointerGetDatum(tup);
	d = heap_getattr(tup, att[RC_NAME], desc, &isnull);
	name = isnull ? "" : TextDatumGetCString(d);
	d = heap_getattr(tup, att[RC_PREDICATE], desc, &isnull);
	if (!isnull)
		check_path(d, "predicate", name);
	d = heap_getattr(tup, att[RC_GROUP_BY], desc, &isnull);
	if (!isnull)
		check_path(d, "group_by", name);
	d = heap_getattr(tup, att[RC_MEASURE_PATH], desc, &isnull);
	if (!isnull)
		check_path(d, "measure_path", name);
	d = att[RC_STEPS] ? heap_getattr(tup, att[RC_STEPS], desc, &isnull) : (Datum) 0;
	if (d != (Datum) 0 && !isnull)
	{
		Datum	   *elems;
		bool	   *enulls;
		int			ne;

		deconstruct_array(DatumGetArrayTypeP(d), JSONPATHOID, -1, false, TYPALIGN_INT,
						  &elems, &enulls, &ne);
		for (int j = 0; j < ne; j++)
			if (!enulls[j])
				check_path(elems[j], "a step", name);
	}
	d = att[RC_MISSING] ? heap_getattr(tup, att[RC_MISSING], desc, &isnull) : (Datum) 0;
	if (d != (Datum) 0 && !isnull)
		check_path(d, "missing", name);
	return PointerGetDatum(tup);
}
