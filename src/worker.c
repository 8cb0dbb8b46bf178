/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers: a launcher at server start, and one worker
 *	  per database that has the extension, running its duties each round.
 *
 * Which databases: every database where the extension is installed, found
 * without configuration.  At server start (library preloaded) the launcher
 * registers a dynamic worker for each connectable database; a worker that
 * finds no extension in its database exits with code 0, which unregisters
 * it, so a database without the extension costs one short-lived process at
 * start and nothing after.  CREATE EXTENSION calls start_worker(), which
 * registers the database's worker when its transaction commits, so
 * DROP/CREATE EXTENSION need no restart.  Dynamic workers have a restart
 * time: after a crash or kill -9 the postmaster starts them again.  A
 * session advisory lock keeps one worker per database however many were
 * started.
 *
 * Each round runs the duties, each in its own transaction; an ERROR in one
 * is logged, recorded in activity_monitor.worker_state and retried next
 * round, and never stops the worker or the other duties.  The alert duty
 * runs whenever a committing transaction with matched events sets the
 * worker's latch (wake.c), and at least every naptime; partition
 * maintenance runs once per naptime.  SIGTERM (and DROP DATABASE, through
 * the utility hook) end the worker with exit code 0, for good.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/heapam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/pg_database.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "tcop/tcopprot.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"

PG_FUNCTION_INFO_V1(activity_monitor_start_worker);

PGDLLEXPORT void activity_monitor_launcher_main(Datum main_arg);
PGDLLEXPORT void activity_monitor_worker_main(Datum main_arg);

#define WORKER_TYPE "activity_monitor worker"
#define LAUNCHER_TYPE "activity_monitor launcher"

/* Advisory lock keys ("acti", "vmon") of the one-worker-per-database lock. */
#define WORKER_LOCK_KEY1 0x61637469
#define WORKER_LOCK_KEY2 0x766d6f6e

static int	naptime = 10;		/* activity_monitor.naptime, seconds */
static int	alert_delay = 10;	/* activity_monitor.alert_delay, milliseconds */
static bool start_at_commit = false;
static volatile sig_atomic_t got_sigterm = false;

/* SIGTERM ends the worker cleanly at the end of its round (exit 0). */
static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/*
 * Stop the worker of database dboid and wait for it (at most 10 s): DROP
 * DATABASE cannot proceed while it is connected.  It exits with code 0, so
 * the postmaster does not start it again.
 */
void
am_worker_stop_for_database(Oid dboid)
{
	for (int i = 0; i < 100; i++)
	{
		int			pid = am_wake_worker_pid(dboid);

		if (pid == 0)
			return;
		if (i == 0)
			kill(pid, SIGTERM);
		pg_usleep(100 * 1000L);
	}
}

/* Define the worker settings; called from _PG_init. */
void
am_define_worker_gucs(void)
{
	DefineCustomIntVariable("activity_monitor.naptime",
							"Seconds between two rounds of the activity_monitor worker.",
							NULL, &naptime, 10, 1, 3600, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.alert_delay",
							"Shortest time between two alert rounds of the activity_monitor worker.",
							"Events committed meanwhile are processed together; "
							"a notification waits at most this long more.",
							&alert_delay, 10, 0, 1000, PGC_SIGHUP, GUC_UNIT_MS,
							NULL, NULL, NULL);
}

/*
 * Register the worker of database dboid.  Returns false, having said why in
 * the log, when the postmaster has no free worker slot.
 */
static bool
register_db_worker(Oid dboid)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 5;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "activity_monitor");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "activity_monitor_worker_main");
	snprintf(w.bgw_name, BGW_MAXLEN, "activity_monitor worker for database %u", dboid);
	snprintf(w.bgw_type, BGW_MAXLEN, WORKER_TYPE);
	w.bgw_main_arg = ObjectIdGetDatum(dboid);
	w.bgw_notify_pid = 0;
	if (RegisterDynamicBackgroundWorker(&w, NULL))
		return true;
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("could not start the activity_monitor worker for database %u", dboid),
			 errdetail("No background worker slot is free (max_worker_processes = %d).",
					   max_worker_processes),
			 errhint("Raise max_worker_processes: activity_monitor needs one worker per database that has the extension, plus one at server start.")));
	return false;
}

