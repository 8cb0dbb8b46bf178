/*-------------------------------------------------------------------------
 *
 * seal.c
 *	  Tamper evidence: the worker seals committed events into a hash chain
 *	  (activity_monitor.seal), verify() recomputes it from the table alone.
 *
 * A sealing round (_seal(), called by the worker once per seal_interval)
 * takes the events committed since the last round the way the alert
 * engine does (PgQ's snapshot pair: visible in a new txid snapshot and not
 * in the last sealed one), in id order, and writes one seal row per
 * max_events of them.  A seal row holds:
 *
 *   ids           the exact set of its events' ids (an int8multirange:
 *                 consecutive ids merged), so membership is a function of
 *                 the id alone and survives dumps, merges and restores;
 *   fingerprints  the first 16 bytes of each event's SHA-256 digest, in id
 *                 order, so that verify() names the event that changed;
 *   horizon       a lower bound of its events' occurred_at: no transaction
 *                 still able to commit an event into it had started earlier
 *                 (the oldest xact_start of the database's transactions that
 *                 held an id when the previous snapshot was taken, minus a
 *                 second); an event dated before it was written afterwards,
 *                 back-dated;
 *   detail        {"snap_at": the clock read just before its snapshot, minus
 *                 a second}: the events of transactions that get their id
 *                 later are dated after it (the next round reads from there);
 *   prev_hash and hash: SHA-256 over every other column, chained.
 *
 * Event digest, format 1: SHA-256 of the byte 0x01 followed by the 23
 * columns of the activity row in the documented order (README, "Tamper
 * evidence"), each as 0x00 (NULL) or 0x01, a 4-byte big-endian length and
 * the value's bytes: bigint, int and timestamptz big-endian (timestamptz
 * as microseconds since 2000-01-01 UTC), boolean one byte, text its bytes
 * in the database encoding, jsonb, inet and bigint[] their binary form as
 * PostgreSQL stores it (uncompressed), anything else its text output.
 * Format 2, an event received from another cluster (source not NULL, see
 * receive.c): the byte 0x02, the same 23 columns, then source and
 * source_id encoded the same way.  The seal hash is the same encoding over the seal row's columns (but
 * hash), after the byte 0x53.
 *
 * Retention that drops or detaches a partition first appends a seal of kind
 * 'retention' (_seal_retired()) with the ids, count and time range that
 * leave: verify() then expects them gone.  Sealing adds nothing to the
 * write path: it reads committed rows in the worker.
 *
 * IDENTIFICATION
 *	  src/seal.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/heapam.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/twophase.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/partition.h"
#include "catalog/pg_class.h"
#include "catalog/pg_operator.h"
#include "commands/dbcommands.h"
#include "catalog/pg_type.h"
#include "common/cryptohash.h"
#include "common/int.h"
#include "executor/spi.h"
#include "executor/tuptable.h"
#include "fmgr.h"
#include "funcapi.h"
#include "miscadmin.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "utils/tuplesort.h"

PG_FUNCTION_INFO_V1(activity_monitor_seal);
PG_FUNCTION_INFO_V1(activity_monitor_seal_retired);
PG_FUNCTION_INFO_V1(activity_monitor_verify);
PG_FUNCTION_INFO_V1(activity_monitor_verify_head);

#define SEAL_FORMAT 1
#define SEAL_FORMAT_RECEIVED 2	/* an event with a source (fan-in) */
#define SEAL_HASH_LEN 32
#define SEAL_FP_LEN 16			/* bytes of an event's digest a seal keeps */
#define SEAL_FETCH 1000
#define SEAL_WORK_MEM "64MB"	/* work_mem of a round (DigestSort's too) */

/* The seal table's columns, in order; the hash covers all but the last. */
#define SEAL_COLUMNS \
	"id, sealed_at, kind, snap_from, snap_to, horizon, next_horizon, event_count, " \
	"ids, min_at, max_at, fingerprints, detail, prev_hash, hash"
#define SEAL_NCOLS 15
#define SEAL_NHASHED 14

/* How one value of a type is encoded (see the file header). */
typedef struct EncType
{
	Oid			typid;
	FmgrInfo	out;			/* for the text-output encoding */
	bool		has_out;
} EncType;

static void
enc_type_init(EncType *t, Oid typid)
{
	t->typid = typid;
	t->has_out = false;
	switch (typid)
	{
		case INT8OID:
		case INT4OID:
		case TIMESTAMPTZOID:
		case BOOLOID:
		case NAMEOID:
		case TEXTOID:
		case JSONBOID:
		case INETOID:
		case BYTEAOID:
		case INT8ARRAYOID:
			break;
		default:
			{
				Oid			f;
				bool		varlena;

				getTypeOutputInfo(typid, &f, &varlena);
				fmgr_info(f, &t->out);
				t->has_out = true;
			}
	}
}

/*
 * The encoder writes straight into the buffer (enlarged once per value):
 * it runs for every column of every event sealed or verified.
 */
static inline char *
put_be(char *p, uint64 v, int n)
{
	for (int i = n - 1; i >= 0; i--)
		*p++ = (char) ((v >> (i * 8)) & 0xff);
	return p;
}

/* 0x01, the 4-byte length and len bytes. */
static inline void
put_bytes(StringInfo buf, const char *data, uint32 len)
{
	char	   *p;

	enlargeStringInfo(buf, 5 + len);
	p = buf->data + buf->len;
	*p++ = 1;
	p = put_be(p, len, 4);
	memcpy(p, data, len);
	buf->len += 5 + len;
	buf->data[buf->len] = '\0';
}

/* 0x01, the length n and the n-byte big-endian integer v. */
static inline void
put_int(StringInfo buf, uint64 v, int n)
{
	char	   *p;

	enlargeStringInfo(buf, 5 + n);
	p = buf->data + buf->len;
	*p++ = 1;
	p = put_be(p, n, 4);
	(void) put_be(p, v, n);
	buf->len += 5 + n;
	buf->data[buf->len] = '\0';
}

/*
 * A value longer than this goes into the hash straight from the datum, not
 * through the buffer (which could not hold a row near 1 GB).
 */
#define SEAL_DIRECT 65536

/* The hash being computed while encoding: the buffer feeds it. */
static pg_cryptohash_ctx *enc_ctx = NULL;

static void
enc_flush(StringInfo buf)
{
	if (buf->len > 0 &&
		pg_cryptohash_update(enc_ctx, (uint8 *) buf->data, buf->len) < 0)
		elog(ERROR, "could not compute a SHA-256 hash: %s", pg_cryptohash_error(enc_ctx));
	resetStringInfo(buf);
}

/* 0x01, the 4-byte length and len bytes, big ones hashed directly. */
static void
put_long(StringInfo buf, const char *data, uint32 len)
{
	char		head[5];

	if (len < SEAL_DIRECT)
	{
		put_bytes(buf, data, len);
		return;
	}
	head[0] = 1;
	(void) put_be(head + 1, len, 4);
	appendBinaryStringInfo(buf, head, 5);
	enc_flush(buf);
	if (pg_cryptohash_update(enc_ctx, (const uint8 *) data, len) < 0)
		elog(ERROR, "could not compute a SHA-256 hash: %s", pg_cryptohash_error(enc_ctx));
}

/* Append one value's encoding to buf (see enc_ctx). */
static void
enc_value(StringInfo buf, Datum v, bool isnull, const EncType *t)
{
	if (isnull)
	{
		appendStringInfoChar(buf, 0);
		return;
	}
	switch (t->typid)
	{
		case INT8OID:
		case TIMESTAMPTZOID:
			put_int(buf, (uint64) DatumGetInt64(v), 8);
			break;
		case INT4OID:
			put_int(buf, (uint32) DatumGetInt32(v), 4);
			break;
		case BOOLOID:
			put_int(buf, DatumGetBool(v) ? 1 : 0, 1);
			break;
		case NAMEOID:
			{
				const char *s = NameStr(*DatumGetName(v));

				put_bytes(buf, s, strlen(s));
				break;
			}
		case TEXTOID:
		case JSONBOID:
		case INETOID:
		case BYTEAOID:
		case INT8ARRAYOID:
			{
				struct varlena *d = pg_detoast_datum_packed((struct varlena *) DatumGetPointer(v));

				put_long(buf, VARDATA_ANY(d), VARSIZE_ANY_EXHDR(d));
				if ((Pointer) d != DatumGetPointer(v))
					pfree(d);
				break;
			}
		default:
			{
				char	   *s = OutputFunctionCall((FmgrInfo *) &t->out, v);

				put_long(buf, s, strlen(s));
				pfree(s);
			}
	}
}

/* Start a hash: the values encoded into buf from now on feed ctx. */
static void
enc_begin(pg_cryptohash_ctx *ctx, StringInfo buf)
{
	if (pg_cryptohash_init(ctx) < 0)
		elog(ERROR, "could not compute a SHA-256 hash: %s", pg_cryptohash_error(ctx));
	enc_ctx = ctx;
	resetStringInfo(buf);
}

/* The SHA-256 of everything encoded since enc_begin, into out. */
static void
enc_end(StringInfo buf, uint8 *out)
{
	enc_flush(buf);
	if (pg_cryptohash_final(enc_ctx, out, SEAL_HASH_LEN) < 0)
		elog(ERROR, "could not compute a SHA-256 hash: %s", pg_cryptohash_error(enc_ctx));
}

