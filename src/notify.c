/*-------------------------------------------------------------------------
 *
 * notify.c
 *	  An alert's NOTIFY: its payload (activity_monitor.alert_payload) and
 *	  the notification the worker sends when it fires the alert.
 *
 * The payload is the JSON text json_build_object() gives for the alert's
 * fields (README, "NOTIFY payloads"): the public one (alert_id, rule,
 * severity, fired_at), or the whole alert.  Free-text values are cut to
 * lim characters, marked with "…", lim going 500, 125, 31, 7 until the text
 * is under NOTIFY's 8000-byte limit; a value longer than 40 characters is
 * cut to 40 and becomes a string.  Times are in UTC whatever the session's
 * TimeZone.  Until 0.2.0 this was PL/pgSQL, which the worker called through
 * a SELECT for every alert it fired: with its SET clauses and the helper
 * SQL functions planned at each call, 170 µs an alert, the largest part of
 * the worker's time when first-seen rules fire on every new account.  The
 * PL/pgSQL text stays in test/pgtap/payload.sql, which compares both.
 *
 * IDENTIFICATION
 *	  src/notify.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/htup_details.h"
#include "catalog/pg_type.h"
#include "commands/async.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/typcache.h"

PG_FUNCTION_INFO_V1(activity_monitor_alert_payload);

#define PAYLOAD_MAX 8000		/* NOTIFY's payload limit, exclusive */
#define VALUE_MAX 40			/* characters of a value kept as a number */
#define CUT_MARK "\xe2\x80\xa6" /* "…", as the install script's bytes */

/* The alert's fields the payload reads, in alerts' column names. */
typedef enum PayloadField
{
	PF_ID, PF_RULE_NAME, PF_SEVERITY, PF_CHANNEL, PF_GROUP_KEY, PF_VALUE,
	PF_EVENT_ID, PF_KIND, PF_ACTION, PF_TABLE_NAME, PF_SUBJECT_ID,
	PF_ACTOR_TYPE, PF_ACTOR_ID, PF_OCCURRED_AT, PF_FIRED_AT, PF_NUM
} PayloadField;

static const char *const field_names[PF_NUM] = {
	"id", "rule_name", "severity", "channel", "group_key", "value",
	"event_id", "kind", "action", "table_name", "subject_id",
	"actor_type", "actor_id", "occurred_at", "fired_at"
};

static const Oid field_types[PF_NUM] = {
	INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID, NUMERICOID,
	INT8OID, TEXTOID, TEXTOID, TEXTOID, TEXTOID,
	TEXTOID, TEXTOID, TIMESTAMPTZOID, TIMESTAMPTZOID
};

/* One alert's fields, as read from its row. */
typedef struct PayloadAlert
{
	Datum		v[PF_NUM];
	bool		isnull[PF_NUM];
} PayloadAlert;

/*
 * Read the fields of an alerts row (NULL: all null; a missing column reads
 * as NULL).  A column of another type than the payload's (a superuser's
 * ALTER TABLE) is an error, not a misread datum.
 */
static void
read_alert(HeapTupleHeader row, PayloadAlert *a)
{
	TupleDesc	desc;
	HeapTupleData tup;
	Datum	   *values;
	bool	   *nulls;

	for (int f = 0; f < PF_NUM; f++)
	{
		a->isnull[f] = true;
		a->v[f] = (Datum) 0;
	}
	if (row == NULL)
		return;
	desc = lookup_rowtype_tupdesc(HeapTupleHeaderGetTypeId(row), HeapTupleHeaderGetTypMod(row));
	values = palloc(sizeof(Datum) * desc->natts);
	nulls = palloc(sizeof(bool) * desc->natts);

	tup.t_len = HeapTupleHeaderGetDatumLength(row);
	ItemPointerSetInvalid(&tup.t_self);
	tup.t_tableOid = InvalidOid;
	tup.t_data = row;
	heap_deform_tuple(&tup, desc, values, nulls);
	for (int f = 0; f < PF_NUM; f++)
	{
		for (int i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute att = TupleDescAttr(desc, i);

			if (att->attisdropped || strcmp(NameStr(att->attname), field_names[f]) != 0)
				continue;
			if (att->atttypid != field_types[f])
				ereport(ERROR,
						(errcode(ERRCODE_DATATYPE_MISMATCH),
						 errmsg("column \"%s\" of activity_monitor.alerts is of type %s, not %s",
								field_names[f], format_type_be(att->atttypid),
								format_type_be(field_types[f]))));
			a->v[f] = values[i];
			a->isnull[f] = nulls[i];
			break;
		}
	}
	ReleaseTupleDesc(desc);
}

/* Append ", "key" : " (json_build_object's separators). */
static void
add_key(StringInfo buf, const char *key)
{
	if (buf->len > 1)
		appendStringInfoString(buf, ", ");
	escape_json(buf, key);
	appendStringInfoString(buf, " : ");
}

