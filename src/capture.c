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
 * The settings are those of the tracked table that governs the relation
 * (partitions.c: the outermost tracked table among the relation and its
 * partition ancestors), and only the relation's own capture triggers
 * record: activity_monitor_capture for rows, activity_monitor_truncate for
 * TRUNCATE.  A trigger running capture() under another name, or on a table
 * no tracked table governs, records nothing, so no change is recorded
 * twice and anyone may use capture() in a trigger.
 *
 * IDENTIFICATION
 *	  src/capture.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/sysattr.h"
#include "catalog/partition.h"
#include "catalog/pg_index.h"
#include "catalog/pg_type.h"
#include "commands/trigger.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "lib/stringinfo.h"
#include "miscadmin.h"
#include "optimizer/optimizer.h"
#include "storage/proc.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datum.h"
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
	Oid			rootid;			/* the governing tracked table, else the
								 * partition root */
	bool		governed;		/* some tracked table governs the relation */
	Oid			row_trigger;	/* its activity_monitor_capture trigger */
	Oid			truncate_trigger;	/* its activity_monitor_truncate trigger */
	bool		valid;
	MemoryContext cxt;
	Datum		kind;			/* text */
	char	   *kindstr;
	uint64		rules_gen;		/* rules generation of the list below */
	int			nrules;			/* alert rules that apply to this table */
	AmRule	  **rules;
	Datum		table_name;		/* text, schema-qualified root name */
	int			natts;
	CaptureColumn *cols;		/* by attnum - 1 */
	AttrNumber	subject_att;	/* 0 if none */
	AttrNumber	status_att;
	bool		every_status_critical;	/* critical_statuses NULL */
	int			ncritical_statuses;
	char	  **critical_statuses;	/* statuses a transition into is critical */
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

/*
 * A schema renamed changes the qualified name of the tables in it, and sends
 * no relcache invalidation for them: forget every cached table (rare DDL).
 */
static void
capture_namespace_callback(Datum arg, int cacheid, uint32 hashvalue)
{
	capture_relcache_callback(arg, InvalidOid);
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
	CacheRegisterSyscacheCallback(NAMESPACEOID, capture_namespace_callback, (Datum) 0);
}

/* Does the name[] datum contain name? */
bool
am_name_in_array(Datum arr, const char *name)
{
	Datum	   *elems;
	bool	   *nulls;
	int			n;

	if (arr == (Datum) 0)
		return false;
	deconstruct_array(DatumGetArrayTypeP(arr), NAMEOID, NAMEDATALEN, false,
					  TYPALIGN_CHAR, &elems, &nulls, &n);
	for (int i = 0; i < n; i++)
		if (!nulls[i] && strcmp(NameStr(*DatumGetName(elems[i])), name) == 0)
			return true;
	return false;
}

/*
 * A generated column computed from a redacted column holds the secret too
 * (GENERATED ALWAYS AS (password_hash) STORED): redact it.  Generated
 * columns cannot use one another, so one pass does.
 */
static void
redact_generated(CaptureTable *ct, TupleDesc desc)
{
	if (desc->constr == NULL)
		return;
	for (int i = 0; i < desc->constr->num_defval; i++)
	{
		AttrDefault *def = &desc->constr->defval[i];
		CaptureColumn *col = &ct->cols[def->adnum - 1];
		Bitmapset  *used = NULL;
		int			k = -1;

		if (!TupleDescAttr(desc, def->adnum - 1)->attgenerated || col->skip || col->redact)
			continue;
		pull_varattnos(stringToNode(def->adbin), 1, &used);
		while ((k = bms_next_member(used, k)) >= 0)
		{
			AttrNumber	a = k + FirstLowInvalidHeapAttributeNumber;

			if (a > 0 && a <= desc->natts && ct->cols[a - 1].redact)
				col->redact = true;
		}
	}
}

/*
 * The primary key's index, deferrable or not: RelationGetPrimaryKeyIndex()
 * knows only an immediate one, and track() accepts either.
 */
static Oid
primary_key_index(Relation rel)
{
	Oid			pk = RelationGetPrimaryKeyIndex(rel);
	List	   *indexes;
	ListCell   *lc;

	if (OidIsValid(pk))
		return pk;
	indexes = RelationGetIndexList(rel);
	foreach(lc, indexes)
	{
		HeapTuple	itup = SearchSysCache1(INDEXRELID, ObjectIdGetDatum(lfirst_oid(lc)));

		if (!HeapTupleIsValid(itup))
			continue;
		if (((Form_pg_index) GETSTRUCT(itup))->indisprimary)
			pk = lfirst_oid(lc);
		ReleaseSysCache(itup);
		if (OidIsValid(pk))
			break;
	}
	list_free(indexes);
	return pk;
}