static char *
hex(const uint8 *p, int n)
{
	char	   *s = palloc(n * 2 + 1);

	for (int i = 0; i < n; i++)
		sprintf(s + i * 2, "%02x", p[i]);
	return s;
}

static bytea *
make_bytea(const void *p, Size n)
{
	bytea	   *b = palloc(VARHDRSZ + n);

	SET_VARSIZE(b, VARHDRSZ + n);
	memcpy(VARDATA(b), p, n);
	return b;
}

/*
 * An event's columns as a reader of one relation (a partition, or an SPI
 * result) finds them: attribute numbers and encodings, in canonical order.
 */
typedef struct EventReader
{
	AttrNumber	att[AC_NUM_COLUMNS];
	EncType		enc[AC_NUM_COLUMNS];
	/* source and source_id (fan-in), -1 where the relation lacks them */
	AttrNumber	source_att;
	AttrNumber	source_id_att;
	EncType		source_enc;
	EncType		source_id_enc;
} EventReader;

/* what a read of EVENT_COLUMNS returns: the activity columns and the source's */
#define EVENT_NCOLS (AC_NUM_COLUMNS + 2)

/* The 0-based attribute of column name in desc, -1 if none. */
static AttrNumber
reader_att(TupleDesc desc, const char *name)
{
	for (int i = 0; i < desc->natts; i++)
	{
		Form_pg_attribute a = TupleDescAttr(desc, i);

		if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
			return i;
	}
	return -1;
}

static void
reader_init(EventReader *r, TupleDesc desc)
{
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
	{
		const char *name = am_activity_column_name(c);
		int			i;

		for (i = 0; i < desc->natts; i++)
		{
			Form_pg_attribute a = TupleDescAttr(desc, i);

			if (!a->attisdropped && strcmp(NameStr(a->attname), name) == 0)
				break;
		}
		if (i == desc->natts)
			elog(ERROR, "activity_monitor.activity has no column \"%s\"", name);
		r->att[c] = i;
		enc_type_init(&r->enc[c], TupleDescAttr(desc, i)->atttypid);
	}
	r->source_att = reader_att(desc, "source");
	r->source_id_att = reader_att(desc, "source_id");
	if (r->source_att >= 0)
		enc_type_init(&r->source_enc, TupleDescAttr(desc, r->source_att)->atttypid);
	if (r->source_id_att >= 0)
		enc_type_init(&r->source_id_enc, TupleDescAttr(desc, r->source_id_att)->atttypid);
}

/* The digest of one event (values/nulls indexed by attribute, 0-based). */
static void
event_digest(pg_cryptohash_ctx *ctx, StringInfo buf, const EventReader *r,
			 Datum *values, bool *nulls, uint8 *out)
{
	bool		received = r->source_att >= 0 && r->source_id_att >= 0 &&
		!nulls[r->source_att];

	enc_begin(ctx, buf);
	appendStringInfoChar(buf, received ? SEAL_FORMAT_RECEIVED : SEAL_FORMAT);
	for (int c = 0; c < AC_NUM_COLUMNS; c++)
		enc_value(buf, values[r->att[c]], nulls[r->att[c]], &r->enc[c]);
	if (received)
	{
		enc_value(buf, values[r->source_att], false, &r->source_enc);
		enc_value(buf, values[r->source_id_att], nulls[r->source_id_att], &r->source_id_enc);
	}
	enc_end(buf, out);
}

/* The hash of a seal row: its first SEAL_NHASHED columns. */
static void
seal_hash(pg_cryptohash_ctx *ctx, StringInfo buf, Datum *values, bool *nulls,
		  const EncType *enc, uint8 *out)
{
	enc_begin(ctx, buf);
	appendStringInfoChar(buf, 'S');
	for (int c = 0; c < SEAL_NHASHED; c++)
		enc_value(buf, values[c], nulls[c], &enc[c]);
	enc_end(buf, out);
}

static const Oid seal_types[SEAL_NCOLS] = {
	INT8OID, TIMESTAMPTZOID, TEXTOID, TXID_SNAPSHOTOID, TXID_SNAPSHOTOID,
	TIMESTAMPTZOID, TIMESTAMPTZOID, INT8OID, INT8MULTIRANGEOID, TIMESTAMPTZOID,
	TIMESTAMPTZOID, BYTEAOID, JSONBOID, BYTEAOID, BYTEAOID
};

static void
seal_enc_init(EncType *enc)
{
	for (int c = 0; c < SEAL_NCOLS; c++)
		enc_type_init(&enc[c], seal_types[c]);
}

static Datum
type_input(Oid typid, const char *s)
{
	Oid			f;
	Oid			ioparam;

	getTypeInputInfo(typid, &f, &ioparam);
	return OidInputFunctionCall(f, (char *) s, ioparam, -1);
}

/* ---------------------------------------------------------------------------
 * Sealing
 * ---------------------------------------------------------------------------
 */

/* The chain's head as a sealer appends to it. */
typedef struct SealHead
{
	int64		id;				/* 0: no seal yet */
	TimestampTz sealed_at;
	uint8		hash[SEAL_HASH_LEN];
} SealHead;

/* One seal being filled. */
typedef struct SealBuild
{
	int64		count;
	int64		range_lo;		/* the current range of ids, [lo, hi) */
	int64		range_hi;
	StringInfoData ids;			/* int8multirange text */
	StringInfoData fps;			/* fingerprints */
	TimestampTz min_at;
	TimestampTz max_at;
} SealBuild;

static void
build_reset(SealBuild *b)
{
	b->count = 0;
	resetStringInfo(&b->ids);
	resetStringInfo(&b->fps);
	appendStringInfoChar(&b->ids, '{');
}

static void
build_add(SealBuild *b, int64 id, TimestampTz at, const uint8 *digest)
{
	if (b->count > 0 && id == b->range_hi)
		b->range_hi++;
	else
	{
		if (b->count > 0)
			appendStringInfo(&b->ids, "%s[" INT64_FORMAT "," INT64_FORMAT ")",
							 b->ids.len > 1 ? "," : "", b->range_lo, b->range_hi);
		b->range_lo = id;
		b->range_hi = id + 1;
	}
	if (b->count == 0 || at < b->min_at)
		b->min_at = at;
	if (b->count == 0 || at > b->max_at)
		b->max_at = at;
	appendBinaryStringInfo(&b->fps, (const char *) digest, SEAL_FP_LEN);
	b->count++;
}

static void
build_close(SealBuild *b)
{
	appendStringInfo(&b->ids, "%s[" INT64_FORMAT "," INT64_FORMAT ")}",
					 b->ids.len > 1 ? "," : "", b->range_lo, b->range_hi);
}

/*
 * A round's events in id order: the query reads them in the time index's
 * order, and only (id, occurred_at, fingerprint) of each is sorted, not the
 * whole row (which, sorted by the query, spilled to disk at a few seconds
 * of a busy platform's events and was half of the worker's time).
 */
typedef struct DigestSort
{
	TupleTableSlot *put;		/* virtual, what goes in */
	TupleTableSlot *slot;		/* what comes out */
	Tuplesortstate *sort;
	bytea	   *fp;				/* the fingerprint being put */
} DigestSort;

static void
digest_sort_begin(DigestSort *ds)
{
	AttrNumber	key = 1;
	Oid			op = Int8LessOperator;
	Oid			coll = InvalidOid;
	bool		nulls_first = false;
	TupleDesc	desc = CreateTemplateTupleDesc(3);

	TupleDescInitEntry(desc, 1, "id", INT8OID, -1, 0);
	TupleDescInitEntry(desc, 2, "occurred_at", TIMESTAMPTZOID, -1, 0);
	TupleDescInitEntry(desc, 3, "fingerprint", BYTEAOID, -1, 0);
	ds->put = MakeSingleTupleTableSlot(desc, &TTSOpsVirtual);
	ds->slot = MakeSingleTupleTableSlot(desc, &TTSOpsMinimalTuple);
	ds->sort = tuplesort_begin_heap(desc, 1, &key, &op, &coll, &nulls_first,
									work_mem, NULL, TUPLESORT_NONE);
	ds->fp = palloc(VARHDRSZ + SEAL_FP_LEN);
	SET_VARSIZE(ds->fp, VARHDRSZ + SEAL_FP_LEN);
}

static void
digest_put(DigestSort *ds, int64 id, Datum at, const uint8 *digest)
{
	TupleTableSlot *put = ds->put;

	memcpy(VARDATA(ds->fp), digest, SEAL_FP_LEN);
	ExecClearTuple(put);
	put->tts_values[0] = Int64GetDatum(id);
	put->tts_values[1] = at;
	put->tts_values[2] = PointerGetDatum(ds->fp);
	memset(put->tts_isnull, 0, 3 * sizeof(bool));
	ExecStoreVirtualTuple(put);
	/* copied into the sort's memory */
	tuplesort_puttupleslot(ds->sort, put);
}

static void
digest_sort_end(DigestSort *ds)
{
	ExecDropSingleTupleTableSlot(ds->put);
	ExecDropSingleTupleTableSlot(ds->slot);
	tuplesort_end(ds->sort);
	pfree(ds->fp);
}

static SPIPlanPtr plan_insert = NULL;

/*
 * Append one seal row after head (values 1..13 set by the caller, nulls
 * likewise): sets its id, prev_hash and hash, inserts it, moves head.
 */
