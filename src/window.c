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
#include "common/int.h"
#include "lib/ilist.h"
#include "miscadmin.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/timestamp.h"
#include "window.h"

#define IDLE_MARGIN_USEC ((int64) 3600 * USECS_PER_SEC)

/* One event inside a window. */
typedef struct Entry
{
	TimestampTz at;
	int64		id;
	int64		inum;			/* sum: the measure, an integer (else 0) */
	union
	{
		Numeric		num;		/* sum: the measure, another number (or NULL) */
		struct ValueCount *val; /* distinct: its value's count (NULL: none) */
	}			m;
} Entry;

/* A rule's windows, least recently active first, and what they hold. */
typedef struct RuleWindows
{
	int64		rule_id;		/* hash key: first */
	dlist_head	lru;
	int			nkeys;
	int64		nevents;		/* entries of all its windows */
} RuleWindows;

/* A window's hash key: its rule and the two hashes of its group key. */
typedef struct WindowId
{
	int64		rule_id;
	uint64		h1;
	uint64		h2;
} WindowId;

/*
 * One window: a rule and group key, its live events and their measure.
 * oldest spares a trim the read of the oldest entry, a cache miss most
 * often (the windows of all the rules are far more than the caches hold).
 */
struct Window
{
	WindowId	id;				/* hash key: first */
	TimestampTz newest;
	TimestampTz oldest;			/* ent[head].at when there are live entries */
	Entry	   *ent;			/* sorted by (at, id); ent[head .. n) live */
	int			head;
	int			n;
	int			cap;
	char		measure;		/* its rule's, when it came: 'c', 's', 'd' */
	int			nnum;			/* sum: live entries with a numeric measure */
	int64		itotal;			/* sum: of the live entries' measures, ... */
	Numeric		ntotal;			/* ... plus this (NULL: nothing more) */
	int64		distinct;
	RuleWindows *rw;			/* its rule's */
	dlist_node	lru;			/* in rw->lru */
};

/*
 * distinct: how often a value occurs in a window.  The key is the window
 * (entries of a hash table never move; a window's counts go before it
 * does) and the two hashes of the value.
 */
typedef struct ValueCountId
{
	Window	   *w;
	uint64		v1;
	uint64		v2;
} ValueCountId;

typedef struct ValueCount
{
	ValueCountId id;			/* hash key: first */
	int64		count;
} ValueCount;

/* The windows, in a memory context of their own that lives for ever. */
static MemoryContext engine_cxt = NULL;
static HTAB *windows = NULL;
static HTAB *rule_windows = NULL;
static HTAB *value_counts = NULL;

/* the seed of the group keys' and values' hashes (drawn at first use) */
static uint64 key_seed = 0;
static bool key_seed_drawn = false;

/*
 * Two 64-bit hashes of a JSON value, seeded with a secret drawn per
 * backend and with the value's type: a string's bytes as they are, any
 * other value's text (numbers normalized, so 1 and 1.0 hash alike).  The
 * keys and values of the windows here, of sequence.c and of seen.c are
 * these hashes: 128 bits nobody who writes events can aim at, as they
 * do not know the seed.
 */
void
am_jsonb_value_hash(JsonbValue *v, uint64 *h1, uint64 *h2)
{
	const char *p;
	size_t		len;
	uint64		seed;

	if (!key_seed_drawn)
	{
		if (!pg_strong_random(&key_seed, sizeof(key_seed)))
			key_seed = (uint64) GetCurrentTimestamp() ^ (uint64) MyProcPid;
		key_seed_drawn = true;
	}
	seed = key_seed ^ ((uint64) v->type << 8);
	switch (v->type)
	{
		case jbvNull:
			p = "";
			break;
		case jbvString:
			p = v->val.string.val;
			len = v->val.string.len;
			*h1 = hash_bytes_extended((const unsigned char *) p, len, seed + 1);
			*h2 = hash_bytes_extended((const unsigned char *) p, len, seed + 2);
			return;
		case jbvNumeric:
			p = numeric_normalize(v->val.numeric);
			break;
		case jbvBool:
			p = v->val.boolean ? "t" : "f";
			break;
		default:
			p = JsonbToCString(NULL, v->val.binary.data, v->val.binary.len);
			break;
	}
	len = strlen(p);
	*h1 = hash_bytes_extended((const unsigned char *) p, len, seed + 1);
	*h2 = hash_bytes_extended((const unsigned char *) p, len, seed + 2);
}

