/*-------------------------------------------------------------------------
 *
 * activity_monitor.h
 *	  Declarations shared between the files of activity_monitor.
 *
 * Each .c file owns one concern: capture.c (the trigger and its per-table
 * cache), rowjson.c (row values to jsonb), sink.c (writing activity rows),
 * actor.c (who acts: settings and session facts), rules.c (alert rule
 * predicates), alerts.c (the worker's alert engine: windows, thresholds,
 * cooldowns, NOTIFY), wake.c (waking the worker at commit), worker.c (the
 * background workers), guard.c (the DDL guard: event triggers that keep
 * capture from being switched off), subxact.c (surviving an ERROR in a
 * subtransaction), activity_monitor.c (module load, the utility hook, the
 * extension's schema by OID).  This header declares only what one file
 * calls in another.
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
#include "utils/jsonb.h"

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
extern Oid	am_extension_schema(Oid *owner, char **version);

/* alerts.c */
extern void am_define_alert_gucs(void);

/* actor.c */
extern void am_actor_init(void);
extern void am_fill_actor(Datum *values, bool *nulls);

/* capture.c */
extern bool am_name_in_array(Datum arr, const char *name);

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
extern bool am_worker_stop_for_database(Oid dboid);
extern bool am_register_db_worker(Oid dboid);

/* sink.c */
extern void am_sink_insert(Datum *values, bool *nulls);
extern void am_sink_init(void);
extern void am_sink_close(void);
extern int64 am_sink_next_id(void);
extern bool am_sink_is_activity_rel(Oid relid);
extern Oid	am_tracked_relid(Oid *indexoid);
extern Oid	am_alert_rule_relid(void);

/* rules.c */
typedef struct AmRule AmRule;
extern uint64 am_rules_generation(void);
extern int	am_rules_applicable(Oid rootid, const char *kind, AmRule ***out,
								MemoryContext cxt);
extern bool am_rules_evaluate(AmRule **list, int n, Datum doc, Datum *values, bool *nulls);

/* subxact.c */
extern bool am_subxact_try(void (*fn) (void *arg), void *arg, ErrorData **edata);

/* wake.c */
extern void am_wake_init(void);
extern void am_wake_register_worker(void);
extern void am_wake_at_commit(void);
extern int	am_wake_worker_pid(Oid dboid);
extern void am_wake_set_dropped(Oid dboid, bool dropped);
extern bool am_wake_database_dropped(Oid dboid);

#endif							/* ACTIVITY_MONITOR_H */