/* Register the launcher; called from _PG_init while preloading. */
void
am_register_launcher(void)
{
	BackgroundWorker w;

	memset(&w, 0, sizeof(w));
	w.bgw_flags = BGWORKER_SHMEM_ACCESS | BGWORKER_BACKEND_DATABASE_CONNECTION;
	w.bgw_start_time = BgWorkerStart_RecoveryFinished;
	w.bgw_restart_time = 10;
	snprintf(w.bgw_library_name, BGW_MAXLEN, "activity_monitor");
	snprintf(w.bgw_function_name, BGW_MAXLEN, "activity_monitor_launcher_main");
	snprintf(w.bgw_name, BGW_MAXLEN, LAUNCHER_TYPE);
	snprintf(w.bgw_type, BGW_MAXLEN, LAUNCHER_TYPE);
	RegisterBackgroundWorker(&w);
}

static void
start_worker_xact_callback(XactEvent event, void *arg)
{
	if (event == XACT_EVENT_COMMIT && start_at_commit)
		register_db_worker(MyDatabaseId);
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		start_at_commit = false;
}

/*
 * start_worker(): start this database's worker when the transaction commits
 * (before that, the worker could not see the extension being created).
 */
Datum
activity_monitor_start_worker(PG_FUNCTION_ARGS)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(start_worker_xact_callback, NULL);
		registered = true;
	}
	start_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * The launcher: register a worker for every connectable database, retrying
 * those that found no free slot each naptime, then exit 0 (for good).
 */
void
activity_monitor_launcher_main(Datum main_arg)
{
	List	   *pending = NIL;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, die);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnection(NULL, NULL, 0);

	{
		Relation	rel;
		TableScanDesc scan;
		HeapTuple	tup;

		StartTransactionCommand();
		rel = table_open(DatabaseRelationId, AccessShareLock);
		scan = table_beginscan_catalog(rel, 0, NULL);
		while ((tup = heap_getnext(scan, ForwardScanDirection)) != NULL)
		{
			Form_pg_database db = (Form_pg_database) GETSTRUCT(tup);
			MemoryContext old;

			if (!db->datallowconn || db->datistemplate)
				continue;
			old = MemoryContextSwitchTo(TopMemoryContext);
			pending = lappend_oid(pending, db->oid);
			MemoryContextSwitchTo(old);
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);
		CommitTransactionCommand();
	}

	while (pending != NIL)
	{
		List	   *failed = NIL;
		ListCell   *lc;

		foreach(lc, pending)
		{
			if (!register_db_worker(lfirst_oid(lc)))
				failed = lappend_oid(failed, lfirst_oid(lc));
		}
		pending = failed;
		if (pending == NIL)
			break;
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 naptime * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
		CHECK_FOR_INTERRUPTS();
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
	}
	proc_exit(0);
}

/*
 * Run sql in a transaction of its own.  Returns true on success with the
 * first column of the first row (or NULL) in *result; on ERROR logs it,
 * rolls back and returns false with the message in *error.  Both strings are
 * allocated in the caller's memory context.
 */
