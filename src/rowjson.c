/*-------------------------------------------------------------------------
 *
 * rowjson.c
 *	  Column values to jsonb values, without SQL and without catalog
 *	  look-ups per row.
 *
 * PostgreSQL 15 keeps datum_to_jsonb static, so capture classifies each
 * column's type once (am_init_json_type, at cache build) and converts values
 * with the category: booleans and numbers stay typed, date/time values use
 * the ISO 8601 form to_jsonb uses, json and jsonb are embedded, arrays of
 * scalars become JSON arrays and every other type is its text output.
 *
 * A json value is valid JSON but not always a valid jsonb: a string holding
 * \u0000 (or, in a database not in UTF8, an escape of a character the
 * encoding lacks) and a number beyond numeric's range make the conversion
 * raise, which would fail the platform's write.  Such a value is recorded
 * as a JSON string holding its text.  The conversion is done here, with
 * pg_parse_json (which returns escape errors instead of raising) and a
 * range check of each number before numeric_in, so that the common case
 * needs no subtransaction.
 *
 * IDENTIFICATION
 *	  src/rowjson.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "activity_monitor.h"
#include "access/xact.h"
#include "catalog/pg_type.h"
#include "common/jsonapi.h"
#include "common/md5.h"
#include "fmgr.h"
#include "mb/pg_wchar.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/numeric.h"

/*
 * The limits of numeric's storage format (numeric.c): the display scale is
 * 14 bits, the weight (in base-10000 digits) an int16, and numeric_in
 * refuses an exponent beyond INT_MAX / 2 before looking at either.
 */
#define NUMERIC_DSCALE_LIMIT 0x3FFF
#define NUMERIC_DEC_DIGITS 4
#define NUMERIC_EXPONENT_LIMIT (PG_INT32_MAX / 2)

/* The jsonb being built from a json value by pg_parse_json's callbacks. */
typedef struct JsonBuild
{
	JsonbParseState *state;
	JsonbValue *result;			/* the document, once its container closed */
	JsonbValue	scalar;			/* the document, when it is a scalar */
	bool		is_scalar;
	bool		fails;			/* holds what jsonb cannot: give up */
} JsonBuild;

/*
 * Classify typid (domains resolved to their base type) for am_push_value.
 * Array element types are classified too, allocated in cxt.
 */
void
am_init_json_type(JsonColumnType *jt, Oid typid, MemoryContext cxt)
{
	Oid			base = getBaseType(typid);
	bool		isvarlena;
	Oid			elemtype;

	memset(jt, 0, sizeof(*jt));
	jt->typid = base;
	get_typlenbyvalalign(base, &jt->typlen, &jt->typbyval, &jt->typalign);
	getTypeOutputInfo(base, &jt->outfunc, &isvarlena);

	switch (base)
	{
		case BOOLOID:
			jt->category = JC_BOOL;
			break;
		case INT2OID:
		case INT4OID:
		case INT8OID:
			jt->category = JC_INTEGER;
			break;
		case FLOAT4OID:
		case FLOAT8OID:
			jt->category = JC_FLOAT;
			break;
		case NUMERICOID:
			jt->category = JC_NUMERIC;
			break;
		case DATEOID:
		case TIMESTAMPOID:
		case TIMESTAMPTZOID:
			jt->category = JC_DATETIME;
			break;
		case JSONBOID:
			jt->category = JC_JSONB;
			break;
		case JSONOID:
			jt->category = JC_JSON;
			break;
		case TEXTOID:
		case VARCHAROID:
		case BPCHAROID:
			jt->category = JC_TEXT;
			break;
		default:
			elemtype = get_element_type(base);
			if (OidIsValid(elemtype) && !type_is_rowtype(elemtype))
			{
				jt->category = JC_ARRAY;
				jt->elem = MemoryContextAlloc(cxt, sizeof(JsonColumnType));
				am_init_json_type(jt->elem, elemtype, cxt);
				if (jt->elem->category == JC_ARRAY)
					jt->category = JC_OTHER;	/* cannot happen: arrays nest */
			}
			else
				jt->category = JC_OTHER;
			break;
	}
}

/* The value as text, the way its output function writes it. */
char *
am_value_text(Datum value, const JsonColumnType *jt)
{
	if (jt->category == JC_TEXT)
		return TextDatumGetCString(value);
	return OidOutputFunctionCall(jt->outfunc, value);
}

