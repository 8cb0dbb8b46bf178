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
 * IDENTIFICATION
 *	  src/rowjson.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include <math.h>

#include "activity_monitor.h"
#include "catalog/pg_type.h"
#include "fmgr.h"
#include "utils/array.h"
#include "utils/builtins.h"
#include "utils/datetime.h"
#include "utils/fmgrprotos.h"
#include "utils/json.h"
#include "utils/jsonb.h"
#include "utils/lsyscache.h"
#include "utils/numeric.h"

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
			value = DirectFunctionCall1(jsonb_in,
										CStringGetDatum(TextDatumGetCString(value)));
			/* FALLTHROUGH */
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