/* Build the metadata of relation rel into ct (already keyed). */
static void
build_table(CaptureTable *ct, Relation rel)
{
	TupleDesc	desc = RelationGetDescr(rel);
	AmTrackedRow cfg;
	MemoryContext old;
	Oid			pkoid;
	char	   *subject = NULL;
	char	   *status = NULL;
	bool		have;

	/* a trigger on the extension's own tables would recurse */
	if (am_is_extension_rel(ct->relid))
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_OBJECT_DEFINITION),
				 errmsg("activity_monitor cannot capture its own table \"%s\"",
						RelationGetRelationName(rel))));
	if (ct->cxt)
		MemoryContextDelete(ct->cxt);
	ct->cxt = AllocSetContextCreate(CacheMemoryContext, "activity_monitor table",
									ALLOCSET_SMALL_SIZES);
	old = MemoryContextSwitchTo(ct->cxt);

	ct->rootid = am_governing_table(ct->relid, false);
	ct->governed = OidIsValid(ct->rootid);
	if (!ct->governed)
		ct->rootid = rel->rd_rel->relispartition ?
			llast_oid(get_partition_ancestors(ct->relid)) : ct->relid;
	ct->row_trigger = ct->truncate_trigger = InvalidOid;
	for (int i = 0; rel->trigdesc && i < rel->trigdesc->numtriggers; i++)
	{
		Trigger    *t = &rel->trigdesc->triggers[i];

		if (strcmp(t->tgname, AM_CAPTURE_TRIGGER) == 0)
			ct->row_trigger = t->tgoid;
		else if (strcmp(t->tgname, AM_TRUNCATE_TRIGGER) == 0)
			ct->truncate_trigger = t->tgoid;
	}
	ct->table_name = CStringGetTextDatum(
		quote_qualified_identifier(get_namespace_name(get_rel_namespace(ct->rootid)),
								   get_rel_name(ct->rootid)));

	/* catalog snapshot: the writer needs no privilege on tracked */
	have = am_tracked_read(ct->rootid, false, ct->cxt, &cfg);
	ct->kind = have ? datumCopy(cfg.values[TC_KIND], false, -1) :
		CStringGetTextDatum("system");
	ct->kindstr = TextDatumGetCString(ct->kind);
	ct->rules_gen = 0;			/* the rule list is built on first use */
	ct->nrules = 0;
	ct->rules = NULL;
	if (have && !cfg.nulls[TC_SUBJECT])
		subject = NameStr(*DatumGetName(cfg.values[TC_SUBJECT]));
	if (have && !cfg.nulls[TC_STATUS])
		status = NameStr(*DatumGetName(cfg.values[TC_STATUS]));
	/* NULL: every transition is critical (0.1.0's behaviour, kept by the update) */
	ct->every_status_critical = have && cfg.nulls[TC_CRITICAL_STATUSES];
	ct->ncritical_statuses = 0;
	ct->critical_statuses = NULL;
	if (have && !cfg.nulls[TC_CRITICAL_STATUSES])
	{
		Datum	   *elems;
		bool	   *elnulls;
		int			n;

		deconstruct_array(DatumGetArrayTypeP(cfg.values[TC_CRITICAL_STATUSES]), TEXTOID,
						  -1, false, TYPALIGN_INT, &elems, &elnulls, &n);
		ct->critical_statuses = palloc(sizeof(char *) * Max(n, 1));
		for (int i = 0; i < n; i++)
			if (!elnulls[i])
				ct->critical_statuses[ct->ncritical_statuses++] = TextDatumGetCString(elems[i]);
	}

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
			col->skip = am_name_in_array(cfg.values[TC_IGNORE], col->name);
			col->redact = am_name_in_array(cfg.values[TC_REDACT], col->name);
			col->critical = am_name_in_array(cfg.values[TC_CRITICAL], col->name);
		}
		if (subject && strcmp(subject, col->name) == 0)
			ct->subject_att = att->attnum;
		if (status && strcmp(status, col->name) == 0)
			ct->status_att = att->attnum;
	}
	if (have)
		redact_generated(ct, desc);

	ct->nkeys = 0;
	pkoid = primary_key_index(rel);
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
 * JSON array of the values' text for a composite key (unambiguous).  A
 * redacted key column is masked here too: the key then names the row less
 * precisely, but never shows the secret.
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
		else if (ct->cols[att - 1].redact)
			escape_json(&buf, REDACTED_VALUE);
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

