/*-------------------------------------------------------------------------
 *
 * activity_monitor.c
 *	  Module load: settings and per-backend callbacks.
 *
 * The library works preloaded (shared_preload_libraries) or loaded on first
 * use by a trigger or function.  Preloaded, it also registers the launcher
 * that starts the per-database workers at server start.
 *
 * IDENTIFICATION
 *	  src/activity_monitor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "commands/dbcommands.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

static ProcessUtility_hook_type prev_process_utility = NULL;

/*
 * Before any utility statement: release the activity partitions capture
 * keeps open (so the session's own DDL on them works), and before DROP
 * DATABASE stop that database's worker (which would block the drop).
 */
static void
am_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	am_sink_close();
	if (IsA(pstmt->utilityStmt, DropdbStmt))
	{
		Oid			dboid = get_database_oid(((DropdbStmt *) pstmt->utilityStmt)->dbname, true);

		if (OidIsValid(dboid))
			am_worker_stop_for_database(dboid);
	}
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

void
_PG_init(void)
{
	am_actor_init();
	am_define_worker_gucs();
	MarkGUCPrefixReserved("activity_monitor");
	am_sink_init();
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = am_process_utility;
	if (process_shared_preload_libraries_in_progress)
	{
		am_wake_init();
		am_register_launcher();
	}
}