/*
 * dynahash's hash and match functions for keys made of 64-bit words that
 * are hashes already (and a rule id or pointer): the engine's tables.
 * Cheaper than hashing and comparing the key's bytes.
 */
uint32
am_words_hash(const void *key, Size keysize)
{
	const uint64 *w = (const uint64 *) key;
	uint64		h = 0;

	for (Size i = 0; i < keysize / sizeof(uint64); i++)
		h = hash_combine64(h, w[i]);
	return (uint32) (h ^ (h >> 32));
}

int
am_words_match(const void *key1, const void *key2, Size keysize)
{
	const uint64 *a = (const uint64 *) key1;
	const uint64 *b = (const uint64 *) key2;

	for (Size i = 0; i < keysize / sizeof(uint64); i++)
		if (a[i] != b[i])
			return 1;
	return 0;
}

/*
 * Is s (len bytes) a number as a measure may be written in a string: an
 * optional minus, digits, and optionally a point and digits?  *integer
 * says there is no fraction.
 */
static bool
numeric_text(const char *s, int len, bool *integer)
{
	const char *p = s;
	const char *end = s + len;
	bool		digits = false;

	if (p < end && *p == '-')
		p++;
	while (p < end && isdigit((unsigned char) *p))
		p++, digits = true;
	*integer = p == end;
	if (digits && p < end && *p == '.')
	{
		digits = false;
		for (p++; p < end && isdigit((unsigned char) *p); p++)
			digits = true;
	}
	return digits && p == end;
}

