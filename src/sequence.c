/*-------------------------------------------------------------------------
 *
 * sequence.c
 *	  The state of sequence and absence rules: per rule and group key, the
 *	  recent events that matched a step, and the absences waiting for
 *	  their deadline.
 *
 * A sequence rule fires when, among the processed events of one group key,
 * events matching its steps 1, 2, ..., n occurred in that order (by
 * occurred_at, then id) with the last at most "within" after the first; the
 * events of a sequence that fired (or that a cooldown suppressed) are
 * consumed: none serves another sequence.  The order is the events' time,
 * not their commit order: a step committed late (a long transaction) takes
 * its place among the others when it is processed, and completes a
 * sequence if it is the piece that was missing.  After each event no
 * complete sequence is left, so one found after adding an event includes
 * it; the search (sequence_find) takes, for each first step in turn, the
 * earliest next steps, which finds a sequence within "within" whenever
 * there is one.
 *
 * An absence rule is a sequence (often of one step) followed by a missing
 * step: once its steps are complete it waits until the first step's time
 * plus "within"; an event matching the missing step, later than the last
 * step and not after the deadline, cancels it; the deadline passing fires
 * it (the caller asks am_seq_due, on its own clock).  Events matching the
 * missing step are kept among the key's events, so that an absence
 * completed late (its steps committed after the missing event) is
 * cancelled at once.
 *
 * The state is a function of the processed events and of the alerts fired:
 * the caller rebuilds it by replaying the events in id order after telling
 * am_seq_consumed the events of the alerts already fired; a replay fires
 * nothing, and consumes what it completes.  (Replayed in id order rather
 * than commit order, a key's events could pair differently than they did
 * live; only alerts not fired yet can change, and only for keys with
 * overlapping sequences.)
 *
 * The bounds are a window rule's: at most max_keys group keys per rule
 * (beyond, the least recently active key goes, its waiting absences with
 * it), at most max_window_events events per key (beyond, the oldest) and
 * max_events per rule, waiting absences counted; what is evicted is
 * counted by the caller in rule_stats.
 *
 * IDENTIFICATION
 *	  src/sequence.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "catalog/pg_type.h"
#include "common/hashfn.h"
#include "lib/ilist.h"
#include "lib/pairingheap.h"
#include "utils/builtins.h"
#include "utils/hsearch.h"
#include "utils/memutils.h"
#include "utils/numeric.h"
#include "utils/timestamp.h"
#include "detect.h"

#define IDLE_MARGIN_USEC ((int64) 3600 * USECS_PER_SEC)

/* A group key: two 64-bit hashes of its value (window.h). */
typedef struct SeqGroupId
{
	uint64		h1;
	uint64		h2;
} SeqGroupId;

/* An event that matched some steps (bits) of a rule. */
typedef struct SeqEvent
{
	TimestampTz at;
	int64		id;
	int			mask;
} SeqEvent;

typedef struct SeqRuleState SeqRuleState;
typedef struct SeqKey SeqKey;

/* A rule that has a key of a group, and its key. */
typedef struct SeqSlot
{
	int64		rule_id;
	SeqKey	   *key;
} SeqSlot;

/*
 * A group key's value and the rules' keys of it: the rules that group by
 * the same thing (the account, most often) find their keys of an event's
 * value with one look-up.
 */
typedef struct SeqGroup
{
	SeqGroupId	id;				/* hash key: first */
	char	   *text;			/* the key as ->> renders it, made when an absence
								 * waits (am_seq_due); NULL before, or JSON null */
	int			n;
	int			cap;
	SeqSlot    *slots;
} SeqGroup;

/*
 * One rule and group key.  What every event of the key reads comes first,
 * together in as few cache lines as can be: the keys of all the rules are
 * far more than the CPU's caches hold, and each line read is a miss.
 */
struct SeqKey
{
	dlist_node	lru;			/* in rs->lru */
	TimestampTz newest;
	TimestampTz oldest;			/* ev[0].at when n > 0: a trim reads no event */
	SeqEvent   *ev;				/* sorted by (at, id) */
	int			n;
	int			cap;
	SeqRuleState *rs;
	int			nwaiting;
	int			nstep[AM_MAX_STEPS + 1];	/* events matching each step */
	dlist_head	waiting;		/* its absences (Waiting.key_node) */
	SeqGroup   *group;
	int64		rule_id;
};

