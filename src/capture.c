/*-------------------------------------------------------------------------
 *
 * capture.c
 *	  The capture trigger: one activity row per changed row of a tracked
 *	  table (AFTER ROW INSERT/UPDATE/DELETE) and per TRUNCATE (AFTER
 *	  STATEMENT).
 *
 * Everything a row needs to know about its table (settings from
 * activity_monitor.tracked, columns and their jsonb categories, the primary
 * key, the root's name for partitions) is built once per backend and leaf
 * relation and kept in CacheMemoryContext until a relcache invalidation of
 * the table or its root: ALTER TABLE, and track()/untrack(), which recreate
 * the triggers, produce one.  The row path does no catalog look-up and no
 * SQL.
 *
 * IDENTIFICATION
 *	  src/capture.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
#include "utils/fmgroids.h"
#include "utils/hsearch.h"
#include "utils/inval.h"
#include "utils/json.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/rel.h"
#include "utils/syscache.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(activity_monitor_capture);

/* The masked value a redacted column is recorded with. */
#define REDACTED_VALUE "[redacted]"

/* Attribute numbers of activity_monitor.tracked. */
#define Anum_tracked_tbl 1
#define Anum_tracked_kind 2
#define Anum_tracked_subject 3
#define Anum_tracked_status 4
#define Anum_tracked_critical 5
#define Anum_tracked_ignore 6
#define Anum_tracked_redact 7
#define Natts_tracked 7

typedef struct CaptureColumn
{
	bool		skip;			/* dropped or ignored: never recorded */
	bool		redact;
	bool		critical;
	JsonColumnType type;
	char	   *name;
	int			namelen;
} CaptureColumn;

/* Per leaf relation metadata; see the file header. */
typedef struct CaptureTable
{
	Oid			relid;			/* hash key: the relation the trigger fires on */
	Oid			rootid;			/* the tracked table (partition root) */
	bool		valid;
	MemoryContext cxt;
	Datum		kind;			/* text */
	Datum		table_name;		/* text, schema-qualified root name */
	int			natts;
	CaptureColumn *cols;		/* by attnum - 1 */
	AttrNumber	subject_att;	/* 0 if none */
	AttrNumber	status_att;
	int			nkeys;
	AttrNumber *keyatts;
} CaptureTable;

static HTAB *capture_tables = NULL;
static Datum action_text[4];	/* insert, update, delete, truncate */

enum
{
	ACT_INSERT, ACT_UPDATE, ACT_DELETE, ACT_TRUNCATE
};

/* Invalidate cached tables whose relation or root changed. */
static void
capture_relcache_callback(Datum arg, Oid relid)
{
	HASH_SEQ_STATUS seq;
	CaptureTable *ct;

	if (capture_tables == NULL)
		return;
	hash_seq_init(&seq, capture_tables);
	while ((ct = hash_seq_search(&seq)) != NULL)
		if (relid == InvalidOid || ct->relid == relid || ct->rootid == relid)
			ct->valid = false;
}

static void
capture_init(void)
{
	HASHCTL		ctl;
	MemoryContext old;
	static const char *const names[4] = {"insert", "update", "delete", "truncate"};

	ctl.keysize = sizeof(Oid);
	ctl.entrysize = sizeof(CaptureTable);
	ctl.hcxt = CacheMemoryContext;
	capture_tables = hash_create("activity_monitor tables", 32, &ctl,
								 HASH_ELEM | HASH_BLOBS | HASH_CONTEXT);
	old = MemoryContextSwitchTo(TopMemoryContext);
	for (int i = 0; i < 4; i++)
		action_text[i] = CStringGetTextDatum(names[i]);
	MemoryContextSwitchTo(old);
	CacheRegisterRelcacheCallback(capture_relcache_callback, (Datum) 0);
}

/* Does the name[] datum contain name? */
static bool
name_in_array(Datum arr, const char *name)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	deconstruct_array(DatumGetArrayTypeP(arr), NAMEOID, NAMEDATALEN, false,
					  TYPALIGN_CHAR, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && strcmp(NameStr(*DatumGetName(elems[i])), name) == 0)
			return true;
	return false;
}

/*
 * Read the settings of the tracked table rootid into values/nulls (tracked's
 * columns); false if it has none (then it is captured as kind "system").
 * Reads the table directly, like a catalog: the writer needs no privilege.
 */
