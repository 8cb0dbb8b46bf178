/*-------------------------------------------------------------------------
 *
 * subxact.c
 *	  Running a piece of work that may raise an ERROR without letting the
 *	  ERROR escape: the one way PostgreSQL 15 allows (it has no soft-error
 *	  API), a subtransaction rolled back on error.
 *
 * Used where a failure must not break what surrounds it: a rule that could
 * raise must not fail a platform write (rules.c), a json value the lexer
 * cannot convert must still be recorded (rowjson.c), a template is checked
 * when a rule is written (rules.c), an alert that cannot be written must not
 * stop the batch (alerts.c).  A query cancel (statement_timeout,
 * pg_cancel_backend) is never such a failure: it is raised again.
 *
 * IDENTIFICATION
 *	  src/subxact.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/xact.h"
#include "utils/memutils.h"
#include "utils/resowner.h"

/*
 * Run fn(arg) in a subtransaction.  Returns true when it returned; false
 * when it raised an ERROR, which is rolled back with everything fn did, and
 * then *edata (if edata is not NULL) holds the error, allocated in the
 * caller's memory context.  Memory fn allocates in the caller's context
 * (current on entry) survives either way.
 */
bool
am_subxact_try(void (*fn) (void *arg), void *arg, ErrorData **edata)
{
	MemoryContext cxt = CurrentMemoryContext;
	ResourceOwner owner = CurrentResourceOwner;
	volatile bool ok = true;

	BeginInternalSubTransaction(NULL);
	MemoryContextSwitchTo(cxt);
	PG_TRY();
	{
		fn(arg);
		ReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
	}
	PG_CATCH();
	{
		ErrorData  *e;

		MemoryContextSwitchTo(cxt);
		e = CopyErrorData();
		FlushErrorState();
		RollbackAndReleaseCurrentSubTransaction();
		MemoryContextSwitchTo(cxt);
		CurrentResourceOwner = owner;
		if (e->sqlerrcode == ERRCODE_QUERY_CANCELED)
			ReThrowError(e);
		if (edata)
			*edata = e;
		else
			FreeErrorData(e);
		ok = false;
	}
	PG_END_TRY();
	return ok;
}
