/*-------------------------------------------------------------------------
 *
 * predicate.c
 *	  Compiled alert predicates: the common shape of a rule's predicate,
 *	  comparisons of a plain path with a constant joined by &&, || and !,
 *	  evaluated without the jsonpath executor, each path looked up and each
 *	  comparison made once per event however many rules name it.
 *
 * A rule book of hundreds of rules mostly repeats a few paths and a few
 * tests ($.new.status == "completed") with its own thresholds.  When the
 * rules are loaded (rules.c), each predicate that has that shape is
 * compiled into a tree over interned comparisons (path, operator,
 * constant) that share interned paths; one set of them serves every rule
 * of the cache.  An event then evaluates a rule by walking its tree, and a
 * comparison, or a path lookup, another rule already made for this event is
 * read from the event's memo.  Operands of && are ordered by how many rules
 * share them, so that the shared test that fails (the common case) ends
 * most rules at a memo read.  Anything else (filters, methods, arithmetic,
 * like_regex, exists, strict mode, variables, paths with wildcards or
 * subscripts, string ordering outside UTF8 and SQL_ASCII databases) keeps
 * the generic evaluation, jsonb_path_match_tz (rules.c).
 *
 * The semantics are jsonpath's in lax mode, as PostgreSQL 15 implements
 * them (jsonpath_exec.c), and a test (test/pgtap/predicates.sql) compares
 * both on thousands of random predicates and documents:
 *	- a path step on an object reads the member (none: the empty sequence);
 *	  on an array it reads the member of each element that is an object
 *	  (lax unwrapping, one level); on a scalar it yields nothing;
 *	- the comparison's left sequence has its arrays unwrapped one level;
 *	  it is true if some item compares true, else unknown if some item was
 *	  not comparable (non-null items of different types, or containers),
 *	  else false (an empty sequence is false);
 *	- null compared with a non-null item is false, except != which is true;
 *	  strings compare by bytes (UTF8 and SQL_ASCII: code point order),
 *	  numbers as numeric, booleans with false < true;
 *	- &&, || and ! are three-valued (unknown: the rule is an evaluation
 *	  error, as jsonb_path_match's NULL is).
 *
 * IDENTIFICATION
 *	  src/predicate.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/fmgrprotos.h"
#include "utils/jsonb.h"
#include "utils/jsonpath.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

PG_FUNCTION_INFO_V1(activity_monitor_predicate_plan);
PG_FUNCTION_INFO_V1(activity_monitor_predicate_match);

/* Deeper predicates than this are left to the generic evaluation. */
#define PRED_DEPTH_LIMIT 32

/* Three-valued results; in a memo, 0 means not computed yet. */
#define PV_FALSE	1
#define PV_TRUE		2
#define PV_UNKNOWN	3

/* A path: $ followed by member accessors only. */
typedef struct PredPath
{
	int			nkeys;
	char	  **keys;
	int		   *lens;
} PredPath;

/* A comparison of a path's items with a constant. */
typedef struct PredCmp
{
	int			path;			/* index into the set's paths */
	JsonPathItemType op;		/* jpiEqual ... jpiGreaterOrEqual, path on the left */
	JsonbValue	constant;		/* jbvNull, jbvBool, jbvNumeric or jbvString */
	int			uses;			/* rules naming it (orders && operands) */
} PredCmp;

typedef enum PredKind
{
	PN_CMP,
	PN_AND,
	PN_OR,
	PN_NOT,
	PN_CONST					/* true or false (a sequence rule's predicate) */
} PredKind;

/* A node of a compiled predicate. */
struct AmPred
{
	PredKind	kind;
	int			cmp;			/* PN_CMP: index into the set's comparisons;
								 * PN_CONST: PV_TRUE or PV_FALSE */
	int			nargs;			/* PN_AND, PN_OR: operands; PN_NOT: 1 */
	AmPred	  **args;
	AmPredSet  *set;
};

/* The interned paths and comparisons of the compiled predicates of a cache. */
struct AmPredSet
{
	MemoryContext cxt;
	int			npaths;
	int			maxpaths;
	PredPath   *paths;
	int			ncmps;
	int			maxcmps;
	PredCmp    *cmps;
};