static void
push_string(JsonbParseState **state, char *s, int len)
{
	JsonbValue	v;

	v.type = jbvString;
	v.val.string.val = s;
	v.val.string.len = len;
	pushJsonbValue(state, (*state)->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, &v);
}

static void
push_numeric(JsonbParseState **state, Numeric n)
{
	JsonbValue	v;

	v.type = jbvNumeric;
	v.val.numeric = n;
	pushJsonbValue(state, (*state)->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, &v);
}

/*
 * Would numeric_in accept this JSON number token?  It raises "value
 * overflows numeric format" for an exponent beyond NUMERIC_EXPONENT_LIMIT,
 * a display scale (fraction digits less the exponent) beyond
 * NUMERIC_DSCALE_LIMIT, or a weight (the power of ten of the first nonzero
 * digit, in base-10000 digits) outside int16.  The token is valid JSON:
 * -?digits(.digits)?([eE][+-]?digits)?.
 */
static bool
json_number_fits(const char *s)
{
	const char *p = s;
	int64		nint = 0;
	int64		nfrac = 0;
	int64		first = -1;		/* index of the first nonzero digit */
	int64		exponent = 0;
	int64		dscale;

	if (*p == '-')
		p++;
	for (; *p >= '0' && *p <= '9'; p++, nint++)
		if (first < 0 && *p != '0')
			first = nint;
	if (*p == '.')
		for (p++; *p >= '0' && *p <= '9'; p++, nfrac++)
			if (first < 0 && *p != '0')
				first = nint + nfrac;
	if (*p == 'e' || *p == 'E')
	{
		bool		negative = false;

		p++;
		if (*p == '+' || *p == '-')
			negative = *p++ == '-';
		for (; *p >= '0' && *p <= '9'; p++)
			if (exponent <= PG_INT32_MAX)
				exponent = exponent * 10 + (*p - '0');
		if (negative)
			exponent = -exponent;
	}
	if (exponent >= NUMERIC_EXPONENT_LIMIT || exponent <= -NUMERIC_EXPONENT_LIMIT)
		return false;
	dscale = Max(nfrac - exponent, 0);
	if (dscale > NUMERIC_DSCALE_LIMIT)
		return false;
	if (first >= 0)
	{
		int64		power = nint - 1 - first + exponent;
		int64		weight = power >= 0 ? power / NUMERIC_DEC_DIGITS :
			-((-power - 1) / NUMERIC_DEC_DIGITS + 1);

		if (weight > PG_INT16_MAX || weight < PG_INT16_MIN)
			return false;
	}
	return true;
}

/* Push v into the container being built, as an element or a member's value. */
static void
build_push(JsonBuild *b, JsonbValue *v)
{
	pushJsonbValue(&b->state, b->state->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE, v);
}

static void
build_object_start(void *arg)
{
	JsonBuild  *b = (JsonBuild *) arg;

	if (!b->fails)
		pushJsonbValue(&b->state, WJB_BEGIN_OBJECT, NULL);
}

static void
build_object_end(void *arg)
{
	JsonBuild  *b = (JsonBuild *) arg;

	if (!b->fails)
		b->result = pushJsonbValue(&b->state, WJB_END_OBJECT, NULL);
}

static void
build_array_start(void *arg)
{
	JsonBuild  *b = (JsonBuild *) arg;

	if (!b->fails)
		pushJsonbValue(&b->state, WJB_BEGIN_ARRAY, NULL);
}

static void
build_array_end(void *arg)
{
	JsonBuild  *b = (JsonBuild *) arg;

	if (!b->fails)
		b->result = pushJsonbValue(&b->state, WJB_END_ARRAY, NULL);
}

static void
build_field(void *arg, char *fname, bool isnull)
{
	JsonBuild  *b = (JsonBuild *) arg;
	JsonbValue	k;

	if (b->fails)
		return;
	k.type = jbvString;
	k.val.string.len = strlen(fname);
	k.val.string.val = fname;
	if (k.val.string.len > JENTRY_OFFLENMASK)
	{
		b->fails = true;
		return;
	}
	pushJsonbValue(&b->state, WJB_KEY, &k);
}