static bool
run_sql(const char *what, const char *sql, char **result, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	*result = NULL;
	*error = NULL;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		SPI_connect();
		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, what);
		SPI_execute(sql, false, 0);
		if (SPI_processed > 0 && SPI_tuptable != NULL)
		{
			char	   *v = SPI_getvalue(SPI_tuptable->vals[0], SPI_tuptable->tupdesc, 1);

			if (v)
				*result = MemoryContextStrdup(cxt, v);
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		*error = psprintf("%s: %s", what, edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

static char dbname[NAMEDATALEN];

/* Is the extension installed in this database?  Also notes its name. */
static bool
extension_present(void)
{
	bool		present;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	present = OidIsValid(get_extension_oid("activity_monitor", true));
	strlcpy(dbname, get_database_name(MyDatabaseId), NAMEDATALEN);
	CommitTransactionCommand();
	return present;
}

/* Record the worker's start in worker_state. */
static void
record_start(void)
{
	char	   *result;
	char	   *error;
	char	   *sql = psprintf("UPDATE activity_monitor.worker_state SET pid = %d, "
							   "started_at = pg_catalog.now(), starts = starts + 1",
							   MyProcPid);

	(void) run_sql("record start", sql, &result, &error);
}

/*
 * Partition maintenance duty, skipped while pg_restore is connected to the
 * database (the dump brings its own partitions).  Records its outcome.
 */
static void
duty_partitions(void)
{
	char	   *result;
	char	   *error;
	char	   *sql;

	if (run_sql("partition maintenance",
				"SELECT pg_catalog.format('created %s, retired %s', m.created, m.retired) "
				"FROM activity_monitor._maintain() m "
				"WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_stat_activity "
				"WHERE datname = pg_catalog.current_database() "
				"AND application_name = 'pg_restore')",
				&result, &error))
	{
		if (result == NULL)
			return;
		sql = psprintf("UPDATE activity_monitor.worker_state SET last_run_at = pg_catalog.now(), "
					   "last_result = %s, "
					   "partitions_created = partitions_created + (pg_catalog.regexp_match(%s, 'created (\\d+)'))[1]::int, "
					   "partitions_retired = partitions_retired + (pg_catalog.regexp_match(%s, 'retired (\\d+)'))[1]::int",
					   quote_literal_cstr(result), quote_literal_cstr(result),
					   quote_literal_cstr(result));
	}
	else
		sql = psprintf("UPDATE activity_monitor.worker_state SET last_run_at = pg_catalog.now(), "
					   "last_result = 'error', last_error = %s, last_error_at = pg_catalog.now()",
					   quote_literal_cstr(error));
	(void) run_sql("record maintenance", sql, &result, &error);
}

/* Record a duty's error in worker_state (it is in the server log already). */
static void
record_error(const char *error)
{
	char	   *result;
	char	   *error2;

	(void) run_sql("record error",
				   psprintf("UPDATE activity_monitor.worker_state SET last_error = %s, "
							"last_error_at = pg_catalog.now()", quote_literal_cstr(error)),
				   &result, &error2);
}

/*
 * Alert duty: process the events committed since the last batch (see
 * _process_alerts in the install script).  Errors are recorded like the
 * partition duty's; the batch is retried on the next wake-up.
 */
static void
duty_alerts(void)
{
	char	   *result;
	char	   *error;

	/* a large batch is processed a bounded number of events at a time */
	for (;;)
	{
		if (!run_sql("alert processing",
					 "SELECT p.more FROM activity_monitor._process_alerts() p",
					 &result, &error))
			break;
		if (result == NULL || strcmp(result, "t") != 0 || got_sigterm)
			return;
		CHECK_FOR_INTERRUPTS();
	}
	record_error(error);
}

/* Rollup duty: the per-minute counts behind the dashboard view. */
static void
duty_rollup(void)
{
	char	   *result;
	char	   *error;

	if (!run_sql("rollup", "SELECT activity_monitor._rollup()", &result, &error))
		record_error(error);
}

/*
 * A database's worker: one per database (advisory lock), gone for good
 * (exit 0) when the extension is not or no longer installed.
 */
void
activity_monitor_worker_main(Datum main_arg)
{
	Oid			dboid = DatumGetObjectId(main_arg);
	MemoryContext round_cxt;
	LOCKTAG		tag;
	TimestampTz last_partitions = 0;
	TimestampTz last_alerts = 0;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, 0);
	pgstat_report_appname(WORKER_TYPE);

	if (!extension_present())
		proc_exit(0);

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, WORKER_LOCK_KEY1, WORKER_LOCK_KEY2, 2);
	StartTransactionCommand();
	if (LockAcquire(&tag, ExclusiveLock, true, true) == LOCKACQUIRE_NOT_AVAIL)
	{
		elog(DEBUG1, "activity_monitor: database \"%s\" already has a worker", dbname);
		proc_exit(0);
	}
	CommitTransactionCommand();
	ereport(LOG,
			(errmsg("activity_monitor worker started for database \"%s\"", dbname)));

	round_cxt = AllocSetContextCreate(TopMemoryContext, "activity_monitor round",
									  ALLOCSET_DEFAULT_SIZES);
	MemoryContextSwitchTo(round_cxt);
	am_wake_register_worker();
	record_start();

	for (;;)
	{
		TimestampTz now;

		CHECK_FOR_INTERRUPTS();
		if (got_sigterm)
		{
			ereport(LOG,
					(errmsg("activity_monitor worker for database \"%s\" stops on request", dbname)));
			proc_exit(0);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
		}
		if (!extension_present())
		{
			ereport(LOG,
					(errmsg("activity_monitor worker for database \"%s\" stops: the extension was dropped",
							dbname)));
			proc_exit(0);
		}

		/*
		 * Alerts on every wake-up, but at most one round per alert_delay: under
		 * a stream of commits, each setting the latch, a round per commit would
		 * keep a core busy on tiny batches.  Partitions and rollup once per
		 * naptime.
		 */
		now = GetCurrentTimestamp();
		if (alert_delay > 0 && !TimestampDifferenceExceeds(last_alerts, now, alert_delay))
			(void) WaitLatch(MyLatch, WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 TimestampDifferenceMilliseconds(now,
															 TimestampTzPlusMilliseconds(last_alerts, alert_delay)) + 1,
							 PG_WAIT_EXTENSION);
		last_alerts = GetCurrentTimestamp();
		duty_alerts();
		now = GetCurrentTimestamp();
		if (TimestampDifferenceExceeds(last_partitions, now, naptime * 1000))
		{
			duty_partitions();
			duty_rollup();
			last_partitions = now;
		}

		MemoryContextReset(round_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 naptime * 1000L, PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