static void
seal_append(pg_cryptohash_ctx *ctx, StringInfo buf, SealHead *head,
			Datum *values, char *nulls)
{
	EncType		enc[SEAL_NCOLS];
	bool		isnull[SEAL_NCOLS];
	uint8		prev[SEAL_HASH_LEN];
	uint8		h[SEAL_HASH_LEN];
	Oid			types[SEAL_NCOLS];
	int			rc;

	seal_enc_init(enc);
	values[0] = Int64GetDatum(head->id + 1);
	nulls[0] = ' ';
	if (head->id == 0)
		memset(prev, 0, SEAL_HASH_LEN);
	else
		memcpy(prev, head->hash, SEAL_HASH_LEN);
	values[13] = PointerGetDatum(make_bytea(prev, SEAL_HASH_LEN));
	nulls[13] = ' ';
	for (int c = 0; c < SEAL_NHASHED; c++)
		isnull[c] = nulls[c] == 'n';
	seal_hash(ctx, buf, values, isnull, enc, h);
	values[14] = PointerGetDatum(make_bytea(h, SEAL_HASH_LEN));
	nulls[14] = ' ';
	memcpy(types, seal_types, sizeof(types));
	if (plan_insert == NULL)
	{
		plan_insert = SPI_prepare("INSERT INTO activity_monitor.seal (" SEAL_COLUMNS ") "
								  "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
								  SEAL_NCOLS, types);
		if (plan_insert == NULL || SPI_keepplan(plan_insert) != 0)
			elog(ERROR, "could not prepare the seal insert");
	}
	rc = SPI_execute_plan(plan_insert, values, nulls, false, 0);
	if (rc != SPI_OK_INSERT)
		elog(ERROR, "could not insert a seal: %s", SPI_result_code_string(rc));
	head->id++;
	head->sealed_at = DatumGetTimestampTz(values[1]);
	memcpy(head->hash, h, SEAL_HASH_LEN);
}