static void
build_scalar(void *arg, char *token, JsonTokenType type)
{
	JsonBuild  *b = (JsonBuild *) arg;
	JsonbValue	v;

	if (b->fails)
		return;
	switch (type)
	{
		case JSON_TOKEN_STRING:
			v.type = jbvString;
			v.val.string.len = strlen(token);
			v.val.string.val = token;
			if (v.val.string.len > JENTRY_OFFLENMASK)
			{
				b->fails = true;
				return;
			}
			break;
		case JSON_TOKEN_NUMBER:
			if (!json_number_fits(token))
			{
				b->fails = true;
				return;
			}
			v.type = jbvNumeric;
			v.val.numeric = DatumGetNumeric(DirectFunctionCall3(numeric_in,
																CStringGetDatum(token),
																ObjectIdGetDatum(InvalidOid),
																Int32GetDatum(-1)));
			break;
		case JSON_TOKEN_TRUE:
		case JSON_TOKEN_FALSE:
			v.type = jbvBool;
			v.val.boolean = type == JSON_TOKEN_TRUE;
			break;
		case JSON_TOKEN_NULL:
			v.type = jbvNull;
			break;
		default:
			elog(ERROR, "unexpected json token type %d", (int) type);
			return;
	}
	if (b->state == NULL)
	{
		b->scalar = v;
		b->is_scalar = true;
	}
	else
		build_push(b, &v);
}

/*
 * The json text s (len bytes) as a jsonb value in *out (a scalar, or a
 * container as jbvBinary); false if jsonb cannot hold it.
 */
static bool
json_build(char *s, int len, JsonbValue *out)
{
	JsonLexContext *lex = makeJsonLexContextCstringLen(s, len, GetDatabaseEncoding(), true);
	JsonSemAction sem;
	JsonBuild	b;
	Jsonb	   *jb;

	memset(&b, 0, sizeof(b));
	memset(&sem, 0, sizeof(sem));
	sem.semstate = &b;
	sem.object_start = build_object_start;
	sem.object_end = build_object_end;
	sem.array_start = build_array_start;
	sem.array_end = build_array_end;
	sem.object_field_start = build_field;
	sem.scalar = build_scalar;
	if (pg_parse_json(lex, &sem) != JSON_SUCCESS || b.fails)
		return false;
	if (b.is_scalar)
	{
		*out = b.scalar;
		return true;
	}
	jb = JsonbValueToJsonb(b.result);
	out->type = jbvBinary;
	out->val.binary.data = &jb->root;
	out->val.binary.len = VARSIZE(jb) - VARHDRSZ;
	return true;
}

/*
 * json_build in a subtransaction.  Only for a database not in UTF8 and a
 * value with a \u escape: the lexer converts an escaped character to the
 * database encoding and raises when it cannot.
 */
/* json_build's arguments and result, for am_subxact_try. */
typedef struct JsonBuildCall
{
	char	   *s;
	int			len;
	JsonbValue *out;
	bool		ok;
} JsonBuildCall;

static void
json_build_call(void *arg)
{
	JsonBuildCall *c = (JsonBuildCall *) arg;

	c->ok = json_build(c->s, c->len, c->out);
}

static bool
json_build_guarded(char *s, int len, JsonbValue *out)
{
	JsonBuildCall c = {s, len, out, false};

	return am_subxact_try(json_build_call, &c, NULL) && c.ok;
}

/* Does the json text contain a \u escape (or what looks like one)? */
static bool
has_unicode_escape(const char *s, int len)
{
	for (int i = 0; i + 1 < len; i++)
		if (s[i] == '\\' && s[i + 1] == 'u')
			return true;
	return false;
}

/*
 * Push a json value: as jsonb when jsonb can hold it, else as a JSON string
 * holding its text (see the file header).
 */
static void
push_json(JsonbParseState **state, JsonbIteratorToken tok, Datum value)
{
	text	   *t = DatumGetTextPP(value);
	char	   *s = VARDATA_ANY(t);
	int			len = VARSIZE_ANY_EXHDR(t);
	JsonbValue	v;
	bool		ok;

	if (GetDatabaseEncoding() != PG_UTF8 && has_unicode_escape(s, len))
		ok = json_build_guarded(s, len, &v);
	else
		ok = json_build(s, len, &v);
	if (ok)
		pushJsonbValue(state, tok, &v);
	else
		push_string(state, s, len);
}

/*
 * Push one value (an object member's value or an array element) into the
 * jsonb being built.
 */
