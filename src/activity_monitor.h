/*-------------------------------------------------------------------------
 *
 * activity_monitor.h
 *	  Declarations shared between the files of activity_monitor.
 *
 * Each .c file owns one concern: capture.c (the trigger and its per-table
 * cache), rowjson.c (row values to jsonb), sink.c (writing activity rows),
 * actor.c (who acts: settings and session facts), catalog.c (the
 * extension's schema, relations and columns, found by OID and by name
 * once), rules.c (the rule cache the trigger and the alert engine share,
 * the event document, predicate evaluation), alerts.c (the worker's alert
 * engine: batches, thresholds, cooldowns, NOTIFY), window.c (its
 * in-memory windows; window.h, for alerts.c and backtest.c), sequence.c
 * (sequence and absence rules' steps and waits) and seen.c (first-seen
 * rules' memory and table; both in detect.h), backtest.c (test_rule(): a
 * rule over the stored history), receive.c (events a
 * reporting cluster receives), wake.c (waking the
 * worker at commit), worker.c (the background workers), guard.c (the DDL
 * guard: event triggers that keep capture from being switched off),
 * partitions.c (capture triggers across partition trees), subxact.c
 * (surviving an ERROR in a subtransaction), seal.c (tamper evidence: the
 * seal chain and verify()), predicate.c (compiled predicates), audit.c
 * (changes to the monitoring recorded as admin events), timeline.c
 * (account_timeline():
 * an account's events read partition by partition), activity_monitor.c
 * (module load, the utility hook).  This header declares only what one
 * file calls in another.
 *
 * IDENTIFICATION
 *	  src/activity_monitor.h
 *
 *-------------------------------------------------------------------------
 */
#ifndef ACTIVITY_MONITOR_H
#define ACTIVITY_MONITOR_H

#include "postgres.h"

#include "access/tupdesc.h"
#include "datatype/timestamp.h"
#include "nodes/pg_list.h"
#include "utils/jsonb.h"
#include "utils/numeric.h"

#define AM_SCHEMA "activity_monitor"

/* Columns of activity_monitor.activity that capture fills, in one order. */
typedef enum ActivityColumn
{
	AC_ID,
	AC_OCCURRED_AT,
	AC_KIND,
	AC_ACTION,
	AC_TABLE_NAME,
	AC_ROW_KEY,
	AC_SUBJECT_ID,
	AC_ACTOR_TYPE,
	AC_ACTOR_ID,
	AC_ACTOR_REASON,
	AC_ACTOR_CONTEXT,
	AC_STATUS_FROM,
	AC_STATUS_TO,
	AC_CRITICAL,
	AC_OLD_VALUES,
	AC_NEW_VALUES,
	AC_DB_USER,
	AC_APPLICATION_NAME,
	AC_CLIENT_ADDR,
	AC_BACKEND_PID,
	AC_TXID,
	AC_MATCHED,
	AC_RULE_ERRORS,
	AC_NUM_COLUMNS
} ActivityColumn;

/* How one column's value becomes a jsonb value (rowjson.c). */
typedef enum JsonCategory
{
	JC_TEXT,					/* text-like: raw bytes are the string */
	JC_BOOL,
	JC_INTEGER,					/* int2, int4, int8 */
	JC_FLOAT,					/* float4, float8 */
	JC_NUMERIC,
	JC_DATETIME,				/* date, timestamp, timestamptz */
	JC_JSONB,
	JC_JSON,
	JC_ARRAY,					/* one-dimensional array of a scalar type */
	JC_OTHER					/* through the type's output function */
} JsonCategory;

typedef struct JsonColumnType
{
	Oid			typid;			/* base type (domains resolved) */
	JsonCategory category;
	Oid			outfunc;		/* output function, for JC_OTHER */
	int16		typlen;
	bool		typbyval;
	char		typalign;
	struct JsonColumnType *elem;	/* element type, for JC_ARRAY */
} JsonColumnType;

/* activity_monitor.c */
extern void _PG_init(void);

/* catalog.c: columns of activity_monitor.tracked the C code reads */
typedef enum TrackedColumn
{
	TC_TBL,
	TC_KIND,
	TC_SUBJECT,
	TC_STATUS,
	TC_CRITICAL,
	TC_IGNORE,
	TC_REDACT,
	TC_CRITICAL_STATUSES,		/* text[]; NULL: every status is critical */
	TC_NUM_COLUMNS
} TrackedColumn;

/*
 * Columns of tracked from TC_FIRST_OPTIONAL on were added by 0.2.0: a
 * database still of 0.1.0 (the library loaded before ALTER EXTENSION
 * UPDATE) lacks them, and am_tracked_read() reads them as NULL, which
 * means 0.1.0's behaviour.
 */