/* Lock the chain against other sealers and read its head. */
static void
head_lock(SealHead *head)
{
	bool		isnull;

	if (SPI_execute("LOCK TABLE activity_monitor.seal IN SHARE ROW EXCLUSIVE MODE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock activity_monitor.seal");
	if (SPI_execute("SELECT id, hash, sealed_at FROM activity_monitor.seal ORDER BY id DESC LIMIT 1", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read activity_monitor.seal");
	head->id = 0;
	if (SPI_processed == 1)
	{
		bytea	   *b;

		head->id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		b = DatumGetByteaPP(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull));
		if (isnull || VARSIZE_ANY_EXHDR(b) != SEAL_HASH_LEN)
			elog(ERROR, "activity_monitor.seal %lld has no valid hash", (long long) head->id);
		memcpy(head->hash, VARDATA_ANY(b), SEAL_HASH_LEN);
		head->sealed_at = DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
	}
}

static char *
head_text(SealHead *head)
{
	return psprintf("seal " INT64_FORMAT " at %s hash %s", head->id,
					timestamptz_to_str(head->sealed_at), hex(head->hash, SEAL_HASH_LEN));
}

/* The snapshot pair a sealing round covers, and what its seals record. */
typedef struct SealPair
{
	char	   *from;			/* NULL: everything visible in "to" */
	char	   *to;
	Datum		horizon;		/* lower bound of the events' occurred_at */
	bool		horizon_null;
	Datum		next_horizon;	/* the same for the pair after this one */
	Datum		snap_at;		/* "from" taken no earlier than this, or 0 */
	Datum		next_snap_at;	/* "to" taken no earlier than this */
	bool		restart;		/* the first seal after a restore elsewhere */
} SealPair;

/* Write the seal of the events in b (one of the pair's), and empty b. */
static void
pair_seal(pg_cryptohash_ctx *ctx, StringInfo buf, SealHead *head, SealPair *pair,
		  SealBuild *b, MemoryContext row_cxt)
{
	Datum		v[SEAL_NCOLS];
	char		nl[SEAL_NCOLS];
	MemoryContext old;

	build_close(b);
	/* the row's values go with it: a round may write thousands of seals */
	old = MemoryContextSwitchTo(row_cxt);
	memset(nl, ' ', sizeof(nl));
	v[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	v[2] = CStringGetTextDatum("events");
	v[3] = pair->from ? type_input(TXID_SNAPSHOTOID, pair->from) : (Datum) 0;
	nl[3] = pair->from ? ' ' : 'n';
	v[4] = type_input(TXID_SNAPSHOTOID, pair->to);
	v[5] = pair->horizon;
	nl[5] = pair->horizon_null ? 'n' : ' ';
	v[6] = pair->next_horizon;
	v[7] = Int64GetDatum(b->count);
	v[8] = type_input(INT8MULTIRANGEOID, b->ids.data);
	v[9] = TimestampTzGetDatum(b->min_at);
	v[10] = TimestampTzGetDatum(b->max_at);
	v[11] = PointerGetDatum(make_bytea(b->fps.data, b->fps.len));
	v[12] = type_input(JSONBOID,
					   psprintf("{\"snap_at\": \"%s\"%s}",
								timestamptz_to_str(DatumGetTimestampTz(pair->next_snap_at)),
								pair->restart ? ", \"restart\": \"transaction ids went back: restored into another cluster\"" : ""));
	pair->restart = false;
	seal_append(ctx, buf, head, v, nl);
	MemoryContextSwitchTo(old);
	MemoryContextReset(row_cxt);
	build_reset(b);
}

#define EVENT_COLUMNS \
	"a.id, a.occurred_at, a.kind, a.action, a.table_name, a.row_key, a.subject_id, " \
	"a.actor_type, a.actor_id, a.actor_reason, a.actor_context, a.status_from, a.status_to, " \
	"a.critical, a.old_values, a.new_values, a.db_user, a.application_name, a.client_addr, " \
	"a.backend_pid, a.txid, a.matched, a.rule_errors, a.source, a.source_id"

/*
 * The horizon of a snapshot about to be taken, here and for the alert
 * batches (alerts.c): the oldest time an event it will not see can carry,
 * when captured in this database.  Such an event belongs to a transaction
 * that gets its id after now (captured after now), or to one that holds an
 * id now and started no earlier than the oldest of those: the clock, or
 * that start.  A session holding a transaction open without writing does
 * not hold it back.  *unknown says a start is not known (a prepared
 * transaction, or track_activities off): the caller goes no later than
 * its previous horizon then (that transaction ran, or had not begun, when
 * it was read).  From the backends' status (what pg_stat_activity shows)
 * as it is now, not the copy a transaction keeps of what it first read: in
 * C, as this runs before every alert batch (a query of pg_stat_activity was
 * a tenth of the worker's time under pgbench).  In SPI (pg_prepared_xacts,
 * only when the server has slots for prepared transactions).  PostgreSQL
 * 15's pgstat_fetch_stat_local_beentry() takes an index 1..n (16 made it a
 * backend id: a port must change the loop).
 */
TimestampTz
am_xact_horizon(bool *unknown)
{
	TimestampTz horizon = GetCurrentTimestamp();
	int			n;

	*unknown = false;
	/* pg_stat_activity's rows, read afresh: xact_start of those holding an id */
	pgstat_clear_backend_activity_snapshot();
	n = pgstat_fetch_stat_numbackends();
	for (int i = 1; i <= n; i++)
	{
		LocalPgBackendStatus *l = pgstat_fetch_stat_local_beentry(i);

		if (l == NULL || l->backendStatus.st_databaseid != MyDatabaseId ||
			!TransactionIdIsValid(l->backend_xid))
			continue;
		if (l->backendStatus.st_xact_start_timestamp == 0)
			*unknown = true;	/* track_activities off */
		else if (l->backendStatus.st_xact_start_timestamp < horizon)
			horizon = l->backendStatus.st_xact_start_timestamp;
	}
	/* a prepared transaction of this database (none can exist without slots) */
	if (!*unknown && max_prepared_xacts > 0)
	{
		static SPIPlanPtr plan = NULL;
		bool		isnull;

		if (plan == NULL)
		{
			SPIPlanPtr	p = SPI_prepare("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_prepared_xacts p "
										"WHERE p.database OPERATOR(pg_catalog.=) pg_catalog.current_database())",
										0, NULL);

			if (p == NULL || SPI_keepplan(p) != 0)
				elog(ERROR, "could not prepare the horizon's query");
			plan = p;
		}
		if (SPI_execute_plan(plan, NULL, NULL, true, 1) != SPI_OK_SELECT || SPI_processed != 1)
			elog(ERROR, "could not read the prepared transactions");
		*unknown = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	}
	return horizon;
}

/*
 * activity_monitor._seal(max_events int DEFAULT 10000, OUT seals int,
 * OUT events bigint, OUT head text): one sealing round (see the file
 * header).  Superuser only (the worker's); returns the seals written, the
 * events they cover and the chain's head ("seal N at T hash H", NULL while
 * there is no seal).
 */
Datum
activity_monitor_seal(PG_FUNCTION_ARGS)
{
	int32		max_events = PG_GETARG_INT32(0);
	TupleDesc	rdesc;
	Datum		result[3];
	bool		rnulls[3] = {false, false, false};
	SealHead	head;
	SealPair	pair = {NULL, NULL, (Datum) 0, true, (Datum) 0, (Datum) 0, (Datum) 0, false};
	bool		snap_at_null = true;
	bool		xip_committed = false;
	int64		min_id = 0;
	bool		isnull;
	Portal		portal;
	pg_cryptohash_ctx *ctx;
	StringInfoData buf;
	SealBuild	b;
	EventReader reader;
	bool		reader_ready = false;
	int			seals = 0;
	int64		events = 0;
	int64		last_id = 0;
	int			level;
	MemoryContext fetch_cxt;
	MemoryContext row_cxt;
	MemoryContext caller = CurrentMemoryContext;
	char	   *head_str;
	int64		alert_xmin;
	DigestSort	sorted;

	if (get_call_result_type(fcinfo, NULL, &rdesc) != TYPEFUNC_COMPOSITE)
		elog(ERROR, "return type must be a row type");
	if (max_events < 1)
		ereport(ERROR,
				(errcode(ERRCODE_INVALID_PARAMETER_VALUE),
				 errmsg("max_events must be positive")));
	/* the snapshots below are taken statement by statement, in order */
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("a sealing round must run at isolation level READ COMMITTED")));
	SPI_connect();

	/*
	 * Where the alert engine is (for the notes of received events, below),
	 * read first: alert_state is the table the worker's duties lock first,
	 * as DROP EXTENSION's callers do (a later lock on it could deadlock).
	 */
	if (SPI_execute("SELECT coalesce(pg_catalog.min(pg_catalog.txid_snapshot_xmin(a.last_snapshot)), 0) "
					"FROM activity_monitor.alert_state a", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read activity_monitor.alert_state");
	alert_xmin = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	/* a dump being restored brings its own seals, after the events */
	if (SPI_execute("SELECT activity_monitor._restoring() "
					"OR NOT EXISTS (SELECT 1 FROM activity_monitor.config)", true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read activity_monitor.config");
	if (strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0)
	{
		SPI_finish();
		result[0] = Int32GetDatum(0);
		result[1] = Int64GetDatum(0);
		rnulls[2] = true;
		PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(rdesc), result, rnulls)));
	}
	level = NewGUCNestLevel();
	(void) set_config_option("enable_seqscan", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	(void) set_config_option("jit", "off", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/*
	 * Planned with the bounds' values, whatever postgresql.conf says: the
	 * partitions they name only.
	 */
	(void) set_config_option("plan_cache_mode", "force_custom_plan", PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	/* a pair's read of many partitions (and the digests' sort, DigestSort) */
	(void) set_config_option("work_mem", SEAL_WORK_MEM, PGC_USERSET, PGC_S_SESSION,
							 GUC_ACTION_SAVE, true, 0, false);
	head_lock(&head);

	/* the pair's first snapshot: the last events seal's second */
	if (SPI_execute("SELECT snap_to::text, next_horizon, "
					"  pg_catalog.txid_snapshot_xmax(snap_to) > pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()), "
					"  (detail->>'snap_at')::timestamptz "
					"FROM activity_monitor.seal WHERE kind = 'events' ORDER BY id DESC LIMIT 1",
					false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not read activity_monitor.seal");
	if (SPI_processed == 1)
	{
		pair.from = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
		pair.horizon = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &pair.horizon_null);
		pair.snap_at = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &snap_at_null);
		if (snap_at_null)
			pair.snap_at = pair.horizon;	/* sealed before snap_at was kept */
		pair.restart = DatumGetBool(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull));
		/* no horizon to read from (a seal row written by hand): start again */
		pair.restart |= pair.horizon_null;
	}
	if (pair.restart)
	{
		/*
		 * Transaction ids went back: the database was restored into another
		 * cluster.  Its old snapshots say nothing of the new ids: seal what
		 * is visible now and not sealed yet (ids above every sealed one).
		 */
		if (SPI_execute("SELECT coalesce(pg_catalog.max(pg_catalog.upper(ids)), 1) - 1 FROM activity_monitor.seal",
						false, 0) != SPI_OK_SELECT)
			elog(ERROR, "could not read activity_monitor.seal");
		min_id = DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
		pair.from = NULL;
		pair.horizon_null = true;
	}

	/*
	 * The horizon of the new snapshot, read before it is taken: no event a
	 * later round seals can be dated earlier (am_xact_horizon), a second
	 * less; while a transaction's start is not known, no later than the
	 * previous horizon.  And snap_at, the clock read before it, a second
	 * less.
	 */
	{
		bool		unknown;
		TimestampTz h = am_xact_horizon(&unknown);

		if (!TIMESTAMP_NOT_FINITE(h))
			h -= USECS_PER_SEC;
		if (unknown)
		{
			if (SPI_execute("SELECT coalesce(pg_catalog.max(x.next_horizon), '-infinity') FROM activity_monitor.seal x "
							"WHERE x.id = (SELECT pg_catalog.max(y.id) FROM activity_monitor.seal y "
							"              WHERE y.kind = 'events')", false, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read activity_monitor.seal");
			h = Min(h, DatumGetTimestampTz(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull)));
		}
		pair.next_horizon = TimestampTzGetDatum(h);
		pair.next_snap_at = TimestampTzGetDatum(GetCurrentTimestamp() - USECS_PER_SEC);
	}
	/* in a statement of its own, after the horizon (see above) */
	if (SPI_execute("SELECT pg_catalog.txid_current_snapshot()::text", false, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not take a snapshot");
	pair.to = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

	{
		Datum		args[7];
		Oid			types[7] = {TXID_SNAPSHOTOID, TXID_SNAPSHOTOID, INT8OID, TIMESTAMPTZOID,
		TIMESTAMPTZOID, INT8ARRAYOID, INT8OID};
		char		nulls[7] = {pair.from ? ' ' : 'n', ' ', ' ', pair.horizon_null ? 'n' : ' ',
		pair.horizon_null ? 'n' : ' ', 'n', ' '};

		args[0] = pair.from ? type_input(TXID_SNAPSHOTOID, pair.from) : (Datum) 0;
		args[1] = type_input(TXID_SNAPSHOTOID, pair.to);
		args[2] = Int64GetDatum(min_id);
		args[3] = pair.horizon;
		args[4] = pair.snap_at;
		args[5] = (Datum) 0;
		if (pair.from)
		{
			/* the transactions "from" saw running that have committed since */
			if (SPI_execute_with_args("SELECT pg_catalog.array_agg(x) FROM pg_catalog.txid_snapshot_xip($1) x "
									  "WHERE pg_catalog.txid_visible_in_snapshot(x, $2)",
									  2, types, args, nulls, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read a snapshot");
			args[5] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
			nulls[5] = isnull ? 'n' : ' ';
			xip_committed = !isnull;

			/*
			 * Events received from other clusters (receive.c) are dated at
			 * their source, earlier than the bounds below assume: the
			 * bounds go down to the oldest such event of the pair's
			 * transactions, which each receiving transaction noted in
			 * activity_monitor.received (empty where nothing is received).
			 * Notes of transactions that ended before "to" are then done.
			 */
			if (SPI_execute_with_args("SELECT pg_catalog.min(r.oldest) FILTER ("
									  "  WHERE r.txid >= pg_catalog.txid_snapshot_xmax($1) "
									  "    AND r.txid < pg_catalog.txid_snapshot_xmax($2)), "
									  "pg_catalog.min(r.oldest) FILTER (WHERE r.txid = ANY ($6)) "
									  "FROM activity_monitor.received r",
									  6, types, args, nulls, true, 0) != SPI_OK_SELECT)
				elog(ERROR, "could not read activity_monitor.received");
			{
				Datum		lo = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);

				if (!isnull && DatumGetTimestampTz(lo) < DatumGetTimestampTz(args[4]))
					args[4] = lo;
				lo = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
				if (!isnull && !pair.horizon_null && DatumGetTimestampTz(lo) < DatumGetTimestampTz(args[3]))
					args[3] = lo;
			}
		}
		/*
		 * Notes done with: the rollup counted them (rolled), this round and
		 * the alert engine's batches are past their transactions (the
		 * engine bounds its batches by them too, alerts.c).
		 */
		args[6] = Int64GetDatum(alert_xmin);
		if (SPI_execute_with_args("DELETE FROM activity_monitor.received r "
								  "WHERE r.rolled AND r.txid < pg_catalog.txid_snapshot_xmin($2) "
								  "  AND r.txid < $7",
								  7, types, args, nulls, false, 0) != SPI_OK_DELETE)
			elog(ERROR, "could not clean activity_monitor.received");

		/*
		 * The pair's events, through the time index (there is no index on
		 * txid but the alert engine's partial one): those of transactions
		 * that got their id after "from" was taken, so captured after it
		 * (snap_at, the clock read before it, minus a second); and, only
		 * when some have committed, those of the transactions "from" saw
		 * running, none dated before its horizon (the oldest start of a
		 * transaction then holding an id).  A transaction left open for
		 * long costs one long read when it commits, not one every round.
		 */
		portal = SPI_cursor_open_with_args(NULL, !pair.from ?
										   "SELECT " EVENT_COLUMNS " FROM activity_monitor.activity a "
										   "WHERE a.txid < pg_catalog.txid_snapshot_xmax($2) "
										   "  AND pg_catalog.txid_visible_in_snapshot(a.txid, $2) "
										   "  AND a.id > $3" :
										   !xip_committed ?
										   "SELECT " EVENT_COLUMNS " FROM activity_monitor.activity a "
										   "WHERE a.occurred_at >= $5 "
										   "  AND a.txid >= pg_catalog.txid_snapshot_xmax($1) "
										   "  AND a.txid < pg_catalog.txid_snapshot_xmax($2) "
										   "  AND pg_catalog.txid_visible_in_snapshot(a.txid, $2)" :
										   "SELECT " EVENT_COLUMNS " FROM activity_monitor.activity a "
										   " WHERE a.occurred_at >= $5 "
										   "   AND a.txid >= pg_catalog.txid_snapshot_xmax($1) "
										   "   AND a.txid < pg_catalog.txid_snapshot_xmax($2) "
										   "   AND pg_catalog.txid_visible_in_snapshot(a.txid, $2) "
										   " UNION ALL "
										   " SELECT " EVENT_COLUMNS " FROM activity_monitor.activity a "
										   " WHERE a.occurred_at >= $4 AND a.txid = ANY ($6)",
										   6, types, args, nulls, false, 0);
	}

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL)
		elog(ERROR, "out of memory");
	initStringInfo(&buf);
	initStringInfo(&b.ids);
	initStringInfo(&b.fps);
	build_reset(&b);
	digest_sort_begin(&sorted);
	fetch_cxt = AllocSetContextCreate(CurrentMemoryContext, "activity_monitor seal",
									  ALLOCSET_DEFAULT_SIZES);
	row_cxt = AllocSetContextCreate(CurrentMemoryContext, "activity_monitor seal row",
									ALLOCSET_DEFAULT_SIZES);
	for (;;)
	{
		uint64		n;
		MemoryContext old;
		SPITupleTable *tt;

		SPI_cursor_fetch(portal, true, SEAL_FETCH);
		tt = SPI_tuptable;
		n = SPI_processed;
		if (n > 0 && !reader_ready)
		{
			reader_init(&reader, tt->tupdesc);
			reader_ready = true;
		}
		old = MemoryContextSwitchTo(fetch_cxt);
		for (uint64 i = 0; i < n; i++)
		{
			HeapTuple	tup = tt->vals[i];
			TupleDesc	desc = tt->tupdesc;
			Datum		values[EVENT_NCOLS];
			bool		nulls[EVENT_NCOLS];
			uint8		d[SEAL_HASH_LEN];

			Assert(desc->natts == EVENT_NCOLS);
			heap_deform_tuple(tup, desc, values, nulls);
			event_digest(ctx, &buf, &reader, values, nulls, d);
			digest_put(&sorted, DatumGetInt64(values[reader.att[AC_ID]]),
					   values[reader.att[AC_OCCURRED_AT]], d);
		}
		MemoryContextSwitchTo(old);
		SPI_freetuptable(tt);
		MemoryContextReset(fetch_cxt);
		if (n < SEAL_FETCH)
			break;
	}
	SPI_cursor_close(portal);

	/* in id order, into seals of max_events */
	tuplesort_performsort(sorted.sort);
	while (tuplesort_gettupleslot(sorted.sort, true, false, sorted.slot, NULL))
	{
		int64		id;

		slot_getallattrs(sorted.slot);
		id = DatumGetInt64(sorted.slot->tts_values[0]);
		if (events > 0 && id <= last_id)
			continue;			/* a second row with a sealed id: left out */
		last_id = id;
		build_add(&b, id, DatumGetTimestampTz(sorted.slot->tts_values[1]),
				  (const uint8 *) VARDATA_ANY(DatumGetPointer(sorted.slot->tts_values[2])));
		events++;
		if (b.count == max_events)
		{
			pair_seal(ctx, &buf, &head, &pair, &b, row_cxt);
			seals++;
		}
	}
	digest_sort_end(&sorted);
	if (b.count > 0)
	{
		pair_seal(ctx, &buf, &head, &pair, &b, row_cxt);
		seals++;
	}
	pg_cryptohash_free(ctx);
	MemoryContextDelete(fetch_cxt);
	MemoryContextDelete(row_cxt);
	AtEOXact_GUC(true, level);

	result[0] = Int32GetDatum(seals);
	result[1] = Int64GetDatum(events);
	rnulls[2] = head.id == 0;
	head_str = head.id > 0 ? MemoryContextStrdup(caller, head_text(&head)) : NULL;
	SPI_finish();
	if (head_str)
		result[2] = CStringGetTextDatum(head_str);
	PG_RETURN_DATUM(HeapTupleGetDatum(heap_form_tuple(BlessTupleDesc(rdesc), result, rnulls)));
}

/*
 * activity_monitor._seal_retired(part regclass, how text): append the seal
 * of kind 'retention' for a partition about to be dropped or detached
 * (how): its ids, count and time range, its bounds, and the head it
 * followed.  Called by the partition maintenance with the partition locked.
 */
Datum
activity_monitor_seal_retired(PG_FUNCTION_ARGS)
{
	Oid			part = PG_GETARG_OID(0);
	text	   *how = PG_GETARG_TEXT_PP(1);
	SealHead	head;
	Datum		v[SEAL_NCOLS];
	char		nl[SEAL_NCOLS];
	Datum		args[4];
	Oid			types[4] = {OIDOID, TEXTOID, INT8OID, TEXTOID};
	char	   *sql;
	pg_cryptohash_ctx *ctx;
	StringInfoData buf;
	bool		isnull;

	SPI_connect();
	head_lock(&head);
	sql = psprintf("SELECT pg_catalog.range_agg(pg_catalog.int8range(a.id, a.id OPERATOR(pg_catalog.+) 1)), "
				   "  pg_catalog.count(*), pg_catalog.min(a.occurred_at), pg_catalog.max(a.occurred_at), "
				   "  pg_catalog.jsonb_build_object('partition', $1::pg_catalog.regclass::text, "
				   "    'from', (SELECT p.lower FROM activity_monitor._partitions() p WHERE p.part OPERATOR(pg_catalog.=) $1), "
				   "    'to', (SELECT p.upper FROM activity_monitor._partitions() p WHERE p.part OPERATOR(pg_catalog.=) $1), "
				   "    'how', $2, 'last_seal', $3, 'last_seal_hash', $4) "
				   "FROM %s a",
				   quote_qualified_identifier(get_namespace_name(get_rel_namespace(part)),
											  get_rel_name(part)));
	args[0] = ObjectIdGetDatum(part);
	args[1] = PointerGetDatum(how);
	args[2] = Int64GetDatum(head.id);
	args[3] = CStringGetTextDatum(head.id > 0 ? hex(head.hash, SEAL_HASH_LEN) : "");
	if (SPI_execute_with_args(sql, 4, types, args, NULL, true, 0) != SPI_OK_SELECT || SPI_processed != 1)
		elog(ERROR, "could not read partition %u", part);
	memset(nl, ' ', sizeof(nl));
	v[1] = TimestampTzGetDatum(GetCurrentTimestamp());
	v[2] = CStringGetTextDatum("retention");
	nl[3] = nl[4] = nl[5] = nl[6] = nl[11] = 'n';
	v[8] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull);
	if (isnull)
		v[8] = type_input(INT8MULTIRANGEOID, "{}");
	v[7] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 2, &isnull);
	v[9] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 3, &isnull);
	nl[9] = isnull ? 'n' : ' ';
	v[10] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 4, &isnull);
	nl[10] = isnull ? 'n' : ' ';
	v[12] = SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 5, &isnull);
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL)
		elog(ERROR, "out of memory");
	initStringInfo(&buf);
	seal_append(ctx, &buf, &head, v, nl);
	pg_cryptohash_free(ctx);
	SPI_finish();
	PG_RETURN_VOID();
}

/*
 * DROP EXTENSION activity_monitor is about to run (the DDL guard calls this
 * at ddl_command_start): write to the server log who drops it and the seal
 * head at that moment, for the copy of the log outside the database.  A
 * database still of 0.1.0 (no seals) says so; nothing here stops the drop.
 */
void
am_seal_drop_warning(void)
{
	char	   *head = NULL;

	SPI_connect();
	/* the schema of that name must be the extension's (not one planted) */
	if (OidIsValid(am_extension_schema(NULL, NULL)) &&
		am_extension_schema(NULL, NULL) == get_namespace_oid(AM_SCHEMA, true) &&
		SPI_execute("SELECT pg_catalog.to_regprocedure('activity_monitor.seal_head()') IS NOT NULL",
					true, 0) == SPI_OK_SELECT && SPI_processed == 1 &&
		strcmp(SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1), "t") == 0 &&
		SPI_execute("SELECT pg_catalog.format('seal %s at %s hash %s', h.seal_id, h.sealed_at, h.hash) "
					"FROM activity_monitor.seal_head() h WHERE h.seal_id IS NOT NULL",
					true, 0) == SPI_OK_SELECT && SPI_processed == 1)
		head = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);
	ereport(WARNING,
			(errmsg("activity_monitor is being dropped from database \"%s\" by role \"%s\" (session user \"%s\")",
					get_database_name(MyDatabaseId), GetUserNameFromId(GetUserId(), false),
					GetUserNameFromId(GetSessionUserId(), false)),
			 errdetail("The seal head at the drop: %s.", head ? head : "none (nothing sealed)")));
	SPI_finish();
}

