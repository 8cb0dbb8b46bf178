/*-------------------------------------------------------------------------
 *
 * window.c
 *	  The window engine: the alert rules' windows, per rule and group key
 *	  the events inside the window, in this backend's memory.
 *
 * Pure data structures: no SPI, no catalog access, nothing else of ours.
 * alerts.c feeds the committed events in (am_window_add) and compares the
 * measures it gets back with the rule's threshold; what the engine needs of
 * a rule comes in a WindowRule (window.h).  A window keeps the events newer
 * than its newest event minus the rule's "within", sorted by (time, id),
 * with the running sum of their measures (sum rules) or how often each
 * value occurs (distinct rules); that set does not depend on the order the
 * events arrived in, so that replaying them in id order rebuilds it.  A
 * rule's windows are listed least recently active first.
 *
 * The windows are bounded by the rule's max_keys, max_events and
 * max_window_events: beyond a bound the oldest go first, the least recently
 * active key of the rule, the oldest events of a window, and am_window_add
 * says how many went.  A count window keeps only as many events as its
 * threshold: that loses nothing.  am_window_sweep forgets the keys idle for
 * more than an hour past their window.
 *
 * IDENTIFICATION
 *	  src/window.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <limits.h>

#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "window.h"

#define KEYLEN 96				/* hashed keys: longer texts are cut + hashed */
#define IDLE_MARGIN_USEC ((int64) 3600 * USECS_PER_SEC)

/* One event inside a window. */
typedef struct Entry
{
	TimestampTz at;
	int64		id;
	Numeric		num;			/* sum: the measure (NULL: none) */
	char	   *val;			/* distinct: its ValueCount's key (NULL: none) */
} Entry;

/* A rule's windows, least recently active first, and what they hold. */
typedef struct RuleWindows
{
	int64		rule_id;		/* hash key: first */
	dlist_head	lru;
	int			nkeys;
	int64		nevents;		/* entries of all its windows */
} RuleWindows;

/* One window: a rule and group key, its live events and their measure. */
struct Window
{
	char		key[KEYLEN];	/* hash key (rule id and group key): first */
	int64		rule_id;
	TimestampTz newest;
	Entry	   *ent;			/* sorted by (at, id); ent[head .. n) live */
	int			head;
	int			n;
	int			cap;
	Numeric		total;			/* sum: of the live entries' num (else NULL) */
	int64		distinct;
	RuleWindows *rw;			/* its rule's */
	dlist_node	lru;			/* in rw->lru */
};

/*
 * distinct: how often a value occurs in a window.  The key is the window key
 * and the value key, each in a field of its own of KEYLEN bytes padded with
 * zeros (keys hold no zero byte): there is no separator a value could hold.
 */
typedef struct ValueCount
{
	char		key[2 * KEYLEN];
	int64		count;
} ValueCount;

/* The windows, in a memory context of their own that lives for ever. */
static MemoryContext engine_cxt = NULL;
static HTAB *windows = NULL;
static HTAB *rule_windows = NULL;
static HTAB *value_counts = NULL;

/* the seed of the hash of long keys (drawn at the engine's first reset) */
static uint64 key_seed = 0;

/*
 * Key of a jsonb value for hashing: type-tagged text, prefixed with the rule
 * id when rule_id >= 0, cut and hashed if long.  Equal jsonb values (1 and
 * 1.0 among them) give equal keys.  A text of up to KEYLEN - 2 bytes is the
 * key; a longer one becomes exactly KEYLEN - 1 bytes (its start, '#' and a
 * hash seeded per backend), so that no short text can pose as the key of a
 * long one.
 */
static void
value_key(int64 rule_id, JsonbValue *v, char *out)
{
	char	   *s;
	size_t		len;
	char		prefix[24] = "";
	int			plen = 0;

	if (rule_id >= 0)
		plen = snprintf(prefix, sizeof(prefix), INT64_FORMAT "|", rule_id);
	memset(out, 0, KEYLEN);
	/* a short string, the usual key, is written in place */
	if (v->type == jbvString && plen + 1 + v->val.string.len < KEYLEN - 1 &&
		memchr(v->val.string.val, '\0', v->val.string.len) == NULL)
	{
		memcpy(out, prefix, plen);
		out[plen] = 's';
		memcpy(out + plen + 1, v->val.string.val, v->val.string.len);
		return;
	}
	switch (v->type)
	{
		case jbvNull:
			s = psprintf("%sz", prefix);
			break;
		case jbvString:
			s = psprintf("%ss%.*s", prefix, v->val.string.len, v->val.string.val);
			break;
		case jbvNumeric:
			s = psprintf("%sn%s", prefix, numeric_normalize(v->val.numeric));
			break;
		case jbvBool:
			s = psprintf("%s%s", prefix, v->val.boolean ? "bt" : "bf");
			break;
		default:
			s = psprintf("%sj%s", prefix, JsonbToCString(NULL, v->val.binary.data, v->val.binary.len));
			break;
	}
	len = strlen(s);
	if (len < KEYLEN - 1)
		memcpy(out, s, len);
	else
	{
		memcpy(out, s, KEYLEN - 18);
		snprintf(out + KEYLEN - 18, 18, "#%016" INT64_MODIFIER "x",
				 (uint64) hash_bytes_extended((unsigned char *) s, len, key_seed));
	}
}