/*
 * Is a transition into status (the status_to recorded: text, masked if the
 * column is redacted) critical?  Into any status when the table's
 * critical_statuses is NULL, else into one it lists.
 */
static bool
status_critical(CaptureTable *ct, Datum status, bool isnull)
{
	text	   *t;
	const char *s;
	int			len;

	if (ct->every_status_critical)
		return true;
	if (isnull || ct->ncritical_statuses == 0)
		return false;
	t = DatumGetTextPP(status);
	s = VARDATA_ANY(t);
	len = VARSIZE_ANY_EXHDR(t);
	for (int i = 0; i < ct->ncritical_statuses; i++)
		if (strncmp(ct->critical_statuses[i], s, len) == 0 &&
			ct->critical_statuses[i][len] == '\0')
			return true;
	return false;
}

static inline void
set_datum(Datum *values, bool *nulls, int c, Datum d, bool isnull)
{
	values[c] = d;
	nulls[c] = isnull;
}

/* The rows of one captured event, for the rule document. */
typedef struct RowEvent
{
	TupleTableSlot *oldslot;
	TupleTableSlot *newslot;
	bool	   *changed;		/* UPDATE only: by attnum - 1 */
} RowEvent;

/* Capture one row event; false when an UPDATE changed nothing recorded. */
static bool
capture_row(TriggerData *td, CaptureTable *ct, Datum *values, bool *nulls, RowEvent *re)
{
	TriggerEvent ev = td->tg_event;
	TupleTableSlot *oldslot = NULL;
	TupleTableSlot *newslot = NULL;
	TupleTableSlot *keyslot;
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
		re->changed = changed;
		set_datum(values, nulls, AC_ACTION, action_text[ACT_UPDATE], false);
		set_datum(values, nulls, AC_OLD_VALUES, row_jsonb(ct, oldslot, changed), false);
		set_datum(values, nulls, AC_NEW_VALUES, row_jsonb(ct, newslot, changed), false);
		if (ct->status_att && changed[ct->status_att - 1])
		{
			values[AC_STATUS_FROM] = column_text(ct, oldslot, ct->status_att, &nulls[AC_STATUS_FROM]);
			values[AC_STATUS_TO] = column_text(ct, newslot, ct->status_att, &nulls[AC_STATUS_TO]);
			if (status_critical(ct, values[AC_STATUS_TO], nulls[AC_STATUS_TO]))
				critical = true;
		}
		keyslot = newslot;
	}

	re->oldslot = oldslot;
	re->newslot = newslot;
	values[AC_ROW_KEY] = row_key(ct, keyslot, &nulls[AC_ROW_KEY]);
	if (ct->subject_att)
		values[AC_SUBJECT_ID] = column_text(ct, keyslot, ct->subject_att, &nulls[AC_SUBJECT_ID]);
	set_datum(values, nulls, AC_CRITICAL, BoolGetDatum(critical), false);
	return true;
}

/*
 * What the event document needs of the rows (see am_event_document in
 * rules.c): the whole old and new rows (ignored columns left out, redacted
 * ones masked) and the names of the changed columns (every recorded column
 * for an insert or a delete, none for a truncate).
 */
static void
event_rows(CaptureTable *ct, Datum *values, RowEvent *re, AmEventRows *rows)
{
	/* insert and delete recorded the whole row already; an update only the diff */
	rows->old_row = re->oldslot == NULL ? (Datum) 0 :
		re->changed == NULL ? values[AC_OLD_VALUES] : row_jsonb(ct, re->oldslot, NULL);
	rows->new_row = re->newslot == NULL ? (Datum) 0 :
		re->changed == NULL ? values[AC_NEW_VALUES] : row_jsonb(ct, re->newslot, NULL);
	rows->nchanged = 0;
	rows->source = NULL;
	rows->changed = palloc(sizeof(char *) * Max(ct->natts, 1));
	if (re->oldslot || re->newslot)
	{
		for (int i = 0; i < ct->natts; i++)
		{
			if (ct->cols[i].skip || (re->changed && !re->changed[i]))
				continue;
			rows->changed[rows->nchanged++] = ct->cols[i].name;
		}
	}
}