/* ---------------------------------------------------------------------------
 * Verification
 * ---------------------------------------------------------------------------
 */

/* A growing list of event ids. */
typedef struct IdList
{
	int64	   *v;
	Size		n;
	Size		cap;
} IdList;

static void
idl_add(IdList *l, int64 id)
{
	if (l->n == l->cap)
	{
		l->cap = Max(16, l->cap * 2);
		l->v = l->v ? repalloc_huge(l->v, sizeof(int64) * l->cap) : palloc(sizeof(int64) * l->cap);
	}
	l->v[l->n++] = id;
}

/* Remove the last occurrence of id. */
static void
idl_remove(IdList *l, int64 id)
{
	for (Size i = l->n; i-- > 0;)
		if (l->v[i] == id)
		{
			l->v[i] = l->v[--l->n];
			return;
		}
}

/* What verify() found at a seal's position (VSeal.seen). */
#define SEEN_OK 1
#define SEEN_CHANGED 2

/* A problem of the chain: the seal and what is wrong. */
typedef struct ChainProblem
{
	int64		id;
	char	   *detail;
} ChainProblem;

static List *
chain_add(List *l, int64 id, char *detail)
{
	ChainProblem *p = palloc(sizeof(ChainProblem));

	p->id = id;
	p->detail = detail;
	return lappend(l, p);
}