static bool
load_settings(Oid rootid, Datum *values, bool *nulls, MemoryContext cxt)
{
	Oid			indexoid;
	Oid			trackedoid = am_tracked_relid(&indexoid);
	Relation	rel = table_open(trackedoid, AccessShareLock);
	ScanKeyData key;
	SysScanDesc scan;
	HeapTuple	tup;
	bool		found = false;

	ScanKeyInit(&key, Anum_tracked_tbl, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(rootid));
	scan = systable_beginscan(rel, indexoid, true, NULL, 1, &key);
	tup = systable_getnext(scan);
	if (HeapTupleIsValid(tup))
	{
		MemoryContext old = MemoryContextSwitchTo(cxt);

		heap_deform_tuple(heap_copytuple(tup), RelationGetDescr(rel), values, nulls);
		MemoryContextSwitchTo(old);
		found = true;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Build the metadata of relation rel into ct (already keyed). */
static void
build_table(CaptureTable *ct, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	Datum		cfg[Natts_tracked];
	bool		cfgnull[Natts_tracked];
	MemoryContext old;
	Oid			pkoid;
	char	   *subject = NULL;
	char	   *status = NULL;
	bool		have;

	if (ct->cxt)
		MemoryContextDelete(ct->cxt);
	ct->cxt = AllocSetContextCreate(CacheMemoryContext, "activity_monitor table",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(ct->cxt);

	ct->rootid = rel->rd_rel->relispartition ?
		llast_oid(get_partition_ancestors(ct->relid)) : ct->relid;
	ct->table_name = CStringGetTextDatum(
		quote_qualified_identifier(get_namespace_name(get_rel_namespace(ct->rootid)),
								   get_rel_name(ct->rootid)));

	have = load_settings(ct->rootid, cfg, cfgnull, ct->cxt);
	ct->kind = have ? datumCopy(cfg[Anum_tracked_kind - 1], false, -1) :
		CStringGetTextDatum("system");
	if (have && !cfgnull[Anum_tracked_subject - 1])
		subject = NameStr(*DatumGetName(cfg[Anum_tracked_subject - 1]));
	if (have && !cfgnull[Anum_tracked_status - 1])
		status = NameStr(*DatumGetName(cfg[Anum_tracked_status - 1]));

	ct->natts = desc->natts;
	ct->cols = palloc0(sizeof(CaptureColumn) * Max(desc->natts, 1));
	ct->subject_att = ct->status_att = InvalidAttrNumber;
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute att = TupleDescAttr(desc, i);
		CaptureColumn *col = &ct->cols[i];

		if (att->attisdropped)
		{
			col->skip = true;
			continue;
		}
		col->name = pstrdup(NameStr(att->attname));
		col->namelen = strlen(col->name);
		am_init_json_type(&col->type, att->atttypid, ct->cxt);
		if (have)
		{
			col->skip = name_in_array(cfg[Anum_tracked_ignore - 1], col->name);
			col->redact = name_in_array(cfg[Anum_tracked_redact - 1], col->name);
			col->critical = name_in_array(cfg[Anum_tracked_critical - 1], col->name);
		}
		if (subject && strcmp(subject, col->name) == 0)
			ct->subject_att = att->attnum;
		if (status && strcmp(status, col->name) == 0)
			ct->status_att = att->attnum;
	}

	ct->nkeys = 0;
	pkoid = RelationGetPrimaryKeyIndex(rel);
	if (OidIsValid(pkoid))
	{
		HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(pkoid));

		if (HeapTupleIsValid(itup))
		{
			Form_pg_index idx = (Form_pg_index) GETSTRUCT(itup);

			ct->nkeys = idx->indnkeyatts;
			ct->keyatts = palloc(sizeof(AttrNumber) * ct->nkeys);
			for (int i = 0; i < ct->nkeys; i++)
				ct->keyatts[i] = idx->indkey.values[i];
			ReleaseSysCache(itup);
		}
	}
	MemoryContextSwitchTo(old);
}

/* The cached metadata of rel, built on first use or after invalidation. */
static CaptureTable *
get_table(Relation rel)
{
	Oid			relid = RelationGetRelid(rel);
	CaptureTable *ct;
	bool		found;

	if (capture_tables == NULL)
		capture_init();
	ct = hash_search(capture_tables, &relid, HASH_ENTER, &found);
	if (!found)
	{
		ct->cxt = NULL;
		ct->valid = false;
	}
	while (!ct->valid)
	{
		ct->valid = true;		/* an invalidation while building resets it */
		PG_TRY();
		{
			build_table(ct, rel);
		}
		PG_CATCH();
		{
			ct->valid = false;
			PG_RE_THROW();
		}
		PG_END_TRY();
	}
	return ct;
}

/* The value of column att as text (masked when redacted). */
static Datum
column_text(CaptureTable *ct, TupleTableSlot *slot, AttrNumber att, bool *isnull)
{
	CaptureColumn *col = &ct->cols[att - 1];

	*isnull = slot->tts_isnull[att - 1];
	if (*isnull)
		return (Datum) 0;
	if (col->redact)
		return CStringGetTextDatum(REDACTED_VALUE);
	return CStringGetTextDatum(am_value_text(slot->tts_values[att - 1], &col->type));
}

/*
 * The row's primary key as text: the value itself for a one-column key, a
 * JSON array of the values' text for a composite key (unambiguous).
 */
static Datum
row_key(CaptureTable *ct, TupleTableSlot *slot, bool *isnull)
{
	StringInfoData buf;

	*isnull = ct->nkeys == 0;
	if (ct->nkeys == 0)
		return (Datum) 0;
	if (ct->nkeys == 1)
		return column_text(ct, slot, ct->keyatts[0], isnull);

	initStringInfo(&buf);
	appendStringInfoChar(&buf, '[');
	for (int i = 0; i < ct->nkeys; i++)
	{
		AttrNumber	att = ct->keyatts[i];

		if (i > 0)
			appendStringInfoChar(&buf, ',');
		if (slot->tts_isnull[att - 1])
			appendStringInfoString(&buf, "null");
		else
			escape_json(&buf, am_value_text(slot->tts_values[att - 1], &ct->cols[att - 1].type));
	}
	appendStringInfoChar(&buf, ']');
	return CStringGetTextDatum(buf.data);
}

static void
push_member(JsonbParseState **state, CaptureColumn *col, Datum value, bool isnull)
{
	JsonbValue	k;

	k.type = jbvString;
	k.val.string.val = col->name;
	k.val.string.len = col->namelen;
	pushJsonbValue(state, WJB_KEY, &k);
	if (col->redact && !isnull)
	{
		JsonbValue	v;

		v.type = jbvString;
		v.val.string.val = REDACTED_VALUE;
		v.val.string.len = strlen(REDACTED_VALUE);
		pushJsonbValue(state, WJB_VALUE, &v);
	}
	else
		am_push_value(state, value, isnull, &col->type);
}

/* The recorded columns of a row as a jsonb object; only changed ones if given. */
static Datum
row_jsonb(CaptureTable *ct, TupleTableSlot *slot, const bool *changed)
{
	JsonbParseState *state = NULL;
	JsonbValue *res;

	pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
	for (int i = 0; i < ct->natts; i++)
	{
		if (ct->cols[i].skip || (changed && !changed[i]))
			continue;
		push_member(&state, &ct->cols[i], slot->tts_values[i], slot->tts_isnull[i]);
	}
	res = pushJsonbValue(&state, WJB_END_OBJECT, NULL);
	return JsonbPGetDatum(JsonbValueToJsonb(res));
}

/*
 * Did the value of column i change?  Equal on-disk TOAST pointers mean the
 * value was not touched, without detoasting; otherwise compare images
 * (datum_image_eq detoasts), as ri_triggers.c does.
 */
static bool
column_changed(CaptureColumn *col, TupleTableSlot *oldslot, TupleTableSlot *newslot, int i)
{
	Datum		o = oldslot->tts_values[i];
	Datum		n = newslot->tts_values[i];

	if (oldslot->tts_isnull[i] || newslot->tts_isnull[i])
		return oldslot->tts_isnull[i] != newslot->tts_isnull[i];
	if (col->type.typlen == -1 &&
		VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(o)) &&
		VARATT_IS_EXTERNAL_ONDISK(DatumGetPointer(n)) &&
		memcmp(DatumGetPointer(o), DatumGetPointer(n), VARSIZE_EXTERNAL(DatumGetPointer(o))) == 0)
		return false;
	return !datum_image_eq(o, n, col->type.typbyval, col->type.typlen);
}