/* A rule's keys, least recently active first. */
struct SeqRuleState
{
	int64		rule_id;		/* hash key */
	dlist_head	lru;
	int			nkeys;
	int64		nevents;		/* events and waiting absences' steps */
	dlist_head	queue;			/* its absences in deadline order (Waiting.node) */
};

/*
 * An absence waiting for its deadline: in its rule's queue, or, when it
 * came late (its deadline before the queue's last), in the late heap.
 */
typedef struct Waiting
{
	bool		late;
	dlist_node	node;			/* in the rule's queue */
	pairingheap_node heap;		/* in late */
	dlist_node	key_node;
	SeqKey	   *key;
	TimestampTz last_at;
	TimestampTz deadline;
	int64		last_id;
	int			n;
	int64		ids[FLEXIBLE_ARRAY_MEMBER];	/* n of them */
} Waiting;

/* A consumed event, told by am_seq_consumed before a replay. */
typedef struct Consumed
{
	int64		rule_id;
	int64		event_id;
} Consumed;

static MemoryContext seq_cxt = NULL;
static HTAB *groups = NULL;
static HTAB *rule_states = NULL;
static HTAB *consumed = NULL;
static pairingheap *late = NULL;

/* The rule states last used, by rule id modulo its size (one look-up less). */
#define RS_CACHE 64
static SeqRuleState *rs_cache[RS_CACHE];

/* The groups last used, by their hash (one look-up per event and value). */
#define GROUP_MEMO 16
static SeqGroup *group_memo[GROUP_MEMO];

/* Earliest deadline first (pairingheap puts the "largest" first). */
static int
deadline_cmp(const pairingheap_node *a, const pairingheap_node *b, void *arg)
{
	const Waiting *wa = pairingheap_const_container(Waiting, heap, a);
	const Waiting *wb = pairingheap_const_container(Waiting, heap, b);

	if (wa->deadline < wb->deadline)
		return 1;
	if (wa->deadline > wb->deadline)
		return -1;
	return 0;
}

/* t + iv (a plain addition for hours, minutes and seconds). */
TimestampTz
am_ts_plus(TimestampTz t, Interval *iv)
{
	if (iv->month == 0 && iv->day == 0 && !TIMESTAMP_NOT_FINITE(t) && iv->time >= 0 &&
		t <= PG_INT64_MAX - iv->time)
		return t + iv->time;
	return DatumGetTimestampTz(DirectFunctionCall2(timestamptz_pl_interval,
												   TimestampTzGetDatum(t),
												   IntervalPGetDatum(iv)));
}

/* The steps an event matched ("v" of matched: bits); 0: none, or not bits. */
int
am_seq_mask(JsonbValue *v)
{
	bool		err = false;
	int32		mask;

	if (v->type != jbvNumeric)
		return 0;
	mask = numeric_int4_opt_error(v->val.numeric, &err);
	return err || mask < 0 ? 0 : mask;
}