/* One range of ids of a seal, [lo, hi), its first id the offset-th. */
typedef struct VRange
{
	int64		lo;
	int64		hi;
	int			seal;			/* index into the seals array */
	int64		offset;
} VRange;

/* A seal as verify() holds it. */
typedef struct VSeal
{
	int64		id;
	bool		events;			/* kind 'events' (else 'retention') */
	bool		selected;		/* its events are checked */
	int64		count;
	TimestampTz min_at;
	TimestampTz max_at;
	bool		has_times;
	TimestampTz horizon;
	bool		horizon_null;
	uint8	   *fps;			/* selected: count fingerprints */
	char	   *seen;			/* selected: 0, SEEN_OK or SEEN_CHANGED */
	IdList		problems[3];	/* ids: changed, added, missing */
	VRange	   *own;			/* its ranges (selected events seals) */
	int			nown;
	char	   *detail[3];
} VSeal;

enum
{
	P_CHANGED, P_ADDED, P_MISSING
};


typedef struct VState
{
	VSeal	   *seals;
	int			nseals;
	VRange	   *ranges;			/* events seals' */
	int			nranges;
	VRange	   *retired;		/* retention seals' */
	int			nretired;
	List	   *covered;		/* pairs of TimestampTz: retired time ranges */
	List	   *chain;			/* of ChainProblem */
	IdList		unsealed_added; /* ids not in any seal that should be */
	const char *unsealed_why;
} VState;

static int
vrange_cmp(const void *a, const void *b)
{
	const VRange *x = a;
	const VRange *y = b;

	return x->lo < y->lo ? -1 : x->lo > y->lo ? 1 : 0;
}

/* The range holding id, or NULL. */
static VRange *
vrange_find(VRange *r, int n, int64 id)
{
	int			lo = 0,
				hi = n - 1;

	while (lo <= hi)
	{
		int			mid = lo + (hi - lo) / 2;

		if (id < r[mid].lo)
			hi = mid - 1;
		else if (id >= r[mid].hi)
			lo = mid + 1;
		else
			return &r[mid];
	}
	return NULL;
}

/*
 * Parse an int8multirange's text "{[a,b),...}" into ranges of seal s,
 * appended to *arr.  A seal row is what verify() checks, so nothing in it
 * is trusted: the ranges must be ascending, disjoint and non-empty, and
 * hold exactly count ids (count < 0: any number).  Returns false, adding
 * nothing, when they do not.
 */
static bool
parse_ranges(const char *txt, int s, int64 count, VRange **arr, int *n, int *cap)
{
	const char *p = txt;
	int64		offset = 0;
	int			n0 = *n;
	int64		prev_hi = PG_INT64_MIN;

	while ((p = strchr(p, '[')) != NULL)
	{
		VRange		r;
		char	   *end;

		r.lo = strtoi64(p + 1, &end, 10);
		r.hi = strtoi64(end + 1, &end, 10);
		if (r.hi <= r.lo || r.lo < prev_hi || pg_sub_s64_overflow(r.hi, r.lo, &r.offset) ||
			pg_add_s64_overflow(offset, r.offset, &r.offset) ||
			(count >= 0 && r.offset > count))
		{
			*n = n0;
			return false;
		}
		prev_hi = r.hi;
		r.seal = s;
		r.offset = offset;
		offset += r.hi - r.lo;
		if (*n == *cap)
		{
			*cap *= 2;
			*arr = repalloc_huge(*arr, sizeof(VRange) * *cap);
		}
		(*arr)[(*n)++] = r;
		p = end;
	}
	if (count >= 0 && offset != count)
	{
		*n = n0;
		return false;
	}
	return true;
}

/* A txid snapshot "xmin:xmax:xip,..." as visibility needs it. */
typedef struct TxSnap
{
	bool		valid;
	uint64		xmin;
	uint64		xmax;
	int			nxip;
	uint64	   *xip;
} TxSnap;

static void
txsnap_parse(TxSnap *t, const char *s)
{
	char	   *end;
	int			cap = 16;

	t->valid = s != NULL;
	t->nxip = 0;
	if (!t->valid)
		return;
	t->xip = palloc(sizeof(uint64) * cap);
	t->xmin = strtou64(s, &end, 10);
	t->xmax = strtou64(end + 1, &end, 10);
	while ((*end == ':' || *end == ',') && end[1] != '\0')
	{
		if (t->nxip == cap)
		{
			cap *= 2;
			t->xip = repalloc_huge(t->xip, sizeof(uint64) * cap);
		}
		t->xip[t->nxip++] = strtou64(end + 1, &end, 10);
	}
}

static bool
txsnap_visible(TxSnap *t, uint64 x)
{
	if (x < t->xmin)
		return true;
	if (x >= t->xmax)
		return false;
	for (int i = 0; i < t->nxip; i++)
		if (t->xip[i] == x)
			return false;
	return true;
}

/*
 * Read every seal: check the chain (each hash recomputed from its row, each
 * linked to the previous one), keep each events seal's ids and each
 * retention seal's, and select for checking the events seals overlapping
 * [since, until] (all when unbounded).
 */