#define TC_FIRST_OPTIONAL TC_CRITICAL_STATUSES

/* catalog.c: columns of activity_monitor.alert_rule the C code reads */
typedef enum RuleColumn
{
	RC_ID,
	RC_NAME,
	RC_PREDICATE,
	RC_SEVERITY,
	RC_KINDS,
	RC_TABLES,
	RC_WITHIN,
	RC_THRESHOLD,
	RC_MEASURE,
	RC_MEASURE_PATH,
	RC_GROUP_BY,
	RC_COOLDOWN,
	RC_CHANNEL,
	RC_ENABLED,
	RC_STEPS,					/* 0.2.0: detection v2 (optional, see below) */
	RC_MISSING,
	RC_LOOKBACK,
	RC_FULL_PAYLOAD,
	RC_NUM_COLUMNS
} RuleColumn;

/*
 * The columns of alert_rule from RC_FIRST_OPTIONAL on came with 0.2.0: a
 * library loaded before ALTER EXTENSION UPDATE reads them as NULL.
 */
#define RC_FIRST_OPTIONAL RC_STEPS

/* Most steps of a sequence or absence rule (the missing step apart). */
#define AM_MAX_STEPS 8

/* The extension's objects, found by OID, and their columns, found by name. */
typedef struct AmCatalog
{
	Oid			schema;			/* the extension's schema (pg_extension) */
	Oid			activity;		/* the partitioned activity table */
	Oid			activity_seq;	/* activity_id_seq */
	Oid			tracked;		/* the configuration table */
	Oid			tracked_pkey;	/* and its primary key index (on tbl) */
	Oid			alert_rule;		/* the rules table */
	AttrNumber	activity_att[AC_NUM_COLUMNS];
	AttrNumber	tracked_att[TC_NUM_COLUMNS];	/* optional ones: 0 if missing */
	AttrNumber	rule_att[RC_NUM_COLUMNS];
} AmCatalog;

/* A table's settings row in activity_monitor.tracked. */
typedef struct AmTrackedRow
{
	bool		found;
	bool		written_here;	/* inserted or updated by this transaction */
	Datum		values[TC_NUM_COLUMNS];
	bool		nulls[TC_NUM_COLUMNS];
} AmTrackedRow;

extern void am_catalog_init(void);
extern const AmCatalog *am_catalog(void);
extern Oid	am_extension_schema(Oid *owner, char **version);
extern const char *am_activity_column_name(ActivityColumn c);
extern bool am_is_extension_rel(Oid relid);
extern bool am_tracked_read(Oid relid, bool latest, MemoryContext cxt, AmTrackedRow *row);
extern List *am_tracked_tables(bool latest);

/* alerts.c */
extern bool am_process_alerts(int max_events, int *events_out, int *fired_out);
extern void am_alerts_forget_windows(void);
extern char *am_jsonb_value_text(JsonbValue *v);

/* notify.c */
extern bool am_notify_alert(Datum alert, bool full);

/* alerts.c */
extern void am_define_alert_gucs(void);

/* actor.c */
extern void am_actor_init(void);
extern void am_fill_actor(Datum *values, bool *nulls);

/* capture.c */
extern bool am_name_in_array(Datum arr, const char *name);

/* partitions.c: the names of the capture triggers track() installs */
#define AM_CAPTURE_TRIGGER "activity_monitor_capture"
#define AM_TRUNCATE_TRIGGER "activity_monitor_truncate"
extern Oid	am_governing_table(Oid relid, bool latest);
extern void am_partitions_sync(Oid relid, Oid reset_root);
extern void am_partitions_before_attach(Oid parent, Oid part);

/* rowjson.c */
extern void am_init_json_type(JsonColumnType *jt, Oid typid, MemoryContext cxt);
extern void am_push_value(JsonbParseState **state, Datum value, bool isnull,
						  const JsonColumnType *jt);
extern char *am_value_text(Datum value, const JsonColumnType *jt);

/* Longest text capture and alerts store in an indexed column, in bytes. */
#define AM_INDEXED_MAX 1000
extern Datum am_indexable_text(Datum value);

/* worker.c */
extern void am_define_worker_gucs(void);
extern void am_register_launcher(void);
extern bool am_worker_stop_for_drop(const char *dbname, Oid dboid, bool force);
extern bool am_register_db_worker(Oid dboid);
extern void am_worker_at_commit(Oid dboid, bool start);
extern bool am_database_is_template(Oid dboid);
extern bool am_database_allows_connections(Oid dboid);

/* sink.c */
extern void am_sink_insert(Datum *values, bool *nulls);
extern void am_sink_init(void);
extern void am_sink_close(void);
extern int64 am_sink_next_id(void);