/*
 * A TRUNCATE: one event per truncated table and statement.  TRUNCATE of a
 * partitioned table fires its trigger first, then those of the partitions
 * below it: those are skipped.  TRUNCATE of a partition records the
 * governing table's name and the partition in old_values.
 */
static bool
capture_truncate(TriggerData *td, CaptureTable *ct, Datum *values, bool *nulls)
{
	static LocalTransactionId last_lxid = InvalidLocalTransactionId;
	static CommandId last_cid = InvalidCommandId;
	static List *recorded = NIL;	/* this command's, in TopTransactionContext */
	LocalTransactionId lxid = MyProc->lxid;
	CommandId	cid = GetCurrentCommandId(false);
	MemoryContext old;

	if (last_lxid != lxid || last_cid != cid)
	{
		last_lxid = lxid;
		last_cid = cid;
		recorded = NIL;
	}
	if (ct->relid != ct->rootid)
	{
		JsonbParseState *state = NULL;
		JsonbValue	v;
		char	   *name;
		ListCell   *lc;

		foreach(lc, get_partition_ancestors(ct->relid))
		{
			if (list_member_oid(recorded, lfirst_oid(lc)))
				return false;
		}
		name = quote_qualified_identifier(get_namespace_name(RelationGetNamespace(td->tg_relation)),
										  RelationGetRelationName(td->tg_relation));
		pushJsonbValue(&state, WJB_BEGIN_OBJECT, NULL);
		v.type = jbvString;
		v.val.string.val = "partition";
		v.val.string.len = strlen("partition");
		pushJsonbValue(&state, WJB_KEY, &v);
		v.val.string.val = name;
		v.val.string.len = strlen(name);
		pushJsonbValue(&state, WJB_VALUE, &v);
		set_datum(values, nulls, AC_OLD_VALUES,
				  JsonbPGetDatum(JsonbValueToJsonb(pushJsonbValue(&state, WJB_END_OBJECT, NULL))),
				  false);
	}
	old = MemoryContextSwitchTo(TopTransactionContext);
	recorded = lappend_oid(recorded, ct->relid);
	MemoryContextSwitchTo(old);
	set_datum(values, nulls, AC_ACTION, action_text[ACT_TRUNCATE], false);
	set_datum(values, nulls, AC_CRITICAL, BoolGetDatum(true), false);
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
	RowEvent	re = {0};

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
	ct = get_table(td->tg_relation);
	if (!ct->governed ||
		td->tg_trigger->tgoid != (TRIGGER_FIRED_BY_TRUNCATE(ev) ? ct->truncate_trigger :
								  ct->row_trigger))
		return PointerGetDatum(NULL);

	memset(nulls, true, sizeof(nulls));
	if (TRIGGER_FIRED_BY_TRUNCATE(ev))
	{
		if (!capture_truncate(td, ct, values, nulls))
			return PointerGetDatum(NULL);
	}
	else if (!capture_row(td, ct, values, nulls, &re))
		return PointerGetDatum(NULL);

	/* the clock, not the statement start: a procedure that commits as it
	 * goes, or a long batch, must not look like one instant */
	set_datum(values, nulls, AC_OCCURRED_AT, TimestampTzGetDatum(GetCurrentTimestamp()), false);
	set_datum(values, nulls, AC_KIND, ct->kind, false);
	set_datum(values, nulls, AC_TABLE_NAME, ct->table_name, false);
	am_fill_actor(values, nulls);
	/* indexed: a value too long for an index entry must not fail the write */
	if (!nulls[AC_SUBJECT_ID])
		values[AC_SUBJECT_ID] = am_indexable_text(values[AC_SUBJECT_ID]);
	if (!nulls[AC_ACTOR_ID])
		values[AC_ACTOR_ID] = am_indexable_text(values[AC_ACTOR_ID]);
	set_datum(values, nulls, AC_ID, Int64GetDatum(am_sink_next_id()), false);

	if (ct->rules_gen != am_rules_generation())
	{
		if (ct->rules)
			pfree(ct->rules);
		ct->nrules = am_rules_applicable(ct->rootid, ct->kindstr, &ct->rules, ct->cxt);
		ct->rules_gen = am_rules_generation();
	}
	if (ct->nrules > 0)
	{
		AmEventRows rows;

		event_rows(ct, values, &re, &rows);
		if (am_rules_evaluate(ct->rules, ct->nrules, am_event_document(values, nulls, &rows),
							  values, nulls))
			am_wake_at_commit();
	}
	am_sink_insert(values, nulls);
	return PointerGetDatum(NULL);
}