void
am_push_value(JsonbParseState **state, Datum value, bool isnull,
			  const JsonColumnType *jt)
{
	JsonbIteratorToken tok = (*state)->contVal.type == jbvArray ? WJB_ELEM : WJB_VALUE;
	JsonbValue	v;

	if (isnull)
	{
		v.type = jbvNull;
		pushJsonbValue(state, tok, &v);
		return;
	}

	switch (jt->category)
	{
		case JC_BOOL:
			v.type = jbvBool;
			v.val.boolean = DatumGetBool(value);
			pushJsonbValue(state, tok, &v);
			break;
		case JC_INTEGER:
			{
				int64		i;

				if (jt->typid == INT2OID)
					i = DatumGetInt16(value);
				else if (jt->typid == INT4OID)
					i = DatumGetInt32(value);
				else
					i = DatumGetInt64(value);
				push_numeric(state, int64_to_numeric(i));
			}
			break;
		case JC_FLOAT:
			{
				double		d = jt->typid == FLOAT4OID ?
				(double) DatumGetFloat4(value) : DatumGetFloat8(value);

				if (isnan(d) || isinf(d))
				{
					char	   *s = am_value_text(value, jt);

					push_string(state, s, strlen(s));
				}
				else
					push_numeric(state, DatumGetNumeric(DirectFunctionCall1(float8_numeric,
																			Float8GetDatum(d))));
			}
			break;
		case JC_NUMERIC:
			{
				Numeric		n = DatumGetNumeric(value);

				if (numeric_is_nan(n) || numeric_is_inf(n))
				{
					char	   *s = am_value_text(value, jt);

					push_string(state, s, strlen(s));
				}
				else
					push_numeric(state, n);
			}
			break;
		case JC_DATETIME:
			{
				char		buf[MAXDATELEN + 1];

				JsonEncodeDateTime(buf, value, jt->typid, NULL);
				push_string(state, pstrdup(buf), strlen(buf));
			}
			break;
		case JC_JSON:
			push_json(state, tok, value);
			break;
		case JC_JSONB:
			{
				Jsonb	   *jb = DatumGetJsonbP(value);

				v.type = jbvBinary;
				v.val.binary.data = &jb->root;
				v.val.binary.len = VARSIZE(jb) - VARHDRSZ;
				pushJsonbValue(state, tok, &v);
			}
			break;
		case JC_TEXT:
			{
				text	   *t = DatumGetTextPP(value);

				push_string(state, VARDATA_ANY(t), VARSIZE_ANY_EXHDR(t));
			}
			break;
		case JC_ARRAY:
			{
				ArrayType  *arr = DatumGetArrayTypeP(value);
				Datum	   *elems;
				bool	   *enulls;
				int			nelems;

				if (ARR_NDIM(arr) > 1)
				{
					char	   *s = am_value_text(value, jt);

					push_string(state, s, strlen(s));
					break;
				}
				deconstruct_array(arr, jt->elem->typid, jt->elem->typlen,
								  jt->elem->typbyval, jt->elem->typalign,
								  &elems, &enulls, &nelems);
				pushJsonbValue(state, WJB_BEGIN_ARRAY, NULL);
				for (int i = 0; i < nelems; i++)
					am_push_value(state, elems[i], enulls[i], jt->elem);
				pushJsonbValue(state, WJB_END_ARRAY, NULL);
			}
			break;
		case JC_OTHER:
			{
				char	   *s = am_value_text(value, jt);

				push_string(state, s, strlen(s));
			}
			break;
	}
}

/*
 * A text datum as it may go into a B-tree index: an entry larger than about
 * 2700 bytes makes the insert fail, and a platform write must never fail
 * for the length of a value.  A text longer than AM_INDEXED_MAX bytes is cut
 * at a character boundary and ends with "…" and the MD5 of the whole text,
 * so distinct long values stay distinct and equal ones equal.
 */
Datum
am_indexable_text(Datum value)
{
	text	   *t = DatumGetTextPP(value);
	int			len = VARSIZE_ANY_EXHDR(t);
	const char *p = VARDATA_ANY(t);
	char		md5[33];		/* hex MD5 */
	const char *errstr = NULL;
	StringInfoData buf;

	if (len <= AM_INDEXED_MAX)
		return value;
	if (!pg_md5_hash(p, len, md5, &errstr))
		elog(ERROR, "could not compute an MD5 hash: %s", errstr);
	initStringInfo(&buf);
	appendBinaryStringInfo(&buf, p, pg_mbcliplen(p, len, AM_INDEXED_MAX - 64));
	appendStringInfo(&buf, "…%s", md5);
	return PointerGetDatum(cstring_to_text_with_len(buf.data, buf.len));
}