/* predicate.c: compiled predicates (opaque outside predicate.c) */
typedef struct AmPred AmPred;
typedef struct AmPredSet AmPredSet;
typedef struct AmPredMemo AmPredMemo;
extern AmPredSet *am_pred_set_create(MemoryContext cxt);
extern AmPred *am_pred_compile(AmPredSet *set, Datum predicate);
extern void am_pred_finish(AmPred *p);
extern int	am_pred_eval(AmPred *p, Datum doc, AmPredMemo **memo);

/*
 * rules.c: one alert rule, as the rule cache holds it, shared by the
 * capture trigger and the alert engine.  Read only, outside rules.c.
 */
typedef struct AmRule
{
	int64		id;
	char		key[24];		/* id as text: the key in "matched" */
	char	   *name;
	char	   *severity;
	char	   *channel;
	bool		enabled;
	char		measure;		/* 'c'ount, 's'um, 'd'istinct */
	Interval   *within;			/* NULL: a rule per event */
	Numeric		threshold;		/* NULL when within is */
	Interval   *cooldown;		/* NULL: none */
	Datum		predicate;		/* jsonpath */
	Datum		group_by;		/* jsonpath */
	Datum		measure_path;	/* jsonpath or 0 */
	int			nkinds;
	char	  **kinds;			/* NULL: any kind */
	int			ntables;
	Oid		   *tables;			/* NULL: any table */
	bool		guarded;		/* evaluated inside a subtransaction */
	AmPred	   *pred;			/* the predicate compiled; NULL: generic */
	bool		logged;			/* an evaluation error was logged */
	/* detection v2: a sequence (steps), an absence (steps, missing) */
	int			nsteps;			/* 0: neither */
	bool		has_missing;
	Datum		steps[AM_MAX_STEPS + 1];	/* jsonpath; the missing step last */
	AmPred	   *step_pred[AM_MAX_STEPS + 1];	/* compiled; NULL: generic */
	Interval   *lookback;		/* a first-seen rule; NULL: not one */
	bool		full_payload;	/* NOTIFY the whole alert (0.2.0) */
} AmRule;

extern void am_define_rule_gucs(void);
extern uint64 am_rules_generation(void);
extern int	am_rules_all(AmRule **out);
extern int	am_rules_applicable(Oid rootid, const char *kind, AmRule ***out,
								MemoryContext cxt);
extern bool am_rules_evaluate(AmRule **list, int n, Datum doc, Datum *values, bool *nulls);
extern bool am_matched_shared_key(Jsonb *matched, JsonbValue *k);
extern void am_matched_entry(const JsonbValue *entry, bool compact, const JsonbValue *shared,
							 JsonbValue *k, JsonbValue *v);
extern void am_rule_prepare(AmRule *r, const char *name, MemoryContext cxt);

/* The rows of a captured event, for its event document (capture.c fills it). */
typedef struct AmEventRows
{
	Datum		old_row;		/* jsonb, the whole old row; 0: none */
	Datum		new_row;		/* jsonb, the whole new row; 0: none */
	int			nchanged;
	const char **changed;		/* the names of the changed columns */
	const char *source;			/* a received event's source; NULL: none */
} AmEventRows;
extern Datum am_event_document(Datum *values, bool *nulls, const AmEventRows *rows);
extern void am_stored_event_rows(Datum *values, bool *nulls, const char *source,
								 bool all_changed, AmEventRows *rows);

/* seal.c */
extern void am_seal_drop_warning(void);
extern TimestampTz am_xact_horizon(bool *unknown);

/* audit.c */
extern void am_record_admin(const char *object, const char *action, const char *row_key,
							Datum old_values, Datum new_values);

/* subxact.c */
extern bool am_subxact_try(void (*fn) (void *arg), void *arg, ErrorData **edata);

/* wake.c */
extern void am_wake_init(void);
extern void am_wake_register_worker(void);
extern void am_wake_at_commit(void);
extern int	am_wake_worker_pid(Oid dboid);
typedef enum AmDropState
{
	AM_DROP_NONE,				/* no drop of the database known */
	AM_DROP_RUNNING,			/* its DROP DATABASE's transaction runs */
	AM_DROP_DONE				/* it committed */
} AmDropState;
extern void am_wake_set_drop(Oid dboid, AmDropState state);
extern bool am_wake_start_begin(Oid dboid);
extern void am_wake_start_end(Oid dboid);
extern void am_wake_want_start(Oid dboid, bool want);
extern int	am_wake_wanted_starts(Oid *dbs, int max);
extern AmDropState am_wake_drop_state(Oid dboid);
extern void am_wake_database(Oid dboid);

#endif							/* ACTIVITY_MONITOR_H */