/* Forget every key, absence and consumed event. */
void
am_seq_reset(void)
{
	HASHCTL		ctl;
	MemoryContext old;

	if (seq_cxt == NULL)
		seq_cxt = AllocSetContextCreate(TopMemoryContext, "activity_monitor sequences",
										ALLOCSET_DEFAULT_SIZES);
	else
		MemoryContextReset(seq_cxt);
	ctl.keysize = sizeof(SeqGroupId);
	ctl.entrysize = sizeof(SeqGroup);
	ctl.hash = am_words_hash;
	ctl.match = am_words_match;
	ctl.hcxt = seq_cxt;
	groups = hash_create("activity_monitor sequence keys", 256, &ctl,
					   HASH_ELEM | HASH_FUNCTION | HASH_COMPARE | HASH_CONTEXT);
	ctl.keysize = sizeof(int64);
	ctl.entrysize = sizeof(SeqRuleState);
	rule_states = hash_create("activity_monitor sequence rules", 16, &ctl,
							  HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	consumed = NULL;
	memset(rs_cache, 0, sizeof(rs_cache));
	memset(group_memo, 0, sizeof(group_memo));
	old = MemoryContextSwitchTo(seq_cxt);
	late = pairingheap_allocate(deadline_cmp, NULL);
	MemoryContextSwitchTo(old);
}

static void
ensure_init(void)
{
	if (groups == NULL)
		am_seq_reset();
}

/* Before a replay: the event was part of an alert of the rule already. */
void
am_seq_consumed(int64 rule_id, int64 event_id)
{
	Consumed	c;

	ensure_init();
	if (consumed == NULL)
	{
		HASHCTL		ctl;

		ctl.keysize = sizeof(Consumed);
		ctl.entrysize = sizeof(Consumed);
		ctl.hcxt = seq_cxt;
		consumed = hash_create("activity_monitor consumed events", 256, &ctl,
							   HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	}
	c.rule_id = rule_id;
	c.event_id = event_id;
	(void) hash_search(consumed, &c, HASH_ENTER, NULL);
}

/* After a replay: the consumed events are no longer needed. */
void
am_seq_consumed_done(void)
{
	if (consumed != NULL)
		hash_destroy(consumed);
	consumed = NULL;
}

/*
 * Free an absence: out of its rule's queue (or the late heap), and out of
 * its key's list unless the key goes too (from_key false).
 */
static void
waiting_free(Waiting *w, bool from_key)
{
	if (w->late)
		pairingheap_remove(late, &w->heap);
	else
		dlist_delete(&w->node);
	if (from_key)
		dlist_delete(&w->key_node);
	w->key->nwaiting--;
	w->key->rs->nevents -= w->n;
	pfree(w);
}

/*
 * Drop a key, its events and its absences; and its group if it was the
 * group's last key (returns true then).
 */
static bool
key_drop(SeqKey *sk)
{
	SeqGroup   *g = sk->group;
	dlist_mutable_iter it;

	dlist_foreach_modify(it, &sk->waiting)
		waiting_free(dlist_container(Waiting, key_node, it.cur), false);
	sk->rs->nevents -= sk->n;
	sk->rs->nkeys--;
	dlist_delete(&sk->lru);
	if (sk->ev)
		pfree(sk->ev);
	for (int i = 0; i < g->n; i++)
		if (g->slots[i].key == sk)
		{
			g->slots[i] = g->slots[--g->n];
			break;
		}
	pfree(sk);
	if (g->n > 0)
		return false;
	if (group_memo[g->id.h1 % GROUP_MEMO] == g)
		group_memo[g->id.h1 % GROUP_MEMO] = NULL;
	if (g->text)
		pfree(g->text);
	if (g->slots)
		pfree(g->slots);
	(void) hash_search(groups, &g->id, HASH_REMOVE, NULL);
	return true;
}

/* Remove events [from, from + count) of the key. */
static void
events_remove(SeqKey *sk, int from, int count)
{
	for (int i = from; i < from + count; i++)
		for (int j = 0; j <= AM_MAX_STEPS; j++)
			if (sk->ev[i].mask & (1 << j))
				sk->nstep[j]--;
	memmove(&sk->ev[from], &sk->ev[from + count], sizeof(SeqEvent) * (sk->n - from - count));
	sk->n -= count;
	sk->rs->nevents -= count;
	if (from == 0 && sk->n > 0)
		sk->oldest = sk->ev[0].at;
}

/*
 * Drop the key's events older than its window and the late-commit margin
 * (newest - within - an hour): a step committed late, up to an hour
 * behind the key's newest, still finds the steps it completes.
 */
static void
key_trim(SeqKey *sk, Interval *within)
{
	int			drop = 0;

	if (sk->n == 0 || am_ts_plus(sk->oldest, within) >= sk->newest - IDLE_MARGIN_USEC)
		return;
	while (drop < sk->n && am_ts_plus(sk->ev[drop].at, within) < sk->newest - IDLE_MARGIN_USEC)
		drop++;
	if (drop > 0)
		events_remove(sk, 0, drop);
}

/*
 * The first complete sequence of the key's events, as indexes into ev
 * (idx[0 .. nsteps)); false if there is none (see the file header).  From
 * each first step in turn, the earliest next steps: a start whose walk
 * runs out of events (rather than out of its window) ends the search, as
 * every later start would too; so does a step no event of the key matches.
 */
static bool
sequence_find(const SeqRule *r, SeqKey *sk, int *idx)
{
	for (int j = 0; j < r->nsteps; j++)
		if (sk->nstep[j] == 0)
			return false;
	for (int s = 0; s < sk->n; s++)
	{
		TimestampTz limit;
		int			step = 1;
		int			j;

		if (!(sk->ev[s].mask & 1))
			continue;
		limit = am_ts_plus(sk->ev[s].at, r->within);
		idx[0] = s;
		for (j = s + 1; j < sk->n && step < r->nsteps && sk->ev[j].at <= limit; j++)
			if (sk->ev[j].mask & (1 << step))
				idx[step++] = j;
		if (step == r->nsteps)
			return true;
		if (j == sk->n)
			return false;		/* out of events, not of window */
	}
	return false;
}

/* Is there a missing step among the key's events in (after, deadline]? */
static bool
missing_between(const SeqRule *r, SeqKey *sk, TimestampTz after, int64 after_id,
				TimestampTz deadline)
{
	int			bit = 1 << r->nsteps;

	for (int j = 0; j < sk->n; j++)
		if ((sk->ev[j].mask & bit) &&
			(sk->ev[j].at > after || (sk->ev[j].at == after && sk->ev[j].id > after_id)) &&
			sk->ev[j].at <= deadline)
			return true;
	return false;
}

/* Evict the rule's least recently active key other than keep. */
static bool
evict_key(SeqRuleState *rs, SeqKey *keep)
{
	dlist_iter	it;

	dlist_foreach(it, &rs->lru)
	{
		SeqKey	   *sk = dlist_container(SeqKey, lru, it.cur);

		if (sk != keep)
		{
			key_drop(sk);
			return true;
		}
	}
	return false;
}

/*
 * The steps of an absence are complete (ids, the first at first_at, the
 * last *last): it waits until first_at + within, unless a missing step
 * among the key's events already cancels it.
 */
static void
absence_wait(const SeqRule *r, SeqKey *sk, JsonbValue *k, const int64 *ids,
			 TimestampTz first_at, const SeqEvent *last, int *evicted_events)
{
	TimestampTz deadline = am_ts_plus(first_at, r->within);
	Waiting    *w;

	if (missing_between(r, sk, last->at, last->id, deadline))
		return;
	/* the key as the alerts table will have it, for am_seq_due */
	if (sk->group->text == NULL && k->type != jbvNull)
		sk->group->text = am_jsonb_value_text(k);
	w = palloc0(offsetof(Waiting, ids) + sizeof(int64) * r->nsteps);
	w->key = sk;
	w->last_at = last->at;
	w->last_id = last->id;
	w->deadline = deadline;
	w->n = r->nsteps;
	memcpy(w->ids, ids, sizeof(int64) * r->nsteps);
	dlist_push_tail(&sk->waiting, &w->key_node);
	sk->nwaiting++;
	sk->rs->nevents += w->n;
	/* a rule's deadlines come in order but for late commits */
	if (dlist_is_empty(&sk->rs->queue) ||
		dlist_tail_element(Waiting, node, &sk->rs->queue)->deadline <= deadline)
		dlist_push_tail(&sk->rs->queue, &w->node);
	else
	{
		w->late = true;
		pairingheap_add(late, &w->heap);
	}
	/* a key waits for at most max_window_events: the oldest go */
	while (sk->nwaiting > r->max_window_events)
	{
		waiting_free(dlist_container(Waiting, key_node, dlist_head_node(&sk->waiting)), true);
		(*evicted_events)++;
	}
}

/* The ids of n events, as an int8[] (in the caller's memory). */
static ArrayType *
ids_array(const int64 *ids, int n)
{
	Datum		d[AM_MAX_STEPS];

	for (int j = 0; j < n; j++)
		d[j] = Int64GetDatum(ids[j]);
	return construct_array(d, n, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE);
}

/*
 * Add an event of rule r that matched the steps in mask (bits, see
 * SeqRule), with group key k: returns true, with the events in *ids
 * (time order), if it completed a sequence that fires now (never in a
 * replay, never for an absence: those wait, see am_seq_due).  The
 * evictions the bounds made are added to *evicted_keys and
 * *evicted_events.
 */
bool
am_seq_add(const SeqRule *r, JsonbValue *k, TimestampTz at, int64 id, int mask,
		   bool replay, ArrayType **ids, int *evicted_keys, int *evicted_events)
{
	MemoryContext old;
	SeqGroupId	gid;
	SeqGroup   *g;
	SeqKey	   *sk = NULL;
	SeqRuleState *rs;
	bool		found;
	int			missing_bit = r->absence ? 1 << r->nsteps : 0;
	int			idx[AM_MAX_STEPS];
	int			pos;

	ensure_init();
	mask &= ((1 << r->nsteps) - 1) | missing_bit;
	if (replay && consumed != NULL)
	{
		Consumed	c = {r->id, id};

		if (hash_search(consumed, &c, HASH_FIND, NULL) != NULL)
			mask &= missing_bit;	/* its steps served an alert */
	}
	if (mask == 0)
		return false;

	memset(&gid, 0, sizeof(gid));
	am_jsonb_value_hash(k, &gid.h1, &gid.h2);
	old = MemoryContextSwitchTo(seq_cxt);
	rs = rs_cache[(uint64) r->id % RS_CACHE];
	if (rs == NULL || rs->rule_id != r->id)
	{
		rs = hash_search(rule_states, &r->id, HASH_ENTER, &found);
		if (!found)
		{
			dlist_init(&rs->lru);
			rs->nkeys = 0;
			rs->nevents = 0;
			dlist_init(&rs->queue);
		}
		rs_cache[(uint64) r->id % RS_CACHE] = rs;
	}
	g = group_memo[gid.h1 % GROUP_MEMO];
	if (g == NULL || g->id.h1 != gid.h1 || g->id.h2 != gid.h2)
	{
		g = hash_search(groups, &gid, HASH_ENTER, &found);
		if (!found)
		{
			g->text = NULL;
			g->n = g->cap = 0;
			g->slots = NULL;
		}
		group_memo[gid.h1 % GROUP_MEMO] = g;
	}
	for (int i = 0; i < g->n && sk == NULL; i++)
		if (g->slots[i].rule_id == r->id)
			sk = g->slots[i].key;
	if (sk == NULL)
	{
		if (g->n == g->cap)
		{
			g->cap = Max(2, g->cap * 2);
			g->slots = g->slots ? repalloc(g->slots, sizeof(SeqSlot) * g->cap) :
				palloc(sizeof(SeqSlot) * g->cap);
		}
		sk = palloc(sizeof(SeqKey));
		g->slots[g->n].rule_id = r->id;
		g->slots[g->n].key = sk;
		g->n++;
		sk->rule_id = r->id;
		sk->group = g;
		sk->ev = NULL;
		sk->n = sk->cap = 0;
		memset(sk->nstep, 0, sizeof(sk->nstep));
		sk->newest = at;
		dlist_init(&sk->waiting);
		sk->nwaiting = 0;
		sk->rs = rs;
		dlist_push_tail(&rs->lru, &sk->lru);
		rs->nkeys++;
		while (rs->nkeys > r->max_keys && evict_key(rs, sk))
			(*evicted_keys)++;
	}
	else
		dlist_move_tail(&rs->lru, &sk->lru);
	if (at > sk->newest)
		sk->newest = at;

	/* a missing step cancels the absences it follows, before their deadline */
	if (mask & missing_bit)
	{
		dlist_mutable_iter it;

		dlist_foreach_modify(it, &sk->waiting)
		{
			Waiting    *w = dlist_container(Waiting, key_node, it.cur);

			if ((at > w->last_at || (at == w->last_at && id > w->last_id)) && at <= w->deadline)
				waiting_free(w, true);
		}
	}

	/* the event among the key's, in (at, id) order; none older than the window */
	key_trim(sk, r->within);
	if (am_ts_plus(at, r->within) < sk->newest - IDLE_MARGIN_USEC)
	{
		MemoryContextSwitchTo(old);
		return false;
	}
	if (r->absence && r->nsteps == 1 && (mask & 1))
	{
		/*
		 * A one-step absence is complete at once: it waits, and its event is
		 * used up (a missing step too, if it matched both), as below but
		 * without passing through the key's events.
		 */
		SeqEvent	e = {at, id, mask};

		absence_wait(r, sk, k, &id, at, &e, evicted_events);
		while (rs->nevents > r->max_events && evict_key(rs, sk))
			(*evicted_keys)++;
		MemoryContextSwitchTo(old);
		return false;
	}
	if (sk->n == sk->cap)
	{
		sk->cap = Max(8, sk->cap * 2);
		sk->ev = sk->ev ? repalloc(sk->ev, sizeof(SeqEvent) * sk->cap) :
			palloc(sizeof(SeqEvent) * sk->cap);
	}
	pos = sk->n;
	while (pos > 0 && (sk->ev[pos - 1].at > at || (sk->ev[pos - 1].at == at && sk->ev[pos - 1].id > id)))
		pos--;
	memmove(&sk->ev[pos + 1], &sk->ev[pos], sizeof(SeqEvent) * (sk->n - pos));
	sk->ev[pos].at = at;
	sk->ev[pos].id = id;
	sk->ev[pos].mask = mask;
	sk->n++;
	if (pos == 0)
		sk->oldest = at;
	for (int j = 0; j <= AM_MAX_STEPS; j++)
		if (mask & (1 << j))
			sk->nstep[j]++;
	rs->nevents++;
	if (sk->n > r->max_window_events)
	{
		*evicted_events += sk->n - r->max_window_events;
		events_remove(sk, 0, sk->n - r->max_window_events);
	}
	while (rs->nevents > r->max_events && evict_key(rs, sk))
		(*evicted_keys)++;

	if (!(mask & ((1 << r->nsteps) - 1)) || !sequence_find(r, sk, idx))
	{
		MemoryContextSwitchTo(old);
		return false;
	}

	/* complete: its events are consumed */
	{
		SeqEvent	chain[AM_MAX_STEPS];
		int64		chain_ids[AM_MAX_STEPS];

		for (int j = 0; j < r->nsteps; j++)
		{
			chain[j] = sk->ev[idx[j]];
			chain_ids[j] = chain[j].id;
		}
		for (int j = r->nsteps - 1; j >= 0; j--)
			events_remove(sk, idx[j], 1);
		if (r->absence)
			absence_wait(r, sk, k, chain_ids, chain[0].at, &chain[r->nsteps - 1],
						 evicted_events);
		MemoryContextSwitchTo(old);
		if (r->absence || replay)
			return false;
		*ids = ids_array(chain_ids, r->nsteps);
		return true;
	}
}

/*
 * The absence with the earliest deadline (NULL if none): the first of the
 * rules' queues and of the late heap.  A look at each sequence or absence
 * rule: a few hundred at most, per call (once per batch, and per absence
 * fired).
 */
static Waiting *
next_waiting(void)
{
	Waiting    *first = NULL;
	HASH_SEQ_STATUS seq;
	SeqRuleState *rs;

	if (late == NULL)
		return NULL;
	if (!pairingheap_is_empty(late))
		first = pairingheap_container(Waiting, heap, pairingheap_first(late));
	hash_seq_init(&seq, rule_states);
	while ((rs = hash_seq_search(&seq)) != NULL)
		if (!dlist_is_empty(&rs->queue))
		{
			Waiting    *w = dlist_head_element(Waiting, node, &rs->queue);

			if (first == NULL || w->deadline < first->deadline)
				first = w;
		}
	return first;
}

/*
 * The next absence whose deadline is at or before now, taken off the
 * state into *out (in the caller's memory); false if there is none.
 */
bool
am_seq_due(TimestampTz now, SeqDue *out)
{
	Waiting    *w = next_waiting();

	if (w == NULL || w->deadline > now)
		return false;
	out->rule_id = w->key->rule_id;
	out->key = w->key->group->text ? pstrdup(w->key->group->text) : NULL;
	out->ids = ids_array(w->ids, w->n);
	out->last_id = w->last_id;
	out->last_at = w->last_at;
	waiting_free(w, true);
	return true;
}

/* The earliest deadline waiting; DT_NOEND if none. */
TimestampTz
am_seq_next_deadline(void)
{
	Waiting    *w = next_waiting();

	return w ? w->deadline : DT_NOEND;
}

/*
 * Forget the keys of rules not in rules (dropped, disabled, changed type),
 * and keys with nothing waiting whose newest event is more than an hour
 * past their window; the consumed events of the last replay too.
 */
void
am_seq_sweep(const SeqRule *rules, int nrules, TimestampTz now)
{
	HASH_SEQ_STATUS seq;
	SeqGroup   *g;

	if (groups == NULL)
		return;
	hash_seq_init(&seq, groups);
	while ((g = hash_seq_search(&seq)) != NULL)
	{
		/* from the last key: a drop moves the last slot into its place */
		for (int j = g->n - 1; j >= 0; j--)
		{
			SeqKey	   *sk = g->slots[j].key;
			const SeqRule *r = NULL;

			for (int i = 0; i < nrules && r == NULL; i++)
				if (rules[i].id == sk->rule_id)
					r = &rules[i];
			if ((r == NULL ||
				 (sk->nwaiting == 0 && am_ts_plus(sk->newest, r->within) < now - IDLE_MARGIN_USEC)) &&
				key_drop(sk))
				break;			/* the group went with its last key */
		}
	}
	am_seq_consumed_done();
}