/* One path's items in one event. */
typedef struct PathItems
{
	bool		done;
	int			n;
	JsonbValue *items;
} PathItems;

/* What an event has computed of a set. */
struct AmPredMemo
{
	AmPredSet  *set;
	MemoryContext cxt;			/* where lookups are kept (see am_pred_eval) */
	JsonbValue	root;
	PathItems  *paths;
	uint8	   *cmps;
};

AmPredSet *
am_pred_set_create(MemoryContext cxt)
{
	AmPredSet  *set = MemoryContextAllocZero(cxt, sizeof(AmPredSet));

	set->cxt = cxt;
	return set;
}

/* Is item a plain path ($ then member accessors)?  Fill keys if so. */
static bool
plain_path(JsonPathItem *item, PredPath *path)
{
	JsonPathItem cur = *item;
	JsonPathItem next;
	int			n = 0;

	if (cur.type != jpiRoot)
		return false;
	path->nkeys = 0;
	path->keys = palloc(sizeof(char *) * PRED_DEPTH_LIMIT);
	path->lens = palloc(sizeof(int) * PRED_DEPTH_LIMIT);
	while (jspGetNext(&cur, &next))
	{
		int32		len;

		if (next.type != jpiKey || n == PRED_DEPTH_LIMIT)
			return false;
		path->keys[n] = jspGetString(&next, &len);
		path->lens[n] = len;
		n++;
		cur = next;
	}
	path->nkeys = n;
	return true;
}

/* A jsonpath literal as a comparison constant, if it is one. */
static bool
literal(JsonPathItem *item, JsonbValue *v)
{
	switch (item->type)
	{
		case jpiNull:
			v->type = jbvNull;
			return true;
		case jpiBool:
			v->type = jbvBool;
			v->val.boolean = jspGetBool(item);
			return true;
		case jpiNumeric:
			v->type = jbvNumeric;
			v->val.numeric = jspGetNumeric(item);
			return true;
		case jpiString:
			{
				int32		len;

				v->type = jbvString;
				v->val.string.val = jspGetString(item, &len);
				v->val.string.len = len;
				return true;
			}
		default:
			return false;
	}
}

static bool
same_constant(const JsonbValue *a, const JsonbValue *b)
{
	if (a->type != b->type)
		return false;
	switch (a->type)
	{
		case jbvNull:
			return true;
		case jbvBool:
			return a->val.boolean == b->val.boolean;
		case jbvNumeric:
			/* 1.0 and 1 compare equal and give the same results */
			return DatumGetInt32(DirectFunctionCall2(numeric_cmp,
													 NumericGetDatum(a->val.numeric),
													 NumericGetDatum(b->val.numeric))) == 0;
		case jbvString:
			return a->val.string.len == b->val.string.len &&
				memcmp(a->val.string.val, b->val.string.val, a->val.string.len) == 0;
		default:
			return false;
	}
}

/* The index of path in set, added (copied into the set's context) if new. */
static int
intern_path(AmPredSet *set, PredPath *path)
{
	PredPath   *p;
	MemoryContext old;

	for (int i = 0; i < set->npaths; i++)
	{
		PredPath   *q = &set->paths[i];
		bool		same = q->nkeys == path->nkeys;

		for (int k = 0; same && k < q->nkeys; k++)
			same = q->lens[k] == path->lens[k] &&
				memcmp(q->keys[k], path->keys[k], q->lens[k]) == 0;
		if (same)
			return i;
	}
	old = MemoryContextSwitchTo(set->cxt);
	if (set->npaths == set->maxpaths)
	{
		set->maxpaths = Max(16, set->maxpaths * 2);
		set->paths = set->paths ? repalloc(set->paths, sizeof(PredPath) * set->maxpaths)
			: palloc(sizeof(PredPath) * set->maxpaths);
	}
	p = &set->paths[set->npaths];
	p->nkeys = path->nkeys;
	p->keys = palloc(sizeof(char *) * Max(path->nkeys, 1));
	p->lens = palloc(sizeof(int) * Max(path->nkeys, 1));
	for (int k = 0; k < path->nkeys; k++)
	{
		p->keys[k] = pnstrdup(path->keys[k], path->lens[k]);
		p->lens[k] = path->lens[k];
	}
	MemoryContextSwitchTo(old);
	return set->npaths++;
}