/* A measure as numeric: numbers and numeric strings, about 1,000 digits at most. */
Numeric
am_window_measure_num(JsonbValue *v)
{
	if (v->type == jbvNumeric)
		return VARSIZE_ANY(v->val.numeric) <= 512 ? v->val.numeric : NULL;
	if (v->type == jbvString && v->val.string.len > 0 && v->val.string.len <= 998)
	{
		const char *p = v->val.string.val;
		const char *end = p + v->val.string.len;
		bool		digits = false;

		if (*p == '-')
			p++;
		while (p < end && isdigit((unsigned char) *p))
			p++, digits = true;
		if (digits && p < end && *p == '.')
		{
			digits = false;
			for (p++; p < end && isdigit((unsigned char) *p); p++)
				digits = true;
		}
		if (digits && p == end)
			return DatumGetNumeric(DirectFunctionCall3(numeric_in,
													   CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len)),
													   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
	}
	return NULL;
}

/* Numeric arithmetic, in the caller's memory. */
static Numeric
num_add(Numeric a, Numeric b, bool subtract)
{
	return DatumGetNumeric(DirectFunctionCall2(subtract ? numeric_sub : numeric_add,
											   NumericGetDatum(a), NumericGetDatum(b)));
}

static bool
num_ge(Numeric a, Numeric b)
{
	return DatumGetBool(DirectFunctionCall2(numeric_ge, NumericGetDatum(a), NumericGetDatum(b)));
}

static Numeric
num_int(int64 i)
{
	return int64_to_numeric(i);
}

/*
 * A copy of n in the engine's memory.  Only what a window keeps is
 * allocated there, computed elsewhere (arithmetic leaves temporaries): the
 * engine lives as long as the worker.
 */
static Numeric
num_keep(Numeric n)
{
	MemoryContext old = MemoryContextSwitchTo(engine_cxt);
	Numeric		copy = DatumGetNumeric(datumCopy(NumericGetDatum(n), false, -1));

	MemoryContextSwitchTo(old);
	return copy;
}

/* Make the window's total t (computed in the caller's memory). */
static void
window_set_total(Window *w, Numeric t)
{
	Numeric		keep = num_keep(t);

	pfree(w->total);
	w->total = keep;
}