static inline void
set_datum(Datum *values, bool *nulls, int c, Datum d, bool isnull)
{
	values[c] = d;
	nulls[c] = isnull;
}

/* Capture one row event; false when an UPDATE changed nothing recorded. */
static bool
capture_row(TriggerData *td, CaptureTable *ct, Datum *values, bool *nulls)
{
	TriggerEvent ev = td->tg_event;
	TupleTableSlot *oldslot = NULL;
	TupleTableSlot *newslot = NULL;
	TupleTableSlot *keyslot;
	bool		isnull;
	bool		critical = false;

	if (TRIGGER_FIRED_BY_INSERT(ev))
	{
		newslot = td->tg_trigslot;
		slot_getallattrs(newslot);
		set_datum(values, nulls, AC_ACTION, action_text[ACT_INSERT], false);
		set_datum(values, nulls, AC_NEW_VALUES, row_jsonb(ct, newslot, NULL), false);
		if (ct->status_att)
			values[AC_STATUS_TO] = column_text(ct, newslot, ct->status_att, &nulls[AC_STATUS_TO]);
		keyslot = newslot;
	}
	else if (TRIGGER_FIRED_BY_DELETE(ev))
	{
		oldslot = td->tg_trigslot;
		slot_getallattrs(oldslot);
		set_datum(values, nulls, AC_ACTION, action_text[ACT_DELETE], false);
		set_datum(values, nulls, AC_OLD_VALUES, row_jsonb(ct, oldslot, NULL), false);
		if (ct->status_att)
			values[AC_STATUS_FROM] = column_text(ct, oldslot, ct->status_att, &nulls[AC_STATUS_FROM]);
		critical = true;
		keyslot = oldslot;
	}
	else
	{
		bool	   *changed = palloc(sizeof(bool) * ct->natts);
		bool		any = false;

		oldslot = td->tg_trigslot;
		newslot = td->tg_newslot;
		slot_getallattrs(oldslot);
		slot_getallattrs(newslot);
		for (int i = 0; i < ct->natts; i++)
		{
			CaptureColumn *col = &ct->cols[i];

			changed[i] = !col->skip && column_changed(col, oldslot, newslot, i);
			if (changed[i])
			{
				any = true;
				if (col->critical)
					critical = true;
			}
		}
		if (!any)
			return false;
		set_datum(values, nulls, AC_ACTION, action_text[ACT_UPDATE], false);
		set_datum(values, nulls, AC_OLD_VALUES, row_jsonb(ct, oldslot, changed), false);
		set_datum(values, nulls, AC_NEW_VALUES, row_jsonb(ct, newslot, changed), false);
		if (ct->status_att && changed[ct->status_att - 1])
		{
			values[AC_STATUS_FROM] = column_text(ct, oldslot, ct->status_att, &nulls[AC_STATUS_FROM]);
			values[AC_STATUS_TO] = column_text(ct, newslot, ct->status_att, &nulls[AC_STATUS_TO]);
			critical = true;
		}
		keyslot = newslot;
	}

	values[AC_ROW_KEY] = row_key(ct, keyslot, &nulls[AC_ROW_KEY]);
	if (ct->subject_att)
		values[AC_SUBJECT_ID] = column_text(ct, keyslot, ct->subject_att, &isnull),
			nulls[AC_SUBJECT_ID] = isnull;
	set_datum(values, nulls, AC_CRITICAL, BoolGetDatum(critical), false);
	return true;
}