/* A measure as numeric: numbers and numeric strings, about 1,000 digits at most. */
Numeric
am_window_measure_num(JsonbValue *v)
{
	bool		integer;

	if (v->type == jbvNumeric)
		return VARSIZE_ANY(v->val.numeric) <= 512 ? v->val.numeric : NULL;
	if (v->type == jbvString && v->val.string.len <= 998 &&
		numeric_text(v->val.string.val, v->val.string.len, &integer))
		return DatumGetNumeric(DirectFunctionCall3(numeric_in,
												   CStringGetDatum(pnstrdup(v->val.string.val, v->val.string.len)),
												   ObjectIdGetDatum(InvalidOid), Int32GetDatum(-1)));
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

/*
 * A sum's measure v: an integer (true, in *i: a numeric string of at most
 * 18 characters, or a JSON number in int4's range, as most amounts are),
 * or another number (*n), or none (*n NULL).  Integers are added as such:
 * a window of amounts in whole units does no numeric arithmetic.
 */
static bool
measure_int(JsonbValue *v, int64 *i, Numeric *n)
{
	bool		err = false;
	bool		integer;

	*n = NULL;
	if (v->type == jbvString && v->val.string.len <= 18 &&
		numeric_text(v->val.string.val, v->val.string.len, &integer) && integer)
	{
		/* at most 18 characters of digits: the integer, without numeric_in */
		const char *p = v->val.string.val;
		const char *end = p + v->val.string.len;
		bool		neg = *p == '-';
		int64		x = 0;

		for (p += neg; p < end; p++)
			x = x * 10 + (*p - '0');
		*i = neg ? -x : x;
		return true;
	}
	/* a number: an integer in int4's range (most amounts), else numeric */
	*n = am_window_measure_num(v);
	if (*n == NULL || numeric_is_nan(*n) || numeric_is_inf(*n) ||
		DatumGetInt32(DirectFunctionCall1(numeric_scale, NumericGetDatum(*n))) != 0)
		return false;
	*i = numeric_int4_opt_error(*n, &err);
	if (err)
		return false;
	*n = NULL;
	return true;
}

/*
 * Add to (or subtract from) a sum window's total an entry's measure, the
 * integer i or the number n.  An int64 overflow moves the integer part
 * into the numeric one: the total stays exact.
 */
static void
total_add(Window *w, int64 i, Numeric n, bool subtract)
{
	int64		r;
	Numeric		t;

	if (n == NULL && !(subtract ? pg_sub_s64_overflow(w->itotal, i, &r) :
					   pg_add_s64_overflow(w->itotal, i, &r)))
	{
		w->itotal = r;
		return;
	}
	t = int64_to_numeric(w->itotal);
	if (w->ntotal)
		t = num_add(w->ntotal, t, false);
	t = num_add(t, n ? n : int64_to_numeric(i), subtract);
	if (w->ntotal)
		pfree(w->ntotal);
	w->ntotal = num_keep(t);
	w->itotal = 0;
}

/*
 * The threshold as integer measures meet it (window.h), made once per rule:
 * "an integer m reaches t" is "m >= ceil(t)".
 */
WindowThreshold
am_window_threshold(Numeric threshold)
{
	WindowThreshold t = {0, 0};

	if (numeric_is_nan(threshold) || !num_ge(int64_to_numeric(PG_INT64_MAX), threshold))
		t.range = 1;			/* NaN sorts above every number */
	else if (!num_ge(threshold, int64_to_numeric(PG_INT64_MIN)))
		t.range = -1;			/* below every int64 */
	else
		t.ceil = DatumGetInt64(DirectFunctionCall1(numeric_int8,
												   DirectFunctionCall1(numeric_ceil,
																	   NumericGetDatum(threshold))));
	return t;
}

/* Does the measure m reach rule r's threshold? */
bool
am_window_reached(const WindowRule *r, const WindowMeasure *m)
{
	if (m->n != NULL)
		return num_ge(am_window_numeric(m), r->threshold);
	return r->thr.range < 0 || (r->thr.range == 0 && m->i >= r->thr.ceil);
}

/* The measure m as a numeric, in the caller's memory. */
Numeric
am_window_numeric(const WindowMeasure *m)
{
	if (m->n == NULL)
		return int64_to_numeric(m->i);
	return m->i == 0 ? m->n : num_add(m->n, int64_to_numeric(m->i), false);
}

/* Forget every window; the first call creates the engine's memory. */
void
am_window_reset(void)
{
	HASHCTL		ctl;

	if (engine_cxt == NULL)
		engine_cxt = AllocSetContextCreate(TopMemoryContext, "activity_monitor alert windows",
										   ALLOCSET_DEFAULT_SIZES);
	MemoryContextReset(engine_cxt);
	ctl.keysize = sizeof(WindowId);
	ctl.entrysize = sizeof(Window);
	ctl.hash = am_words_hash;
	ctl.match = am_words_match;
	ctl.hcxt = engine_cxt;
	windows = hash_create("activity_monitor windows", 1024, &ctl,
						  HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(RuleWindows);
	rule_windows = hash_create("activity_monitor rule windows", 64, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	ctl.keysize = sizeof(ValueCountId);
	ctl.entrysize = sizeof(ValueCount);
	value_counts = hash_create("activity_monitor distinct values", 1024, &ctl,
							   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
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

	while (w->head < w->n && (w->oldest <= cutoff || w->n - w->head > keep))
	{
		Entry	   *e = &w->ent[w->head++];

		if (w->head < w->n)
			w->oldest = w->ent[w->head].at;

		if (e->at > cutoff)
			early++;
		w->rw->nevents--;
		if (w->measure == 's')
		{
			total_add(w, e->inum, e->m.num, true);
			if (e->m.num)
			{
				pfree(e->m.num);
				w->nnum--;
			}
		}
		else if (e->m.val && --e->m.val->count == 0)
		{
			hash_search(value_counts, &e->m.val->id, HASH_REMOVE, NULL);
			w->distinct--;
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

/*
 * Forget a window: its entries (their values counted no more, numeric
 * measures freed: a count window, or a sum of integers, frees its array
 * without reading it), its key.  No measure is kept up to date on the way
 * out (window_trim would subtract each entry from the total, for a window
 * of a thousand evicted per event once a rule is at its bounds).
 */
static void
window_drop(Window *w)
{
	RuleWindows *rw = w->rw;

	for (int i = w->head; i < w->n && (w->measure == 'd' || w->nnum > 0); i++)
	{
		Entry	   *e = &w->ent[i];

		if (w->measure == 's')
		{
			if (e->m.num)
				pfree(e->m.num);
		}
		else if (e->m.val && --e->m.val->count == 0)
			hash_search(value_counts, &e->m.val->id, HASH_REMOVE, NULL);
	}
	rw->nevents -= w->n - w->head;
	if (w->ent)
		pfree(w->ent);
	if (w->ntotal)
		pfree(w->ntotal);
	dlist_delete(&w->lru);
	if (--rw->nkeys == 0)
		hash_search(rule_windows, &rw->rule_id, HASH_REMOVE, NULL);
	hash_search(windows, &w->id, HASH_REMOVE, NULL);
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

/* The window's measure (a numeric part in the caller's memory). */
static void
window_measure(Window *w, WindowMeasure *m)
{
	m->n = NULL;
	switch (w->measure)
	{
		case 'c':
			m->i = w->n - w->head;
			break;
		case 's':
			m->i = w->itotal;
			if (w->ntotal)
				m->n = DatumGetNumeric(datumCopy(NumericGetDatum(w->ntotal), false, -1));
			break;
		default:
			m->i = w->distinct;
			break;
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
 * came (their numeric parts in the caller's memory).  The bounds apply
 * (see the header); *evicted says what they cost.
 */
bool
am_window_add(const WindowRule *r, JsonbValue *k, TimestampTz at, int64 id,
			  JsonbValue *v, Window **wp, WindowMeasure *val, WindowMeasure *before,
			  WindowEvictions *evicted)
{
	WindowId	key;
	Window	   *w;
	bool		found;
	TimestampTz cutoff;
	Entry		e;
	int			pos;
	int			keep;
	Numeric		num = NULL;
	int64		inum = 0;
	ValueCountId vid;
	WindowMeasure kept;
	bool		counted = false;
	int			keys_evicted = 0;
	int			events_evicted;

	/* what the event brings, computed outside the engine's memory */
	memset(&key, 0, sizeof(key));
	key.rule_id = r->id;
	am_jsonb_value_hash(k, &key.h1, &key.h2);
	if (r->measure == 's' && v != NULL && !measure_int(v, &inum, &num))
		inum = 0;
	if (r->measure == 'd' && v != NULL && v->type != jbvNull)
	{
		memset(&vid, 0, sizeof(vid));
		am_jsonb_value_hash(v, &vid.v1, &vid.v2);
		counted = true;
	}

	w = hash_search(windows, &key, HASH_ENTER, &found);
	if (found && w->measure != r->measure)
	{
		/* the rule's measure changed (an UPDATE of alert_rule): start anew */
		window_drop(w);
		w = hash_search(windows, &key, HASH_ENTER, &found);
	}
	if (!found)
	{
		w->newest = at;
		w->ent = NULL;
		w->head = w->n = w->cap = 0;
		w->measure = r->measure;
		w->nnum = 0;
		w->itotal = 0;
		w->ntotal = NULL;
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
	window_measure(w, before);

	e.at = at;
	e.id = id;
	e.inum = 0;
	e.m.num = NULL;
	if (w->measure == 's')
	{
		e.inum = inum;
		e.m.num = num ? num_keep(num) : NULL;
		w->nnum += num != NULL;
		total_add(w, inum, e.m.num, false);
	}
	else if (counted && w->measure == 'd')
	{
		ValueCount *vc;

		vid.w = w;
		vc = hash_search(value_counts, &vid, HASH_ENTER, &found);
		if (!found)
		{
			vc->count = 0;
			w->distinct++;
		}
		vc->count++;
		e.m.val = vc;			/* entries of a hash table never move */
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
	if (pos == w->head)
		w->oldest = at;
	w->rw->nevents++;

	/*
	 * A count window needs no more events than its threshold: the count
	 * crosses it exactly as if it kept them all (and it lists them all when
	 * it does).  Then the bounds: of the window, of the rule.
	 */
	kept.i = w->n - w->head - 1;
	kept.n = NULL;
	if (w->measure == 'c' && am_window_reached(r, &kept))
		window_trim(w, cutoff, w->n - w->head - 1);
	keep = Min(r->max_window_events, r->max_events);
	events_evicted = window_trim(w, cutoff, keep);
	keys_evicted += rule_evict_keys(r, w);
	window_fit(w);
	evicted->keys = keys_evicted;
	evicted->events = events_evicted;
	window_measure(w, val);
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
			if (rules[i].id == w->id.rule_id)
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