/* A text value as a JSON string, cut to lim characters (lim < 0: whole). */
static void
add_text(StringInfo buf, const char *key, const PayloadAlert *a, PayloadField f, int lim)
{
	text	   *t;
	char	   *s;
	int			len;

	add_key(buf, key);
	if (a->isnull[f])
	{
		appendStringInfoString(buf, "null");
		return;
	}
	t = DatumGetTextPP(a->v[f]);
	len = VARSIZE_ANY_EXHDR(t);
	if (lim >= 0 && pg_mbstrlen_with_len(VARDATA_ANY(t), len) > lim)
	{
		int			keep = pg_mbcharcliplen(VARDATA_ANY(t), len, lim);

		s = palloc(keep + sizeof(CUT_MARK));
		memcpy(s, VARDATA_ANY(t), keep);
		strcpy(s + keep, CUT_MARK);
	}
	else
		s = text_to_cstring(t);
	escape_json(buf, s);
	pfree(s);
}

/* An integer or a time, as json_build_object writes it (times in UTC). */
static void
add_scalar(StringInfo buf, const char *key, const PayloadAlert *a, PayloadField f)
{
	add_key(buf, key);
	if (a->isnull[f])
		appendStringInfoString(buf, "null");
	else if (field_types[f] == INT8OID)
		appendStringInfo(buf, INT64_FORMAT, DatumGetInt64(a->v[f]));
	else
	{
		char		tbuf[MAXDATELEN + 1];
		const int	utc = 0;

		appendStringInfo(buf, "\"%s\"", JsonEncodeDateTime(tbuf, a->v[f], TIMESTAMPTZOID, &utc));
	}
}

/*
 * The alert's value: a number as to_jsonb() gives it (a string for NaN and
 * the infinities), a string of its first 40 characters and "…" if longer.
 */
static void
add_value(StringInfo buf, const PayloadAlert *a)
{
	char	   *s;

	add_key(buf, "value");
	if (a->isnull[PF_VALUE])
	{
		appendStringInfoString(buf, "null");
		return;
	}
	s = DatumGetCString(DirectFunctionCall1(numeric_out, a->v[PF_VALUE]));
	if (strlen(s) > VALUE_MAX)
	{
		s[VALUE_MAX] = '\0';
		s = psprintf("%s%s", s, CUT_MARK);
		escape_json(buf, s);
	}
	else if (strchr(s, 'N') != NULL || strchr(s, 'n') != NULL)
		escape_json(buf, s);
	else
		appendStringInfoString(buf, s);
}

/* The payload with free text cut to lim characters. */
static void
build_payload(StringInfo buf, const PayloadAlert *a, bool full, int lim)
{
	resetStringInfo(buf);
	appendStringInfoChar(buf, '{');
	add_scalar(buf, "alert_id", a, PF_ID);
	add_text(buf, "rule", a, PF_RULE_NAME, lim);
	add_text(buf, "severity", a, PF_SEVERITY, -1);
	if (full)
	{
		add_text(buf, "channel", a, PF_CHANNEL, -1);
		add_text(buf, "group_key", a, PF_GROUP_KEY, lim);
		add_value(buf, a);
		add_scalar(buf, "event_id", a, PF_EVENT_ID);
		add_text(buf, "kind", a, PF_KIND, -1);
		add_text(buf, "action", a, PF_ACTION, -1);
		add_text(buf, "table", a, PF_TABLE_NAME, lim);
		add_text(buf, "subject_id", a, PF_SUBJECT_ID, lim);
		add_text(buf, "actor_type", a, PF_ACTOR_TYPE, -1);
		add_text(buf, "actor_id", a, PF_ACTOR_ID, lim);
		add_scalar(buf, "occurred_at", a, PF_OCCURRED_AT);
	}
	add_scalar(buf, "fired_at", a, PF_FIRED_AT);
	appendStringInfoChar(buf, '}');
}

/* The payload of an alert, with the limits of the file header. */
static char *
alert_payload(const PayloadAlert *a, bool full)
{
	StringInfoData buf;

	initStringInfo(&buf);
	for (int lim = 500;; lim /= 4)
	{
		build_payload(&buf, a, full, lim);
		if (buf.len < PAYLOAD_MAX || lim < 10)
			break;
	}
	return buf.data;
}

/*
 * activity_monitor.alert_payload(alert alerts, full_payload boolean): the
 * alert as JSON text, the whole alert if full_payload (NULL: false).
 */
Datum
activity_monitor_alert_payload(PG_FUNCTION_ARGS)
{
	PayloadAlert a;

	read_alert(PG_ARGISNULL(0) ? NULL : PG_GETARG_HEAPTUPLEHEADER(0), &a);
	PG_RETURN_TEXT_P(cstring_to_text(alert_payload(&a, !PG_ARGISNULL(1) && PG_GETARG_BOOL(1))));
}

/*
 * NOTIFY the alert (an alerts row) on its channel, as the worker does when
 * it fires one, unless the notification queue is 90% full: then any role
 * that LISTENs and never reads would make the commit of the alerts fail.
 * Returns whether it notified.
 */
bool
am_notify_alert(Datum alert, bool full)
{
	PayloadAlert a;

	LOCAL_FCINFO(fcinfo, 0);

	InitFunctionCallInfoData(*fcinfo, NULL, 0, InvalidOid, NULL, NULL);
	if (DatumGetFloat8(pg_notification_queue_usage(fcinfo)) >= 0.9)
		return false;
	read_alert(DatumGetHeapTupleHeader(alert), &a);
	/* (a NULL channel raises as pg_notify's does: alerts.channel is NOT NULL) */
	Async_Notify(a.isnull[PF_CHANNEL] ? "" : TextDatumGetCString(a.v[PF_CHANNEL]),
				 alert_payload(&a, full));
	return true;
}
