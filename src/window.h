/*-------------------------------------------------------------------------
 *
 * window.h
 *	  The window engine's interface: what alerts.c and backtest.c call in
 *	  window.c.
 *
 * The engine keeps the alert rules' windows in this backend's memory: pure
 * data structures, no SPI, no catalog access, nothing else of ours.  What it
 * needs of a rule comes in a WindowRule the caller fills; what the bounds
 * evicted goes back in a WindowEvictions the caller counts (or not).
 *
 * IDENTIFICATION
 *	  src/window.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef AM_WINDOW_H
#define AM_WINDOW_H

#include "datatype/timestamp.h"
#include "utils/array.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

/* One window (a rule and group key); its fields are window.c's. */
typedef struct Window Window;

/*
 * A threshold as integer measures (counts, and sums of integers) meet it:
 * reached by at least ceil, or never (above any int64), or always.
 * am_window_threshold() makes it once per rule.
 */
typedef struct WindowThreshold
{
	int64		ceil;			/* the least integer at or above the threshold */
	int8		range;			/* 0: ceil holds it; 1: never reached; -1: always */
} WindowThreshold;

/*
 * A window's measure, exact: the integer i plus n (NULL: none).  Counts,
 * distinct counts and sums of integer measures have no n; a sum with some
 * other number (a decimal amount, say) carries that part in n.
 */
typedef struct WindowMeasure
{
	int64		i;
	Numeric		n;
} WindowMeasure;

/*
 * What the windows need of a rule: its id, measure, window and threshold,
 * and the bounds in force (the settings activity_monitor.max_*).
 */
typedef struct WindowRule
{
	int64		id;
	char		measure;		/* 'c'ount, 's'um, 'd'istinct */
	Interval   *within;			/* the window, at most max_window */
	Numeric		threshold;		/* a count window keeps no more events */
	WindowThreshold thr;		/* the threshold, for integer measures */
	int			max_keys;		/* group keys of all the rule's windows */
	int			max_events;		/* events of all the rule's windows */
	int			max_window_events;	/* events of one window */
} WindowRule;

/* What one am_window_add evicted to keep the bounds. */
typedef struct WindowEvictions
{
	int			keys;			/* other keys of the rule, with their events */
	int			events;			/* events of this window, before their time */
} WindowEvictions;

extern void am_window_reset(void);
extern MemoryContext am_window_memory(void);
extern bool am_window_add(const WindowRule *r, JsonbValue *k, TimestampTz at, int64 id,
						  JsonbValue *v, Window **wp, WindowMeasure *val,
						  WindowMeasure *before, WindowEvictions *evicted);
extern WindowThreshold am_window_threshold(Numeric threshold);
extern bool am_window_reached(const WindowRule *r, const WindowMeasure *m);
extern Numeric am_window_numeric(const WindowMeasure *m);
extern ArrayType *am_window_ids(Window *w);
extern void am_jsonb_value_hash(JsonbValue *v, uint64 *h1, uint64 *h2);
extern uint32 am_words_hash(const void *key, Size keysize);
extern int	am_words_match(const void *key1, const void *key2, Size keysize);
extern void am_window_sweep(const WindowRule *rules, int nrules, TimestampTz now);
extern Numeric am_window_measure_num(JsonbValue *v);

/* alerts.c, for backtest.c: a WindowRule with the bounds in force, and what fires */
extern WindowRule am_alerts_window_rule(int64 id, char measure, Interval *within,
										Numeric threshold);
extern bool am_alerts_match(const WindowRule *wr, bool has_measure_path, JsonbValue *k,
							JsonbValue *v, TimestampTz at, int64 id, Numeric *val,
							ArrayType **ids, WindowEvictions *evicted);

#endif							/* AM_WINDOW_H */