/* The index of the comparison in set, added (copied) if new. */
static int
intern_cmp(AmPredSet *set, int path, JsonPathItemType op, JsonbValue *constant)
{
	PredCmp    *c;
	MemoryContext old;

	for (int i = 0; i < set->ncmps; i++)
	{
		c = &set->cmps[i];
		if (c->path == path && c->op == op && same_constant(&c->constant, constant))
		{
			c->uses++;
			return i;
		}
	}
	old = MemoryContextSwitchTo(set->cxt);
	if (set->ncmps == set->maxcmps)
	{
		set->maxcmps = Max(16, set->maxcmps * 2);
		set->cmps = set->cmps ? repalloc(set->cmps, sizeof(PredCmp) * set->maxcmps)
			: palloc(sizeof(PredCmp) * set->maxcmps);
	}
	c = &set->cmps[set->ncmps];
	c->path = path;
	c->op = op;
	c->uses = 1;
	c->constant = *constant;
	if (constant->type == jbvNumeric)
		c->constant.val.numeric = DatumGetNumericCopy(NumericGetDatum(constant->val.numeric));
	else if (constant->type == jbvString)
		c->constant.val.string.val = pnstrdup(constant->val.string.val, constant->val.string.len);
	MemoryContextSwitchTo(old);
	return set->ncmps++;
}

/* The operator with its operands swapped: 1 < $.a is $.a > 1. */
static JsonPathItemType
swapped(JsonPathItemType op)
{
	switch (op)
	{
		case jpiLess:
			return jpiGreater;
		case jpiGreater:
			return jpiLess;
		case jpiLessOrEqual:
			return jpiGreaterOrEqual;
		case jpiGreaterOrEqual:
			return jpiLessOrEqual;
		default:
			return op;
	}
}

/*
 * Compile item (and nothing after it: a boolean item has no next) into a
 * node, or return NULL if it has not the compiled shape.  Nodes are built
 * in the current context; comparisons and paths are interned in set.
 */
static AmPred *
compile_item(AmPredSet *set, JsonPathItem *item, int depth, bool ordered_strings)
{
	AmPred	   *node;
	JsonPathItem a;
	JsonPathItem b;

	if (depth > PRED_DEPTH_LIMIT || jspHasNext(item))
		return NULL;
	node = palloc0(sizeof(AmPred));
	node->set = set;
	switch (item->type)
	{
		case jpiAnd:
		case jpiOr:
			{
				AmPred	   *l;
				AmPred	   *r;
				PredKind	kind = item->type == jpiAnd ? PN_AND : PN_OR;

				jspGetLeftArg(item, &a);
				jspGetRightArg(item, &b);
				if ((l = compile_item(set, &a, depth + 1, ordered_strings)) == NULL ||
					(r = compile_item(set, &b, depth + 1, ordered_strings)) == NULL)
					return NULL;
				/* flatten a && (b && c) into one node of three operands */
				node->kind = kind;
				node->args = palloc(sizeof(AmPred *) *
									((l->kind == kind ? l->nargs : 1) + (r->kind == kind ? r->nargs : 1)));
				if (l->kind == kind)
					for (int i = 0; i < l->nargs; i++)
						node->args[node->nargs++] = l->args[i];
				else
					node->args[node->nargs++] = l;
				if (r->kind == kind)
					for (int i = 0; i < r->nargs; i++)
						node->args[node->nargs++] = r->args[i];
				else
					node->args[node->nargs++] = r;
				return node;
			}
		case jpiNot:
			jspGetArg(item, &a);
			node->kind = PN_NOT;
			node->nargs = 1;
			node->args = palloc(sizeof(AmPred *));
			if ((node->args[0] = compile_item(set, &a, depth + 1, ordered_strings)) == NULL)
				return NULL;
			return node;
		case jpiEqual:
		case jpiNotEqual:
		case jpiLess:
		case jpiGreater:
		case jpiLessOrEqual:
		case jpiGreaterOrEqual:
			{
				PredPath	path;
				JsonbValue	constant;
				JsonPathItemType op = item->type;

				jspGetLeftArg(item, &a);
				jspGetRightArg(item, &b);
				if (plain_path(&a, &path) && literal(&b, &constant))
					 /* $.a OP c */ ;
				else if (plain_path(&b, &path) && literal(&a, &constant))
					op = swapped(op);
				else
					return NULL;
				/* outside UTF8 and SQL_ASCII, ordering strings converts them */
				if (constant.type == jbvString && op != jpiEqual && !ordered_strings)
					return NULL;
				node->kind = PN_CMP;
				node->cmp = intern_cmp(set, intern_path(set, &path), op, &constant);
				return node;
			}
		case jpiBool:
			node->kind = PN_CONST;
			node->cmp = jspGetBool(item) ? PV_TRUE : PV_FALSE;
			return node;
		default:
			return NULL;
	}
}

