/*-------------------------------------------------------------------------
 *
 * rules.c
 *	  Alert rule predicates, evaluated by the capture trigger.
 *
 * The rules (activity_monitor.alert_rule) are loaded once per backend into
 * CacheMemoryContext and reloaded after any change to the table: its
 * statement trigger (_rules_changed) sends a relcache invalidation that
 * every backend receives at its next transaction.  A generation counter
 * tells capture.c when its per-table list of applicable rules (by kinds and
 * tables) is stale.  A table no rule applies to pays one integer compare.
 *
 * Predicates run with jsonb_path_match(..., silent => true): a missing field
 * or a type mismatch makes a rule not match (NULL, counted as an evaluation
 * error on the event) and never raises into the platform's write.
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
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgrprotos.h"
#include "utils/inval.h"
#include "utils/jsonb.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/rel.h"

PG_FUNCTION_INFO_V1(activity_monitor_rules_changed);

/* Attribute numbers of activity_monitor.alert_rule. */
#define Anum_rule_id 1
#define Anum_rule_predicate 3
#define Anum_rule_kinds 5
#define Anum_rule_tables 6
#define Anum_rule_measure_path 10
#define Anum_rule_group_by 11
#define Anum_rule_enabled 15

struct AmRule
{
	int64		id;
	char		key[24];		/* id as text: the key in "matched" */
	Datum		predicate;		/* jsonpath */
	Datum		group_by;		/* jsonpath */
	Datum		measure_path;	/* jsonpath or 0 */
	int			nkinds;
	char	  **kinds;			/* NULL: any kind */
	int			ntables;
	Oid		   *tables;			/* NULL: any table */
};

static MemoryContext rules_cxt = NULL;
static AmRule *rules = NULL;
static int	nrules = 0;
static bool rules_valid = false;
static uint64 rules_gen = 0;
static Oid	rules_relid = InvalidOid;
static Datum empty_vars;

static void
rules_relcache_callback(Datum arg, Oid relid)
{
	if (relid == InvalidOid || relid == rules_relid)
		rules_valid = false;
}