/* Forget every window; the first call creates the engine's memory. */
void
am_window_reset(void)
{
	HASHCTL		ctl;

	if (engine_cxt == NULL)
	{
		engine_cxt = AllocSetContextCreate(TopMemoryContext, "activity_monitor alert windows",
										   ALLOCSET_DEFAULT_SIZES);
		/* unknown to writers: they cannot make two long values collide */
		if (!pg_strong_random(&key_seed, sizeof(key_seed)))
			key_seed = (uint64) GetCurrentTimestamp() ^ (uint64) MyProcPid;
	}
	MemoryContextReset(engine_cxt);
	ctl.keysize = KEYLEN;
	ctl.entrysize = sizeof(Window);
	ctl.hcxt = engine_cxt;
	windows = hash_create("activity_monitor windows", 1024, &ctl,
						  HASH_ELEM | HASH_STRINGS | HASH_CONTEXT);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(RuleWindows);
	rule_windows = hash_create("activity_monitor rule windows", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = 2 * KEYLEN;
	ctl.entrysize = sizeof(ValueCount);
	value_counts = hash_create("activity_monitor distinct values", 1024, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
}

/*
 * The engine's memory, for what the caller keeps as long as the windows: it
 * is freed at the next am_window_reset().  Valid after the first one.
 */
MemoryContext
am_window_memory(void)
{
	return engine_cxt;
}

/*
 * Drop a window's oldest entries: those at or before cutoff, then more
 * while more than keep remain.  Returns how many went for the second
 * reason (before their time).
 */
static int
window_trim(Window *w, TimestampTz cutoff, int keep)
{
	int			early = 0;

	while (w->head < w->n &&
		   (w->ent[w->head].at <= cutoff || w->n - w->head > keep))
	{
		Entry	   *e = &w->ent[w->head++];

		if (e->at > cutoff)
			early++;
		w->rw->nevents--;
		if (e->num)
		{
			window_set_total(w, num_add(w->total, e->num, true));
			pfree(e->num);
		}
		if (e->val)
		{
			ValueCount *vc = hash_search(value_counts, e->val, HASH_FIND, NULL);

			if (vc && --vc->count == 0)
			{
				hash_search(value_counts, e->val, HASH_REMOVE, NULL);
				w->distinct--;
			}
		}
	}
	return early;
}

/*
 * Fit a window's array to its live entries plus one more: they move to its
 * start, and it doubles when full and halves when at most a quarter of it
 * is used (at least 2 entries: most keys of a flood hold one event), so
 * that it never holds much more than its bound or its live entries.
 */
static void
window_fit(Window *w)
{
	int			live = w->n - w->head;
	int			cap = w->cap;

	if (live + 1 > cap)
		cap = cap ? cap * 2 : 2;
	else if (cap > 2 && live + 1 <= cap / 4)
		cap /= 2;
	if (w->head > 0 && (cap != w->cap || w->n == w->cap || w->head >= w->n / 2))
	{
		memmove(w->ent, w->ent + w->head, sizeof(Entry) * live);
		w->n = live;
		w->head = 0;
	}
	if (cap == w->cap)
		return;
	w->ent = w->ent ? repalloc(w->ent, sizeof(Entry) * cap) :
		MemoryContextAlloc(engine_cxt, sizeof(Entry) * cap);
	w->cap = cap;
}

/* Forget a window: its entries (their values counted no more), its key. */
static void
window_drop(Window *w)
{
	RuleWindows *rw = w->rw;

	window_trim(w, DT_NOEND, 0);
	if (w->ent)
		pfree(w->ent);
	if (w->total)
		pfree(w->total);
	dlist_delete(&w->lru);
	if (--rw->nkeys == 0)
		hash_search(rule_windows, &rw->rule_id, HASH_REMOVE, NULL);
	hash_search(windows, w->key, HASH_REMOVE, NULL);
}

/*
 * Evict the least recently active keys of w's rule r (never w) while the
 * rule holds more keys or events than its bounds; returns how many.
 */
static int
rule_evict_keys(const WindowRule *r, Window *w)
{
	RuleWindows *rw = w->rw;
	int			evicted = 0;

	while (rw->nkeys > r->max_keys || rw->nevents > r->max_events)
	{
		Window	   *old = dlist_head_element(Window, lru, &rw->lru);

		if (old == w)
			break;
		window_drop(old);
		evicted++;
	}
	return evicted;
}

/* The rule's windows (a new, empty entry if it has none). */
static RuleWindows *
rule_windows_get(int64 rule_id)
{
	bool		found;
	RuleWindows *rw = hash_search(rule_windows, &rule_id, HASH_ENTER, &found);

	if (!found)
	{
		dlist_init(&rw->lru);
		rw->nkeys = 0;
		rw->nevents = 0;
	}
	return rw;
}

/* The window's measure, in the caller's memory. */
static Numeric
window_measure(const WindowRule *r, Window *w)
{
	switch (r->measure)
	{
		case 'c':
			return num_int(w->n - w->head);
		case 's':
			return DatumGetNumeric(datumCopy(NumericGetDatum(w->total), false, -1));
		default:
			return num_int(w->distinct);
	}
}

/*
 * The start of a window whose newest event is at newest: newest minus
 * within.  A window of hours, minutes and seconds is a plain subtraction
 * (what timestamptz_mi_interval does for it, called per event otherwise);
 * days and months go through it (a day is not 24 hours across a DST change).
 */
static TimestampTz
window_start(TimestampTz newest, Interval *within)
{
	if (within->month == 0 && within->day == 0 && !TIMESTAMP_NOT_FINITE(newest) &&
		within->time >= 0 && newest - within->time >= MIN_TIMESTAMP)
		return newest - within->time;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_mi_interval,
												   TimestampTzGetDatum(newest),
												   IntervalPGetDatum(within)));
}

/*
 * Add one event (time at, id, measure v) to the window of rule r and group
 * key k.  Returns false if the event is already out of the window (older
 * than the newest event minus "within").  Otherwise sets *wp to the window
 * and *val and *before to the measure with this event and just before it
 * came.  The bounds apply (see the header); *evicted says what they cost.
 */