/*
 * Compile predicate (a jsonpath datum) into set; NULL if it does not have
 * the compiled shape (see the file header), the generic evaluation then
 * applies.  The nodes are allocated in the set's context.  A predicate that
 * is not compiled may still have interned some of its comparisons: they
 * only count in the ordering.
 */
AmPred *
am_pred_compile(AmPredSet *set, Datum predicate)
{
	JsonPath   *jp = DatumGetJsonPathP(predicate);
	JsonPathItem item;
	MemoryContext old;
	AmPred	   *node;
	int			enc = GetDatabaseEncoding();

	if (!(jp->header & JSONPATH_LAX))
		return NULL;
	jspInit(&item, jp);
	old = MemoryContextSwitchTo(set->cxt);
	node = compile_item(set, &item, 0, enc == PG_UTF8 || enc == PG_SQL_ASCII);
	MemoryContextSwitchTo(old);
	return node;
}

/* Order of && and || operands: the most shared comparison first. */
static int
uses_of(AmPred *p)
{
	return p->kind == PN_CMP ? p->set->cmps[p->cmp].uses : 0;
}

static int
operand_cmp(const void *a, const void *b)
{
	int			x = uses_of(*(AmPred *const *) a);
	int			y = uses_of(*(AmPred *const *) b);

	return y - x;
}

/*
 * Once every rule of the set is compiled: order the operands of each
 * && and || by how many rules share them (three-valued && and || are
 * commutative, and their results do not depend on the order; only the work
 * done does).
 */
void
am_pred_finish(AmPred *p)
{
	if (p == NULL || p->kind == PN_CMP || p->kind == PN_CONST)
		return;
	for (int i = 0; i < p->nargs; i++)
		am_pred_finish(p->args[i]);
	if (p->nargs > 1)
		qsort(p->args, p->nargs, sizeof(AmPred *), operand_cmp);
}

/* A new, empty memo for one event document (jsonb) and set. */
static AmPredMemo *
pred_memo(AmPredSet *set, Datum doc)
{
	AmPredMemo *m = palloc(sizeof(AmPredMemo));
	Jsonb	   *jb = DatumGetJsonbP(doc);

	m->set = set;
	m->cxt = CurrentMemoryContext;
	m->root.type = jbvBinary;
	m->root.val.binary.data = &jb->root;
	m->root.val.binary.len = VARSIZE(jb) - VARHDRSZ;
	m->paths = palloc0(sizeof(PathItems) * Max(set->npaths, 1));
	m->cmps = palloc0(sizeof(uint8) * Max(set->ncmps, 1));
	return m;
}

static void
items_append(PathItems *pi, int *cap, JsonbValue *v)
{
	if (pi->n == *cap)
	{
		*cap *= 2;
		pi->items = repalloc(pi->items, sizeof(JsonbValue) * *cap);
	}
	pi->items[pi->n++] = *v;
}