/* Read every enabled rule into rules_cxt. */
static void
load_rules(void)
{
	Relation	rel;
	SysScanDesc scan;
	HeapTuple	tup;
	Datum	   *v;
	bool	   *n;
	int			cap = 16;
	static bool callback_done = false;

	if (!callback_done)
	{
		MemoryContext old = MemoryContextSwitchTo(TopMemoryContext);

		CacheRegisterRelcacheCallback(rules_relcache_callback, (Datum) 0);
		empty_vars = DirectFunctionCall1(jsonb_in, CStringGetDatum("{}"));
		MemoryContextSwitchTo(old);
		callback_done = true;
	}
	if (rules_cxt == NULL)
		rules_cxt = AllocSetContextCreate(CacheMemoryContext, "activity_monitor rules",
										  ALLOCSET_SMALL_SIZES);
	else
		MemoryContextReset(rules_cxt);
	rules = MemoryContextAlloc(rules_cxt, sizeof(AmRule) * cap);
	nrules = 0;

	rules_valid = true;			/* an invalidation while loading resets it */
	rules_relid = am_alert_rule_relid();
	rel = table_open(rules_relid, AccessShareLock);
	/* sized by the table: later versions add columns (0.2.0: full_payload) */
	v = palloc(sizeof(Datum) * RelationGetDescr(rel)->natts);
	n = palloc(sizeof(bool) * RelationGetDescr(rel)->natts);
	scan = systable_beginscan(rel, InvalidOid, false, NULL, 0, NULL);
	while ((tup = systable_getnext(scan)) != NULL)
	{
		AmRule	   *r;
		MemoryContext old;

		heap_deform_tuple(tup, RelationGetDescr(rel), v, n);
		if (!DatumGetBool(v[Anum_rule_enabled - 1]))
			continue;
		old = MemoryContextSwitchTo(rules_cxt);
		if (nrules == cap)
		{
			cap *= 2;
			rules = repalloc(rules, sizeof(AmRule) * cap);
		}
		r = &rules[nrules++];
		memset(r, 0, sizeof(*r));
		r->id = DatumGetInt64(v[Anum_rule_id - 1]);
		snprintf(r->key, sizeof(r->key), INT64_FORMAT, r->id);
		r->predicate = datumCopy(v[Anum_rule_predicate - 1], false, -1);
		r->group_by = datumCopy(v[Anum_rule_group_by - 1], false, -1);
		if (!n[Anum_rule_measure_path - 1])
			r->measure_path = datumCopy(v[Anum_rule_measure_path - 1], false, -1);
		if (!n[Anum_rule_kinds - 1])
		{
			Datum	   *elems;
			bool	   *enulls;

			deconstruct_array(DatumGetArrayTypeP(v[Anum_rule_kinds - 1]), TEXTOID, -1, false,
							  TYPALIGN_INT, &elems, &enulls, &r->nkinds);
			r->kinds = palloc(sizeof(char *) * Max(r->nkinds, 1));
			for (int i = 0; i < r->nkinds; i++)
				r->kinds[i] = enulls[i] ? "" : TextDatumGetCString(elems[i]);
		}
		if (!n[Anum_rule_tables - 1])
		{
			Datum	   *elems;
			bool	   *enulls;

			deconstruct_array(DatumGetArrayTypeP(v[Anum_rule_tables - 1]), REGCLASSOID,
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
	rules_gen++;
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
 * The rules that apply to events of table rootid with this kind, as an
 * array allocated in cxt (valid while the generation stays the same).
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
		bool		ok = true;

		if (r->kinds)
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

/* jsonb_path_match or jsonb_path_query_first, silent; isnull on no result. */
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

static void
push_path_value(JsonbParseState **state, const char *key, Datum doc, Datum path)
{
	JsonbValue	k;
	JsonbValue	v;
	bool		isnull = true;
	Datum		d = (Datum) 0;

	if (path != (Datum) 0)
		d = path_call(jsonb_path_query_first, doc, path, &isnull);
	k.type = jbvString;
	k.val.string.val = (char *) key;
	k.val.string.len = strlen(key);
	pushJsonbValue(state, WJB_KEY, &k);
	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, WJB_VALUE, &v);
	}
	else
	{
		Jsonb	   *jb = DatumGetJsonbP(d);

		v.type = jbvBinary;
		v.val.binary.data = &jb->root;
		v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
		pushJsonbValue(state, WJB_VALUE, &v);
	}
}

/*
 * Evaluate the rules on the event document and fill the event's "matched"
 * ({"rule id": {"k": group key, "v": measure}}) and "rule_errors" columns.
 * Returns true if any rule matched or failed (the worker has work).
 */
bool
am_rules_evaluate(AmRule **list, int n, Datum doc, Datum *values, bool *nulls)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;
	Datum	   *errors = NULL;
	int			nerrors = 0;
	int			nmatched = 0;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < n; i++)
	{
		AmRule	   *r = list[i];
		bool		isnull;
		Datum		m = path_call(jsonb_path_match, doc, r->predicate, &isnull);
		JsonbValue	k;

		if (isnull)
		{
			if (errors == NULL)
				errors = palloc(sizeof(Datum) * n);
			errors[nerrors++] = Int64GetDatum(r->id);
			continue;
		}
		if (!DatumGetBool(m))
			continue;
		nmatched++;
		k.type = jbvString;
		k.val.string.val = r->key;
		k.val.string.len = strlen(r->key);
		pushJsonbValue(&state, WJB_KEY, &k);
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		push_path_value(&state, "k", doc, r->group_by);
		push_path_value(&state, "v", doc, r->measure_path);
		pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	if (nmatched > 0)
	{
		values[AC_MATCHED] = JsonbPGetDatum(JsonbValueToJsonb(res));
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