bool
am_window_add(const WindowRule *r, JsonbValue *k, TimestampTz at, int64 id,
			  JsonbValue *v, Window **wp, Numeric *val, Numeric *before,
			  WindowEvictions *evicted)
{
	char		key[KEYLEN];	/* rule id and group key */
	Window	   *w;
	bool		found;
	TimestampTz cutoff;
	Entry		e;
	int			pos;
	int			keep;
	Numeric		num = NULL;
	char		vkey[KEYLEN];
	char		vcount_key[2 * KEYLEN]; /* window key, value key */
	bool		counted = false;
	int			keys_evicted = 0;
	int			events_evicted;

	/* what the event brings, computed outside the engine's memory */
	value_key(r->id, k, key);
	if (r->measure == 's' && v != NULL)
		num = am_window_measure_num(v);
	if (r->measure == 'd' && v != NULL && v->type != jbvNull)
	{
		value_key(-1, v, vkey);
		memset(vcount_key, 0, KEYLEN);
		strlcpy(vcount_key, key, KEYLEN);
		memcpy(vcount_key + KEYLEN, vkey, KEYLEN);
		counted = true;
	}

	w = hash_search(windows, key, HASH_ENTER, &found);
	if (!found)
	{
		w->rule_id = r->id;
		w->newest = at;
		w->ent = NULL;
		w->head = w->n = w->cap = 0;
		w->total = r->measure == 's' ? num_keep(num_int(0)) : NULL;
		w->distinct = 0;
		w->rw = rule_windows_get(r->id);
		dlist_push_tail(&w->rw->lru, &w->lru);
		w->rw->nkeys++;
		keys_evicted = rule_evict_keys(r, w);
	}
	else
		dlist_move_tail(&w->rw->lru, &w->lru);
	*wp = w;
	if (at > w->newest)
		w->newest = at;
	cutoff = window_start(w->newest, r->within);
	if (at <= cutoff)
	{
		evicted->keys = keys_evicted;
		evicted->events = 0;
		return false;
	}
	window_trim(w, cutoff, INT_MAX);
	*before = window_measure(r, w);

	e.at = at;
	e.id = id;
	e.num = NULL;
	e.val = NULL;
	if (num)
	{
		e.num = num_keep(num);
		window_set_total(w, num_add(w->total, e.num, false));
	}
	if (counted)
	{
		ValueCount *vc = hash_search(value_counts, vcount_key, HASH_ENTER, &found);

		if (!found)
		{
			vc->count = 0;
			w->distinct++;
		}
		vc->count++;
		e.val = vc->key;		/* entries of a hash table never move */
	}

	/* insert keeping (at, id) order: late events are rare, search from the end */
	window_fit(w);
	pos = w->n;
	while (pos > w->head && (w->ent[pos - 1].at > at ||
							 (w->ent[pos - 1].at == at && w->ent[pos - 1].id > id)))
	{
		w->ent[pos] = w->ent[pos - 1];
		pos--;
	}
	w->ent[pos] = e;
	w->n++;
	w->rw->nevents++;

	/*
	 * A count window needs no more events than its threshold: the count
	 * crosses it exactly as if it kept them all (and it lists them all when
	 * it does).  Then the bounds: of the window, of the rule.
	 */
	if (r->measure == 'c' && num_ge(num_int(w->n - w->head - 1), r->threshold))
		window_trim(w, cutoff, w->n - w->head - 1);
	keep = Min(r->max_window_events, r->max_events);
	events_evicted = window_trim(w, cutoff, keep);
	keys_evicted += rule_evict_keys(r, w);
	window_fit(w);
	evicted->keys = keys_evicted;
	evicted->events = events_evicted;
	*val = window_measure(r, w);
	return true;
}

/*
 * Forget keys idle for more than an hour past their window, and every
 * window of a rule not among rules (the windowed rules, in any order).
 */
void
am_window_sweep(const WindowRule *rules, int nrules, TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	Window	   *w;

	hash_seq_init(&seq, windows);
	while ((w = hash_seq_search(&seq)) != NULL)
	{
		const WindowRule *r = NULL;
		bool		drop;

		for (int i = 0; i < nrules; i++)
			if (rules[i].id == w->rule_id)
				r = &rules[i];
		if (r == NULL)
			drop = true;
		else
		{
			TimestampTz end = DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
																	  TimestampTzGetDatum(w->newest),
																	  IntervalPGetDatum(r->within)));

			drop = end + IDLE_MARGIN_USEC < now;
		}
		if (drop)
			window_drop(w);
	}
}

/* qsort's comparison of int64 values. */
static int
cmp_int64(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y;
}

/* A window's event ids, in id order, as bigint[] in the caller's memory. */
ArrayType *
am_window_ids(Window *w)
{
	int			n = w->n - w->head;
	int64	   *ids = palloc(sizeof(int64) * n);
	Datum	   *d = palloc(sizeof(Datum) * n);

	for (int i = 0; i < n; i++)
		ids[i] = w->ent[w->head + i].id;
	qsort(ids, n, sizeof(int64), cmp_int64);
	for (int i = 0; i < n; i++)
		d[i] = Int64GetDatum(ids[i]);
	return construct_array(d, n, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE);
}