static bool
is_container(const JsonbValue *v, bool array)
{
	return v->type == jbvBinary &&
		(array ? JsonContainerIsArray(v->val.binary.data) && !JsonContainerIsScalar(v->val.binary.data)
		 : JsonContainerIsObject(v->val.binary.data));
}

/*
 * The items of path from step k on, starting at v: a member accessor on an
 * object reads the member; on an array (when unwrap) it is applied to each
 * element, without unwrapping nested arrays; on anything else it yields
 * nothing (lax mode ignores structural errors).  At the end, arrays are
 * unwrapped one level (the comparison's auto-unwrapping).
 */
static void
walk(PredPath *path, int k, JsonbValue *v, bool unwrap, PathItems *pi, int *cap)
{
	check_stack_depth();
	if (k == path->nkeys)
	{
		if (is_container(v, true))
		{
			JsonbContainer *jc = v->val.binary.data;
			uint32		n = JsonContainerSize(jc);

			for (uint32 i = 0; i < n; i++)
			{
				JsonbValue *e = getIthJsonbValueFromContainer(jc, i);

				items_append(pi, cap, e);
			}
		}
		else
			items_append(pi, cap, v);
		return;
	}
	if (is_container(v, false))
	{
		JsonbValue *member;

		member = getKeyJsonValueFromContainer(v->val.binary.data, path->keys[k],
											  path->lens[k], NULL);
		if (member != NULL)
			walk(path, k + 1, member, true, pi, cap);
	}
	else if (unwrap && is_container(v, true))
	{
		JsonbContainer *jc = v->val.binary.data;
		uint32		n = JsonContainerSize(jc);

		for (uint32 i = 0; i < n; i++)
			walk(path, k, getIthJsonbValueFromContainer(jc, i), false, pi, cap);
	}
}

static PathItems *
path_items(AmPredMemo *m, int path)
{
	PathItems  *pi = &m->paths[path];

	if (!pi->done)
	{
		int			cap = 4;
		MemoryContext old = MemoryContextSwitchTo(m->cxt);

		pi->items = palloc(sizeof(JsonbValue) * cap);
		walk(&m->set->paths[path], 0, &m->root, true, pi, &cap);
		pi->done = true;
		MemoryContextSwitchTo(old);
	}
	return pi;
}

/* One item against the constant: jsonpath's compareItems. */
static int
compare_item(JsonPathItemType op, const JsonbValue *item, const JsonbValue *c)
{
	int			cmp;
	bool		res;

	if (item->type != c->type)
	{
		if (item->type == jbvNull || c->type == jbvNull)
			return op == jpiNotEqual ? PV_TRUE : PV_FALSE;
		return PV_UNKNOWN;
	}
	switch (c->type)
	{
		case jbvNull:
			cmp = 0;
			break;
		case jbvBool:
			cmp = item->val.boolean == c->val.boolean ? 0 : item->val.boolean ? 1 : -1;
			break;
		case jbvNumeric:
			cmp = DatumGetInt32(DirectFunctionCall2(numeric_cmp,
													NumericGetDatum(item->val.numeric),
													NumericGetDatum(c->val.numeric)));
			break;
		case jbvString:
			{
				int			len = Min(item->val.string.len, c->val.string.len);

				cmp = memcmp(item->val.string.val, c->val.string.val, len);
				if (cmp == 0)
					cmp = item->val.string.len < c->val.string.len ? -1 :
						item->val.string.len > c->val.string.len ? 1 : 0;
				break;
			}
		default:
			return PV_UNKNOWN;
	}
	switch (op)
	{
		case jpiEqual:
			res = cmp == 0;
			break;
		case jpiNotEqual:
			res = cmp != 0;
			break;
		case jpiLess:
			res = cmp < 0;
			break;
		case jpiGreater:
			res = cmp > 0;
			break;
		case jpiLessOrEqual:
			res = cmp <= 0;
			break;
		default:
			res = cmp >= 0;
			break;
	}
	return res ? PV_TRUE : PV_FALSE;
}

