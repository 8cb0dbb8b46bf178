/*-------------------------------------------------------------------------
 *
 * detect.h
 *	  Detection v2's engines: sequences and absences (sequence.c), first
 *	  seen values (seen.c); what alerts.c and backtest.c call in them.
 *
 * Like window.h's engine, sequence.c is pure data structures in this
 * backend's memory (no SPI, no catalog access); seen.c keeps a memory in
 * front of the table activity_monitor.seen, or, for test_rule(), a memory
 * alone.
 *
 * IDENTIFICATION
 *	  src/detect.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AM_DETECT_H
#define AM_DETECT_H

#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "window.h"

/* What the sequence engine needs of a rule, with the bounds in force. */
typedef struct SeqRule
{
	int64		id;
	int			nsteps;			/* steps, in order (bits 0 .. nsteps-1) */
	bool		absence;		/* bit nsteps: the missing step */
	Interval   *within;			/* first step to last, and to the deadline */
	int			max_keys;		/* as a window rule's (window.h) */
	int			max_events;
	int			max_window_events;
} SeqRule;

/* An absence whose deadline passed with no missing step: it fires. */
typedef struct SeqDue
{
	int64		rule_id;
	char	   *key;			/* the group key as ->> renders it; NULL */
	ArrayType  *ids;			/* the steps' events */
	int64		last_id;		/* the last step's event (the alert's) */
	TimestampTz last_at;
} SeqDue;

extern int	am_seq_mask(JsonbValue *v);
extern void am_seq_reset(void);
extern void am_seq_consumed(int64 rule_id, int64 event_id);
extern void am_seq_consumed_done(void);
extern bool am_seq_add(const SeqRule *r, JsonbValue *k, TimestampTz at, int64 id, int mask,
					   bool replay, ArrayType **ids, int *evicted_keys, int *evicted_events);
extern bool am_seq_due(TimestampTz now, SeqDue *out);
extern TimestampTz am_seq_next_deadline(void);
extern void am_seq_sweep(const SeqRule *rules, int nrules, TimestampTz now);
extern TimestampTz am_ts_plus(TimestampTz t, Interval *iv);

/* seen.c: first seen values */
typedef struct SeenMemory SeenMemory;

extern SeenMemory *am_seen_create(MemoryContext cxt, bool persist, int64 max_entries);
extern void am_seen_clear(SeenMemory *sm, int64 max_entries);
extern bool am_seen_note(SeenMemory *sm, int64 rule_id, Interval *lookback, JsonbValue *k,
						 JsonbValue *v, TimestampTz at, bool history);
extern void am_seen_prune_table(void);
extern void am_seen_texts(JsonbValue *k, JsonbValue *v, Datum *keyd, Datum *valued);

/* alerts.c, for backtest.c and worker.c */
extern SeqRule am_alerts_seq_rule(int64 id, int nsteps, bool absence, Interval *within);
extern TimestampTz am_alerts_next_deadline(void);

#endif							/* AM_DETECT_H */