/*
 * activity_monitor.capture(): the trigger function track() installs, AFTER
 * ROW for INSERT/UPDATE/DELETE and AFTER STATEMENT for TRUNCATE.
 */
Datum
activity_monitor_capture(PG_FUNCTION_ARGS)
{
	TriggerData *td = (TriggerData *) fcinfo->context;
	TriggerEvent ev;
	CaptureTable *ct;
	Datum		values[AC_NUM_COLUMNS];
	bool		nulls[AC_NUM_COLUMNS];

	if (!CALLED_AS_TRIGGER(fcinfo))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor.capture() must be called as a trigger")));
	ev = td->tg_event;
	if (!TRIGGER_FIRED_AFTER(ev) ||
		(TRIGGER_FIRED_BY_TRUNCATE(ev) ? !TRIGGER_FIRED_FOR_STATEMENT(ev)
		 : !TRIGGER_FIRED_FOR_ROW(ev)))
		ereport(ERROR,
				(errcode(ERRCODE_E_R_I_E_TRIGGER_PROTOCOL_VIOLATED),
				 errmsg("activity_monitor.capture() must be fired AFTER, for each row or for TRUNCATE statements"),
				 errhint("Install it with activity_monitor.track().")));
	if (am_sink_is_activity_rel(RelationGetRelid(td->tg_relation)))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("activity_monitor cannot capture its own table \"%s\"",
						RelationGetRelationName(td->tg_relation))));

	ct = get_table(td->tg_relation);

	memset(nulls, true, sizeof(nulls));
	if (TRIGGER_FIRED_BY_TRUNCATE(ev))
	{
		set_datum(values, nulls, AC_ACTION, action_text[ACT_TRUNCATE], false);
		set_datum(values, nulls, AC_CRITICAL, BoolGetDatum(true), false);
	}
	else if (!capture_row(td, ct, values, nulls))
		return PointerGetDatum(NULL);

	set_datum(values, nulls, AC_OCCURRED_AT,
			  TimestampTzGetDatum(GetCurrentStatementStartTimestamp()), false);
	set_datum(values, nulls, AC_KIND, ct->kind, false);
	set_datum(values, nulls, AC_TABLE_NAME, ct->table_name, false);
	am_fill_actor(values, nulls);
	am_sink_insert(values, nulls);
	return PointerGetDatum(NULL);
}
