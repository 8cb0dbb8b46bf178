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
#include "access/xact.h"
#include "commands/dbcommands.h"
#include "commands/defrem.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "nodes/parsenodes.h"
#include "tcop/utility.h"
#include "utils/acl.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

static ProcessUtility_hook_type prev_process_utility = NULL;

static void
run_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
			ProcessUtilityContext context, ParamListInfo params,
			QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	if (prev_process_utility)
		prev_process_utility(pstmt, queryString, readOnlyTree, context, params,
							 queryEnv, dest, qc);
	else
		standard_ProcessUtility(pstmt, queryString, readOnlyTree, context, params,
								queryEnv, dest, qc);
}

/* Does stmt set option name, and to what (*value)? The last one counts. */
static bool
bool_option(AlterDatabaseStmt *stmt, const char *name, bool *value)
{
	ListCell   *lc;
	bool		found = false;

	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, name) == 0)
		{
			*value = defGetBoolean(opt);
			found = true;
		}
	}
	return found;
}

/* Does a DROP DATABASE statement say WITH (FORCE)? */
static bool
drop_is_forced(DropdbStmt *stmt)
{
	ListCell   *lc;

	foreach(lc, stmt->options)
	{
		DefElem    *opt = lfirst_node(DefElem, lc);

		if (strcmp(opt->defname, "force") == 0)
			return true;
	}
	return false;
}

/*
 * Before any utility statement: release the activity partitions capture
 * keeps open (so the session's own DDL on them works).  Before DROP
 * DATABASE, stop that database's worker, which would block the drop; this
 * hook runs before the drop's own checks, so only for a role that may drop
 * it, outside a transaction block, once the drop's own lock is held and
 * only if the drop can then succeed (am_worker_stop_for_drop()); the
 * worker is restarted if the drop's transaction does not commit, however
 * it ends, and ends for good if it does (also one that was not running but
 * waited to be restarted).  After COMMIT PREPARED, wake the
 * worker when this transaction commits: the prepared transaction may hold
 * matched events, and the backend that captured them prepared it, which
 * does not wake the worker (whether it holds any is not known here: at
 * worst the worker runs one round for nothing).  Template databases have
 * no worker (a connection would keep CREATE DATABASE from copying them):
 * after CREATE DATABASE, after ALTER DATABASE ... IS_TEMPLATE false and
 * after ALLOW_CONNECTIONS true (from false), the database's worker is
 * started when the transaction commits, if the transaction leaves the
 * database a connectable non-template without a running worker (it exits
 * at once if the database lacks the extension); after IS_TEMPLATE true its
 * worker is woken, to leave (only a change of IS_TEMPLATE counts).  Only a
 * superuser may make a database a template: its owner could otherwise stop
 * the monitoring.
 */
static void
am_process_utility(PlannedStmt *pstmt, const char *queryString, bool readOnlyTree,
				   ProcessUtilityContext context, ParamListInfo params,
				   QueryEnvironment *queryEnv, DestReceiver *dest, QueryCompletion *qc)
{
	Oid			dboid = InvalidOid;
	Oid			alter_db = InvalidOid;	/* ALTER DATABASE ... IS_TEMPLATE */
	bool		template = false;	/* what it sets */
	bool		was_template = false;	/* what it was */
	Oid			allow_db = InvalidOid;	/* ... ALLOW_CONNECTIONS from false to true */
	bool		allow = false;

	am_sink_close();
	if (IsA(pstmt->utilityStmt, AlterDatabaseStmt))
	{
		AlterDatabaseStmt *stmt = (AlterDatabaseStmt *) pstmt->utilityStmt;

		if (bool_option(stmt, "allow_connections", &allow) && allow)
		{
			allow_db = get_database_oid(stmt->dbname, true);
			if (OidIsValid(allow_db) && am_database_allows_connections(allow_db))
				allow_db = InvalidOid;
		}
		if (bool_option(stmt, "is_template", &template))
		{
			/*
			 * A template has no worker: only a superuser may stop one this
			 * way.  Whether the database has a running worker is not asked:
			 * its owner can keep it from running for a while (a failing DROP
			 * DATABASE).
			 */
			if (template && !superuser())
				ereport(ERROR,
						(errcode(ERRCODE_INSUFFICIENT_PRIVILEGE),
						 errmsg("permission denied to make database \"%s\" a template", stmt->dbname),
						 errdetail("With activity_monitor loaded, only a superuser can: a template database has no monitoring worker."),
						 errhint("Ask a superuser.")));
			alter_db = get_database_oid(stmt->dbname, true);
			if (OidIsValid(alter_db))
				was_template = am_database_is_template(alter_db);
		}
	}
	if (IsA(pstmt->utilityStmt, DropdbStmt))
	{
		dboid = get_database_oid(((DropdbStmt *) pstmt->utilityStmt)->dbname, true);
		if (!OidIsValid(dboid) || dboid == MyDatabaseId ||
			!pg_database_ownercheck(dboid, GetUserId()))
			dboid = InvalidOid;
		else
		{
			/* a drop that must fail at once leaves the worker alone */
			PreventInTransactionBlock(context == PROCESS_UTILITY_TOPLEVEL, "DROP DATABASE");
			/* so does one that is bound to fail (it runs all the same) */
			if (!am_worker_stop_for_drop(((DropdbStmt *) pstmt->utilityStmt)->dbname, dboid,
										 drop_is_forced((DropdbStmt *) pstmt->utilityStmt)))
				dboid = InvalidOid;
		}
	}
	if (!OidIsValid(dboid))
	{
		run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
		if (IsA(pstmt->utilityStmt, TransactionStmt) &&
			((TransactionStmt *) pstmt->utilityStmt)->kind == TRANS_STMT_COMMIT_PREPARED)
			am_wake_at_commit();
		else if (IsA(pstmt->utilityStmt, CreatedbStmt))
		{
			Oid			created = get_database_oid(((CreatedbStmt *) pstmt->utilityStmt)->dbname, true);

			if (OidIsValid(created))
				am_worker_at_commit(created, true);
		}
		else if (OidIsValid(alter_db) && template != was_template)
		{
			/*
			 * Only a change counts: becoming a template wakes the worker (to
			 * leave), ceasing to be one starts it, unless one runs already.
			 */
			if (template)
				am_worker_at_commit(alter_db, false);
			else
				am_worker_at_commit(alter_db, true);
		}
		/* a database that allows connections again gets its worker back */
		if (OidIsValid(allow_db))
			am_worker_at_commit(allow_db, true);
		return;
	}
	run_utility(pstmt, queryString, readOnlyTree, context, params, queryEnv, dest, qc);
}

void
_PG_init(void)
{
	am_actor_init();
	am_define_worker_gucs();
	am_define_alert_gucs();
	am_define_rule_gucs();
	MarkGUCPrefixReserved("activity_monitor");
	am_catalog_init();
	am_sink_init();
	prev_process_utility = ProcessUtility_hook;
	ProcessUtility_hook = am_process_utility;
	if (process_shared_preload_libraries_in_progress)
	{
		am_wake_init();
		am_register_launcher();
	}
}