static void
load_seals(VState *st, pg_cryptohash_ctx *ctx, bool bounded, TimestampTz since,
		   TimestampTz until, TxSnap *head_snap, TimestampTz *head_horizon,
		   TimestampTz *head_snap_at, bool *head_known)
{
	Portal		portal;
	EncType		enc[SEAL_NCOLS];
	StringInfoData buf;
	int			cap = 64,
				rcap = 256,
				retcap = 16;
	int64		prev_id = 0;
	uint8		prev_hash[SEAL_HASH_LEN];
	bool		have_prev = false;
	char	   *head_snap_text = NULL;

	seal_enc_init(enc);
	initStringInfo(&buf);
	st->seals = palloc(sizeof(VSeal) * cap);
	st->ranges = palloc(sizeof(VRange) * rcap);
	st->retired = palloc(sizeof(VRange) * retcap);
	*head_known = false;

	portal = SPI_cursor_open_with_args(NULL,
									   "SELECT " SEAL_COLUMNS ", ids::text, (detail->>'from')::timestamptz, "
									   "  (detail->>'to')::timestamptz, snap_to::text, "
									   "  (detail->>'snap_at')::timestamptz "
									   "FROM activity_monitor.seal ORDER BY id",
									   0, NULL, NULL, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, SEAL_FETCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			HeapTuple	tup = SPI_tuptable->vals[i];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			Datum		v[SEAL_NCOLS + 5];
			bool		n[SEAL_NCOLS + 5];
			uint8		h[SEAL_HASH_LEN];
			bytea	   *stored;
			bytea	   *prev;
			VSeal	   *s;
			char	   *kind;

			heap_deform_tuple(tup, desc, v, n);
			s = &st->seals[st->nseals];
			memset(s, 0, sizeof(VSeal));
			s->id = DatumGetInt64(v[0]);

			/* the chain */
			seal_hash(ctx, &buf, v, n, enc, h);
			stored = n[14] ? NULL : DatumGetByteaPP(v[14]);
			prev = n[13] ? NULL : DatumGetByteaPP(v[13]);
			if (stored == NULL || VARSIZE_ANY_EXHDR(stored) != SEAL_HASH_LEN ||
				memcmp(VARDATA_ANY(stored), h, SEAL_HASH_LEN) != 0)
				st->chain = chain_add(st->chain, s->id, pstrdup("the seal's hash does not match its content"));
			if (have_prev && s->id != prev_id + 1)
				st->chain = chain_add(st->chain, s->id, psprintf("seals " INT64_FORMAT " to " INT64_FORMAT " are missing",
																   prev_id + 1, s->id - 1));
			else if (prev == NULL || VARSIZE_ANY_EXHDR(prev) != SEAL_HASH_LEN ||
					 (have_prev && memcmp(VARDATA_ANY(prev), prev_hash, SEAL_HASH_LEN) != 0))
				st->chain = chain_add(st->chain, s->id, psprintf("its prev_hash is not the hash of seal " INT64_FORMAT,
																   s->id - 1));
			else if (!have_prev && s->id != 1)
				st->chain = chain_add(st->chain, s->id, psprintf("seals 1 to " INT64_FORMAT " are missing", s->id - 1));
			else if (!have_prev && s->id == 1)
			{
				uint8		zero[SEAL_HASH_LEN] = {0};

				if (memcmp(VARDATA_ANY(prev), zero, SEAL_HASH_LEN) != 0)
					st->chain = chain_add(st->chain, s->id, pstrdup("the first seal's prev_hash is not zero"));
			}
			prev_id = s->id;
			if (stored != NULL && VARSIZE_ANY_EXHDR(stored) == SEAL_HASH_LEN)
				memcpy(prev_hash, VARDATA_ANY(stored), SEAL_HASH_LEN);
			have_prev = true;

			kind = TextDatumGetCString(v[2]);
			s->events = strcmp(kind, "events") == 0;
			s->count = n[7] ? 0 : DatumGetInt64(v[7]);
			s->has_times = !n[9] && !n[10];
			if (s->has_times)
			{
				s->min_at = DatumGetTimestampTz(v[9]);
				s->max_at = DatumGetTimestampTz(v[10]);
			}
			s->horizon_null = n[5];
			s->horizon = n[5] ? 0 : DatumGetTimestampTz(v[5]);
			if (s->events)
			{
				/* the newest events seal: what the tail is measured against */
				head_snap_text = n[18] ? NULL : TextDatumGetCString(v[18]);
				*head_horizon = DatumGetTimestampTz(v[6]);
				*head_known = !n[6];
				*head_snap_at = n[19] ? *head_horizon : DatumGetTimestampTz(v[19]);
				s->selected = !bounded ||
					(s->has_times && s->max_at >= since && s->min_at < until);
				if (s->selected && !n[11])
				{
					bytea	   *f = DatumGetByteaPP(v[11]);

					if (VARSIZE_ANY_EXHDR(f) != s->count * SEAL_FP_LEN)
						st->chain = chain_add(st->chain, s->id, pstrdup("its fingerprints do not match its count"));
					else
					{
						s->fps = palloc_extended(s->count * SEAL_FP_LEN, MCXT_ALLOC_HUGE);
						memcpy(s->fps, VARDATA_ANY(f), s->count * SEAL_FP_LEN);
						s->seen = palloc_extended(s->count, MCXT_ALLOC_HUGE | MCXT_ALLOC_ZERO);
					}
				}
				if (!s->selected || s->seen == NULL)
					s->selected = false;
				{
					int			r0 = st->nranges;

					if (n[15] || !parse_ranges(TextDatumGetCString(v[15]), st->nseals, s->count,
											   &st->ranges, &st->nranges, &rcap))
					{
						st->chain = chain_add(st->chain, s->id,
											  pstrdup("its ids are not a valid set of event_count ids"));
						s->selected = false;
					}
					else
					{
						/* its own ranges, for the missing ones (st->ranges gets sorted) */
						s->nown = st->nranges - r0;
						s->own = palloc(sizeof(VRange) * Max(s->nown, 1));
						memcpy(s->own, st->ranges + r0, sizeof(VRange) * s->nown);
					}
				}
			}
			else
			{
				if (n[15] || !parse_ranges(TextDatumGetCString(v[15]), st->nseals, -1,
										   &st->retired, &st->nretired, &retcap))
					st->chain = chain_add(st->chain, s->id, pstrdup("its ids are not a valid set"));
				if (!n[16] && !n[17])
				{
					TimestampTz *c = palloc(sizeof(TimestampTz) * 2);

					c[0] = DatumGetTimestampTz(v[16]);
					c[1] = DatumGetTimestampTz(v[17]);
					st->covered = lappend(st->covered, c);
				}
			}
			if (++st->nseals == cap)
			{
				cap *= 2;
				st->seals = repalloc_huge(st->seals, sizeof(VSeal) * cap);
			}
		}
		SPI_freetuptable(SPI_tuptable);
	}
	SPI_cursor_close(portal);
	txsnap_parse(head_snap, head_snap_text);
	qsort(st->ranges, st->nranges, sizeof(VRange), vrange_cmp);
	qsort(st->retired, st->nretired, sizeof(VRange), vrange_cmp);
}

/* The id at position pos of seal s, from its ranges (slow; missing ones only). */
static void
seal_ids_missing(VState *st, int s, IdList *out)
{
	VSeal	   *seal = &st->seals[s];

	for (int i = 0; i < seal->nown; i++)
	{
		VRange	   *r = &seal->own[i];

		CHECK_FOR_INTERRUPTS();
		for (int64 id = r->lo; id < r->hi; id++)
			if (!seal->seen[r->offset + (id - r->lo)] &&
				vrange_find(st->retired, st->nretired, id) == NULL)
				idl_add(out, id);
	}
}

/* Is [lo, hi] covered by attached range partitions and retired ranges? */
static bool
time_covered(List *cover, TimestampTz lo, TimestampTz hi)
{
	bool		progress = true;

	while (progress)
	{
		ListCell   *lc;

		progress = false;
		foreach(lc, cover)
		{
			TimestampTz *c = lfirst(lc);

			if (c[0] <= lo && c[1] > lo)
			{
				if (c[1] > hi)
					return true;
				lo = c[1];
				progress = true;
			}
		}
	}
	return false;
}

/* Scan one partition: check each event of a selected seal, spot the added. */
static void
scan_partition(VState *st, Oid relid, pg_cryptohash_ctx *ctx, StringInfo buf,
			   bool bounded, TimestampTz since, TimestampTz until,
			   TxSnap *head_snap, TimestampTz head_horizon, TimestampTz head_snap_at,
			   bool head_known, uint64 next_xid)
{
	Relation	rel = table_open(relid, AccessShareLock);
	EventReader reader;
	TableScanDesc scan;
	TupleTableSlot *slot;
	MemoryContext cxt = AllocSetContextCreate(CurrentMemoryContext, "activity_monitor verify",
											  ALLOCSET_DEFAULT_SIZES);

	if (rel->rd_rel->relkind != RELKIND_RELATION)
	{
		/* a foreign or sub-partitioned partition: its events count as missing */
		table_close(rel, AccessShareLock);
		MemoryContextDelete(cxt);
		return;
	}
	reader_init(&reader, RelationGetDescr(rel));
	scan = table_beginscan(rel, GetActiveSnapshot(), 0, NULL);
	slot = table_slot_create(rel, NULL);
	while (table_scan_getnextslot(scan, ForwardScanDirection, slot))
	{
		Datum	   *values;
		bool	   *nulls;
		int64		id;
		TimestampTz at;
		VRange	   *r;
		bool		received;

		CHECK_FOR_INTERRUPTS();
		slot_getallattrs(slot);
		values = slot->tts_values;
		nulls = slot->tts_isnull;
		id = DatumGetInt64(values[reader.att[AC_ID]]);
		at = DatumGetTimestampTz(values[reader.att[AC_OCCURRED_AT]]);
		/* an event received from another cluster is dated at its source */
		received = reader.source_att >= 0 && !nulls[reader.source_att];
		r = vrange_find(st->ranges, st->nranges, id);
		if (r != NULL)
		{
			VSeal	   *s = &st->seals[r->seal];
			int64		pos = r->offset + (id - r->lo);
			uint8		d[SEAL_HASH_LEN];
			MemoryContext old;
			bool		match;

			if (!s->selected)
				continue;
			old = MemoryContextSwitchTo(cxt);
			event_digest(ctx, buf, &reader, values, nulls, d);
			MemoryContextSwitchTo(old);
			MemoryContextReset(cxt);
			match = memcmp(d, s->fps + pos * SEAL_FP_LEN, SEAL_FP_LEN) == 0;
			if (s->seen[pos])
			{
				/*
				 * A second row with this id: the one that matches its
				 * fingerprint is the sealed one, whichever came first.
				 */
				if (match && s->seen[pos] == SEEN_CHANGED)
				{
					idl_remove(&s->problems[P_CHANGED], id);
					s->seen[pos] = SEEN_OK;
				}
				idl_add(&s->problems[P_ADDED], id);
				s->detail[P_ADDED] = "an event with the id of a sealed one";
				continue;
			}
			s->seen[pos] = match ? SEEN_OK : SEEN_CHANGED;
			if (!match)
				idl_add(&s->problems[P_CHANGED], id);
			else if (!s->horizon_null && at < s->horizon && !received)
			{
				idl_add(&s->problems[P_ADDED], id);
				s->detail[P_ADDED] = "dated before the horizon of its seal: written after its time";
			}
			continue;
		}
		if (vrange_find(st->retired, st->nretired, id) != NULL)
			continue;
		if (bounded && (at < since || at >= until))
			continue;
		/* in no seal: the unsealed tail, or an event that should be sealed */
		if (head_known)
		{
			uint64		x = (uint64) DatumGetInt64(values[reader.att[AC_TXID]]);
			const char *why = NULL;

			if (x >= next_xid)
				why = "its transaction id was never assigned";
			else if (at < head_horizon && !received)
				why = "dated before the last seal's horizon, yet in no seal";
			else if (head_snap->valid && txsnap_visible(head_snap, x))
				why = "its transaction had committed before the last seal, yet it is in no seal";
			else if (head_snap->valid && x >= head_snap->xmax && at < head_snap_at && !received)
				why = "dated before the last seal's snapshot, yet of a transaction that began writing after it";
			if (why)
			{
				idl_add(&st->unsealed_added, id);
				if (st->unsealed_why == NULL)
					st->unsealed_why = why;
			}
		}
	}
	ExecDropSingleTupleTableSlot(slot);
	table_endscan(scan);
	table_close(rel, NoLock);
	MemoryContextDelete(cxt);
}

static int
id_cmp(const void *a, const void *b)
{
	int64		x = *(const int64 *) a;
	int64		y = *(const int64 *) b;

	return x < y ? -1 : x > y ? 1 : 0;
}