static int
eval_cmp(AmPredMemo *m, int i)
{
	if (m->cmps[i] == 0)
	{
		PredCmp    *c = &m->set->cmps[i];
		PathItems  *pi = path_items(m, c->path);
		int			res = PV_FALSE;

		for (int k = 0; k < pi->n && res != PV_TRUE; k++)
		{
			int			r = compare_item(c->op, &pi->items[k], &c->constant);

			if (r == PV_TRUE || (r == PV_UNKNOWN && res == PV_FALSE))
				res = r;
		}
		m->cmps[i] = res;
	}
	return m->cmps[i];
}

static int
eval_node(AmPred *p, AmPredMemo *m)
{
	int			res;

	switch (p->kind)
	{
		case PN_CMP:
			return eval_cmp(m, p->cmp);
		case PN_AND:
			res = PV_TRUE;
			for (int i = 0; i < p->nargs && res != PV_FALSE; i++)
			{
				int			r = eval_node(p->args[i], m);

				if (r != PV_TRUE)
					res = r == PV_FALSE ? PV_FALSE : PV_UNKNOWN;
			}
			return res;
		case PN_OR:
			res = PV_FALSE;
			for (int i = 0; i < p->nargs && res != PV_TRUE; i++)
			{
				int			r = eval_node(p->args[i], m);

				if (r != PV_FALSE)
					res = r == PV_TRUE ? PV_TRUE : PV_UNKNOWN;
			}
			return res;
		case PN_NOT:
			res = eval_node(p->args[0], m);
			return res == PV_UNKNOWN ? PV_UNKNOWN : res == PV_TRUE ? PV_FALSE : PV_TRUE;
		case PN_CONST:
			return p->cmp;
	}
	return PV_UNKNOWN;
}

/*
 * Evaluate a compiled predicate on the event document doc: 1 true, 0
 * false, -1 unknown (jsonb_path_match's NULL).  *memo holds what the
 * event's earlier evaluations computed: NULL before the first, made then in
 * the current memory context, which must outlive the event's evaluations
 * (the caller's, not a subtransaction's that a guarded rule may roll back).
 */
int
am_pred_eval(AmPred *p, Datum doc, AmPredMemo **memo)
{
	int			res;

	if (*memo == NULL || (*memo)->set != p->set)
		*memo = pred_memo(p->set, doc);
	res = eval_node(p, *memo);
	return res == PV_TRUE ? 1 : res == PV_FALSE ? 0 : -1;
}

/*
 * activity_monitor._predicate_plan(predicate jsonpath): "compiled" or
 * "generic", how capture evaluates this predicate (the rules view).
 */
Datum
activity_monitor_predicate_plan(PG_FUNCTION_ARGS)
{
	AmPredSet  *set = am_pred_set_create(CurrentMemoryContext);

	PG_RETURN_TEXT_P(cstring_to_text(am_pred_compile(set, PG_GETARG_DATUM(0)) ? "compiled" : "generic"));
}

/*
 * activity_monitor._predicate_match(predicate jsonpath, doc jsonb): the
 * compiled evaluation of predicate on doc (NULL: unknown), for the test
 * that compares it with jsonb_path_match; an error for a predicate that is
 * not compiled.
 */
Datum
activity_monitor_predicate_match(PG_FUNCTION_ARGS)
{
	AmPredSet  *set = am_pred_set_create(CurrentMemoryContext);
	AmPred	   *p = am_pred_compile(set, PG_GETARG_DATUM(0));
	AmPredMemo *memo = NULL;
	int			res;

	if (p == NULL)
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("predicate is not compiled"),
				 errdetail("Only comparisons of a plain path with a constant, joined by &&, || and !, in lax mode, are.")));
	if (JB_ROOT_IS_SCALAR(PG_GETARG_JSONB_P(1)) || !JB_ROOT_IS_OBJECT(PG_GETARG_JSONB_P(1)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("the document must be a JSON object"),
				 errdetail("Event documents are objects.")));
	am_pred_finish(p);
	res = am_pred_eval(p, PG_GETARG_DATUM(1), &memo);
	if (res < 0)
		PG_RETURN_NULL();
	PG_RETURN_BOOL(res == 1);
}