/* The ids, sorted, as a bigint[]. */
static Datum
ids_array(IdList *ids)
{
	Datum	   *d = palloc_extended(sizeof(Datum) * Max(ids->n, 1), MCXT_ALLOC_HUGE);

	qsort(ids->v, ids->n, sizeof(int64), id_cmp);
	for (Size i = 0; i < ids->n; i++)
		d[i] = Int64GetDatum(ids->v[i]);
	return PointerGetDatum(construct_array(d, ids->n, INT8OID, sizeof(int64), true, TYPALIGN_DOUBLE));
}

static void
put_problem(ReturnSetInfo *rsinfo, int64 seal, bool seal_null, const char *problem,
			IdList *ids, const char *detail)
{
	Datum		v[4];
	bool		n[4] = {seal_null, false, ids == NULL, detail == NULL};

	v[0] = Int64GetDatum(seal);
	v[1] = CStringGetTextDatum(problem);
	v[2] = ids == NULL ? (Datum) 0 : ids_array(ids);
	v[3] = detail ? CStringGetTextDatum(detail) : (Datum) 0;
	tuplestore_putvalues(rsinfo->setResult, rsinfo->setDesc, v, n);
}

/*
 * activity_monitor.verify(since timestamptz, until timestamptz): one row
 * per problem (seal_id, problem, event_ids, detail); none when the sealed
 * history between since and until (NULL: unbounded) is intact.
 */
Datum
activity_monitor_verify(PG_FUNCTION_ARGS)
{
	ReturnSetInfo *rsinfo = (ReturnSetInfo *) fcinfo->resultinfo;
	bool		bounded = !PG_ARGISNULL(0) || !PG_ARGISNULL(1);
	TimestampTz since = PG_ARGISNULL(0) ? DT_NOBEGIN : PG_GETARG_TIMESTAMPTZ(0);
	TimestampTz until = PG_ARGISNULL(1) ? DT_NOEND : PG_GETARG_TIMESTAMPTZ(1);
	VState		st;
	TxSnap		head_snap = {false};
	TimestampTz head_horizon = 0;
	TimestampTz head_snap_at = 0;
	bool		head_known;
	TimestampTz lo = since,
				hi = until;
	pg_cryptohash_ctx *ctx;
	StringInfoData buf;
	List	   *parts = NIL;
	List	   *cover = NIL;
	uint64		next_xid;
	bool		isnull;
	ListCell   *lc;

	InitMaterializedSRF(fcinfo, 0);
	memset(&st, 0, sizeof(st));
	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL)
		elog(ERROR, "out of memory");
	initStringInfo(&buf);
	if (IsolationUsesXactSnapshot())
		ereport(ERROR,
				(errcode(ERRCODE_ACTIVE_SQL_TRANSACTION),
				 errmsg("verify() must run at isolation level READ COMMITTED"),
				 errhint("Its snapshot is taken once retention cannot drop a partition any more.")));
	SPI_connect();

	/*
	 * Retention cannot drop or detach a partition (with its seal) while the
	 * activity table is locked, as any query on it does; then one snapshot,
	 * newer than the lock, for the seals and the partitions alike.  A
	 * sealing round is not held up: it appends seals of events this
	 * snapshot sees as unsealed, or does not see.
	 */
	if (SPI_execute("LOCK TABLE activity_monitor.activity IN ACCESS SHARE MODE", false, 0) != SPI_OK_UTILITY)
		elog(ERROR, "could not lock activity_monitor.activity");
	PushActiveSnapshot(GetTransactionSnapshot());
	load_seals(&st, ctx, bounded, since, until, &head_snap, &head_horizon, &head_snap_at,
			   &head_known);
	for (int i = 0; i < st.nseals; i++)
		if (st.seals[i].selected && st.seals[i].has_times)
		{
			lo = Min(lo, st.seals[i].min_at);
			hi = Max(hi, st.seals[i].max_at);
		}
	if (SPI_execute("SELECT (pg_catalog.txid_snapshot_xmax(pg_catalog.txid_current_snapshot()))::bigint",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not take a snapshot");
	next_xid = (uint64) DatumGetInt64(SPI_getbinval(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1, &isnull));
	if (SPI_execute("SELECT p.part::oid, p.lower, p.upper FROM activity_monitor._partitions() p",
					true, 0) != SPI_OK_SELECT)
		elog(ERROR, "could not list the partitions");
	for (uint64 i = 0; i < SPI_processed; i++)
	{
		bool		nl,
					nu;
		Oid			part = DatumGetObjectId(SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 1, &isnull));
		Datum		l = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 2, &nl);
		Datum		u = SPI_getbinval(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, 3, &nu);
		TimestampTz *c = palloc(sizeof(TimestampTz) * 2);

		c[0] = nl ? DT_NOBEGIN : DatumGetTimestampTz(l);
		c[1] = nu ? DT_NOEND : DatumGetTimestampTz(u);
		cover = lappend(cover, c);
		if (c[1] > lo && c[0] <= hi)
			parts = lappend_oid(parts, part);
	}
	{
		Oid			def = get_default_partition_oid(am_catalog()->activity);

		if (OidIsValid(def))
			parts = lappend_oid(parts, def);
	}
	foreach(lc, parts)
		scan_partition(&st, lfirst_oid(lc), ctx, &buf, bounded, since, until,
					   &head_snap, head_horizon, head_snap_at, head_known, next_xid);
	cover = list_concat(cover, st.covered);

	/* the report, in seal order */
	foreach(lc, st.chain)
	{
		ChainProblem *p = lfirst(lc);

		put_problem(rsinfo, p->id, false, "seal chain broken", NULL, p->detail);
	}
	for (int i = 0; i < st.nseals; i++)
	{
		VSeal	   *s = &st.seals[i];
		IdList		missing = {NULL, 0, 0};

		if (!s->selected)
			continue;
		seal_ids_missing(&st, i, &missing);
		if (s->problems[P_CHANGED].n > 0)
			put_problem(rsinfo, s->id, false, "event changed", &s->problems[P_CHANGED],
						"the event's content differs from what was sealed");
		if (missing.n > 0)
		{
			if (s->has_times && !time_covered(cover, s->min_at, s->max_at))
				put_problem(rsinfo, s->id, false, "partition missing", &missing,
							psprintf("no partition holds events of %s to %s, and retention did not retire them",
									 timestamptz_to_str(s->min_at), timestamptz_to_str(s->max_at)));
			else
				put_problem(rsinfo, s->id, false, "event missing", &missing,
							"a sealed event is not in the table");
		}
		if (s->problems[P_ADDED].n > 0)
			put_problem(rsinfo, s->id, false, "event added", &s->problems[P_ADDED], s->detail[P_ADDED]);
	}
	if (st.unsealed_added.n > 0)
		put_problem(rsinfo, 0, true, "event added", &st.unsealed_added, st.unsealed_why);
	pg_cryptohash_free(ctx);
	PopActiveSnapshot();
	SPI_finish();
	return (Datum) 0;
}

/*
 * activity_monitor.verify_head(seal_id bigint, hash text): whether the
 * chain, recomputed from its first seal, reaches seal_id with the hash
 * saved from the server log (seal_head()).  A rewrite of events and seals
 * that verify() cannot see changes the recomputed hash.
 */
Datum
activity_monitor_verify_head(PG_FUNCTION_ARGS)
{
	int64		target = PG_GETARG_INT64(0);
	char	   *want = text_to_cstring(PG_GETARG_TEXT_PP(1));
	pg_cryptohash_ctx *ctx;
	StringInfoData buf;
	EncType		enc[SEAL_NCOLS];
	uint8		h[SEAL_HASH_LEN];
	int64		expect = 1;
	bool		ok = false;
	Portal		portal;
	Datum		arg = Int64GetDatum(target);
	Oid			type = INT8OID;

	ctx = pg_cryptohash_create(PG_SHA256);
	if (ctx == NULL)
		elog(ERROR, "out of memory");
	initStringInfo(&buf);
	seal_enc_init(enc);
	memset(h, 0, SEAL_HASH_LEN);
	SPI_connect();
	portal = SPI_cursor_open_with_args(NULL, "SELECT " SEAL_COLUMNS " FROM activity_monitor.seal "
									   "WHERE id <= $1 ORDER BY id", 1, &type, &arg, NULL, true, 0);
	for (;;)
	{
		SPI_cursor_fetch(portal, true, SEAL_FETCH);
		if (SPI_processed == 0)
			break;
		for (uint64 i = 0; i < SPI_processed; i++)
		{
			Datum		v[SEAL_NCOLS];
			bool		n[SEAL_NCOLS];

			heap_deform_tuple(SPI_tuptable->vals[i], SPI_tuptable->tupdesc, v, n);
			if (DatumGetInt64(v[0]) != expect)
			{
				expect = -1;	/* a seal is missing: the chain cannot be recomputed */
				break;
			}
			/* the previous hash as recomputed, not as stored */
			v[13] = PointerGetDatum(make_bytea(h, SEAL_HASH_LEN));
			n[13] = false;
			seal_hash(ctx, &buf, v, n, enc, h);
			expect++;
		}
		SPI_freetuptable(SPI_tuptable);
		if (expect < 0)
			break;
	}
	SPI_cursor_close(portal);
	if (expect == target + 1)
		ok = pg_strcasecmp(hex(h, SEAL_HASH_LEN), want) == 0;
	pg_cryptohash_free(ctx);
	SPI_finish();
	PG_RETURN_BOOL(ok);
}
