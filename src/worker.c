/*-------------------------------------------------------------------------
 *
 * worker.c
 *	  The background workers: a launcher at server start, and one worker
 *	  per database that has the extension, running its duties each round.
 *
 * Which databases: every database where the extension is installed, found
 * without configuration.  At server start (library preloaded) the launcher
 * registers a dynamic worker for each connectable database, and stays to
 * register again every naptime those that found no free slot (a start at
 * commit too); a worker that
 * finds no extension in its database exits with code 0, which unregisters
 * it, so a database without the extension costs one short-lived process at
 * start and nothing after.  CREATE EXTENSION calls start_worker(), which
 * registers the database's worker when its transaction commits, so
 * DROP/CREATE EXTENSION need no restart.  A template database has no
 * worker (a connection would keep CREATE DATABASE from copying it): the
 * launcher skips it, start_worker() does not start one, and a worker whose
 * database becomes a template leaves (the utility hook wakes it at the
 * commit); CREATE DATABASE, a database no longer a template and one that
 * allows connections again start the database's worker at commit.  A
 * database that does not allow connections has none either: the launcher
 * skips it, and a worker started there (restarted, or raced) connects only
 * to leave for good.  Dynamic workers have a restart
 * time: after a crash or kill -9 the postmaster starts them again.  A
 * session advisory lock keeps one worker per database however many were
 * started.
 *
 * Each round runs the duties, each in its own transaction; an ERROR in one
 * is logged, recorded in activity_monitor.worker_state and retried next
 * round, and never stops the worker or the other duties.  The alert duty
 * runs whenever a committing transaction with matched events sets the
 * worker's latch (wake.c), and at least every naptime: it calls the alert
 * engine (alerts.c) directly, inside a transaction of its own per batch of
 * activity_monitor.alert_batch_size events.  Partition maintenance runs
 * once per naptime.
 *
 * The worker runs as the bootstrap superuser in a database whose owner may
 * be hostile: before any SQL it pins search_path (pg_catalog, pg_temp) with
 * a source ALTER DATABASE ... SET cannot override, and resets the settings
 * a database owner could use to stop it (read-only transactions, timeouts);
 * it runs SQL only through the extension's own functions, which pin their
 * search_path too, and the alert engine's own statements (schema-qualified,
 * under the pinned search_path), and only once the schema named
 * activity_monitor is the extension's (found by OID through pg_extension).
 *
 * It exits for good (code 0) only when its database or its extension goes
 * away: DROP EXTENSION, or a DROP DATABASE that passed its permission checks
 * (the utility hook marks the database in shared memory before SIGTERM, and
 * starts a new worker if the drop then fails).  Any other exit, a plain
 * SIGTERM included, is an exit code 1: the postmaster starts it again.
 *
 * IDENTIFICATION
 *	  src/worker.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/heapam.h"
#include "access/genam.h"
#include "access/htup_details.h"
#include "access/table.h"
#include "access/tableam.h"
#include "access/xact.h"
#include "catalog/namespace.h"
#include "catalog/pg_authid.h"
#include "catalog/pg_database.h"
#include "catalog/pg_subscription.h"
#include "catalog/pg_type.h"
#include "commands/dbcommands.h"
#include "commands/extension.h"
#include "executor/spi.h"
#include "fmgr.h"
#include "miscadmin.h"
#include "pgstat.h"
#include "postmaster/bgworker.h"
#include "postmaster/interrupt.h"
#include "replication/slot.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/lmgr.h"
#include "storage/lock.h"
#include "storage/proc.h"
#include "storage/procarray.h"
#include "tcop/tcopprot.h"
#include "utils/acl.h"
#include "utils/backend_status.h"
#include "utils/builtins.h"
#include "utils/guc.h"
#include "utils/guc_tables.h"
#include "utils/lsyscache.h"
#include "utils/memutils.h"
#include "utils/fmgroids.h"
#include "utils/snapmgr.h"
#include "utils/timestamp.h"
#include "detect.h"

PG_FUNCTION_INFO_V1(activity_monitor_start_worker);
PG_FUNCTION_INFO_V1(activity_monitor_min_retention);

PGDLLEXPORT void activity_monitor_launcher_main(Datum main_arg);
PGDLLEXPORT void activity_monitor_worker_main(Datum main_arg);

#define WORKER_TYPE "activity_monitor worker"
#define LAUNCHER_TYPE "activity_monitor launcher"

/*
 * The one-worker-per-database lock: an advisory lock tag ("acti", "vmon") in
 * a space of its own.  SQL's advisory-lock functions only make tags whose
 * fourth field is 1 or 2, so no role that can connect can take this lock
 * and make a starting worker believe its database already has one.
 */
#define WORKER_LOCK_KEY1 0x61637469
#define WORKER_LOCK_KEY2 0x766d6f6e
#define WORKER_LOCK_SPACE 0x414d

static int	naptime = 10;		/* activity_monitor.naptime, seconds */
static int	min_retention = 30 * MINS_PER_HOUR * HOURS_PER_DAY; /* activity_monitor.min_retention, minutes */
static int	alert_delay = 10;	/* activity_monitor.alert_delay, milliseconds */
static int	alert_batch_size = 10000;	/* activity_monitor.alert_batch_size, events */
static int	seal_interval = 5;	/* activity_monitor.seal_interval, seconds */
static int	seal_log_interval = 60; /* activity_monitor.seal_log_interval, seconds */
static bool start_at_commit = false;
static SubTransactionId start_subid = InvalidSubTransactionId;

/*
 * Other databases whose worker to start, or to wake, when this transaction
 * commits (CREATE DATABASE, ALTER DATABASE ... IS_TEMPLATE; see
 * am_worker_at_commit).  A few per transaction at most (beyond: an ERROR);
 * a transaction holding any cannot be prepared.
 */
#define AM_PENDING_DBS 8
static Oid	pending_start[AM_PENDING_DBS];
static int	npending_start = 0;
static Oid	pending_wake[AM_PENDING_DBS];
static int	npending_wake = 0;
static volatile sig_atomic_t got_sigterm = false;

static bool database_flags(Oid dboid, bool *template, bool *allowconn);
static void register_callbacks(void);

/* The database this transaction's DROP DATABASE stopped the workers of. */
static Oid	dropping_db = InvalidOid;

/* SIGTERM ends the worker cleanly at the end of its round (exit 0). */
static void
worker_sigterm(SIGNAL_ARGS)
{
	int			save_errno = errno;

	got_sigterm = true;
	SetLatch(MyLatch);
	errno = save_errno;
}

/* Whether database dboid has a prepared transaction. */
static bool
has_prepared_xacts(Oid dboid)
{
	Oid			argtypes[1] = {OIDOID};
	Datum		args[1] = {ObjectIdGetDatum(dboid)};
	bool		found;

	if (SPI_connect() != SPI_OK_CONNECT)
		elog(ERROR, "SPI_connect failed");
	if (SPI_execute_with_args("SELECT 1 FROM pg_catalog.pg_prepared_xact() p WHERE p.dbid = $1",
							  1, argtypes, args, NULL, false, 1) != SPI_OK_SELECT)
		elog(ERROR, "could not read the prepared transactions");
	found = SPI_processed > 0;
	SPI_finish();
	return found;
}

/* At the worker's exit: its database has no start in flight (wake.c). */
static void
worker_start_ended(int code, Datum arg)
{
	am_wake_start_end(DatumGetObjectId(arg));
}

/* Is process pid an activity_monitor worker (of any database)? */
static bool
is_our_worker(int pid)
{
	const char *type = GetBackgroundWorkerTypeByPid(pid);

	return type != NULL && strcmp(type, WORKER_TYPE) == 0;
}

/*
 * Send SIGTERM to the workers connected to database dboid (signal true),
 * or only count them; a worker restarted or started meanwhile is one too.
 */
static int
our_workers_in(Oid dboid, bool signal)
{
	int			n = 0;

	pgstat_clear_backend_activity_snapshot();
	for (int i = 1; i <= pgstat_fetch_stat_numbackends(); i++)
	{
		PgBackendStatus *be = &pgstat_fetch_stat_local_beentry(i)->backendStatus;

		if (be->st_databaseid == dboid && be->st_backendType == B_BG_WORKER &&
			is_our_worker(be->st_procpid))
		{
			n++;
			if (signal)
				kill(be->st_procpid, SIGTERM);
		}
	}
	return n;
}

/*
 * Whether the current user's DROP DATABASE of dboid can succeed once its
 * worker is stopped, as far as can be told before dropdb() runs; the
 * caller holds the drop's own lock on the database, so no session can
 * connect meanwhile.  What dropdb() refuses: a template, a database with
 * logical replication slots, subscriptions or prepared transactions, and
 * other sessions (not its worker; not autovacuum, which dropdb() ends):
 * with FORCE, one that the user may not terminate (the rule
 * TerminateOtherDBBackends() applies); without, any still connected after
 * 5 seconds (dropdb() waits as long for them to leave).
 */
static bool
drop_can_succeed(Oid dboid, bool force)
{
	int			nslots;
	int			nactive;

	if (am_database_is_template(dboid) ||
		ReplicationSlotsCountDBSlots(dboid, &nslots, &nactive) ||
		CountDBSubscriptions(dboid) > 0 ||
		has_prepared_xacts(dboid))
		return false;
	for (int tries = 0;; tries++)
	{
		int			others = 0;

		pgstat_clear_backend_activity_snapshot();
		for (int i = 1; i <= pgstat_fetch_stat_numbackends(); i++)
		{
			PgBackendStatus *be = &pgstat_fetch_stat_local_beentry(i)->backendStatus;
			PGPROC	   *proc;

			if (be->st_databaseid != dboid || be->st_procpid == MyProcPid ||
				(be->st_backendType == B_BG_WORKER && is_our_worker(be->st_procpid)))
				continue;
			if (!force)
			{
				if (be->st_backendType != B_AUTOVAC_WORKER)
					others++;
				continue;
			}
			proc = BackendPidGetProc(be->st_procpid);
			if (proc != NULL &&
				((superuser_arg(proc->roleId) && !superuser()) ||
				 (!has_privs_of_role(GetUserId(), proc->roleId) &&
				  !has_privs_of_role(GetUserId(), ROLE_PG_SIGNAL_BACKEND))))
				return false;
		}
		if (force || others == 0)
			return true;
		if (tries >= 50)
			return false;
		CHECK_FOR_INTERRUPTS();
		pg_usleep(100 * 1000L);
	}
}

/*
 * Before the DROP DATABASE of dbname (OID dboid) by a role that may drop it
 * (outside a transaction block): take the drop's own lock on the database
 * first (a drop that waits for it waits with the worker running), then, if
 * the drop can succeed (drop_can_succeed()), note the drop running and stop
 * the database's workers, waiting for them (at most 10 s): the drop cannot
 * proceed while one is connected.  A worker stopped so exits for good
 * (exit 0: not restarted, so that none can outlive its database); when the
 * drop's transaction ends, the transaction callback notes it committed,
 * or, if it aborted, whatever ended it (an ERROR, a cancel, the end of the
 * dropping session: the callback runs at a FATAL's exit too), registers a
 * worker again (without a free slot: the launcher retries).  Returns
 * whether the workers were stopped.
 */
bool
am_worker_stop_for_drop(const char *dbname, Oid dboid, bool force)
{
	LockSharedObject(DatabaseRelationId, dboid, 0, AccessExclusiveLock);
	/* still the database of that name (as dropdb() checks once locked) */
	if (get_database_oid(dbname, true) != dboid || !drop_can_succeed(dboid, force))
		return false;
	register_callbacks();
	dropping_db = dboid;
	am_wake_set_drop(dboid, AM_DROP_RUNNING);
	(void) our_workers_in(dboid, true);
	for (int i = 0; i < 100 && our_workers_in(dboid, false) > 0; i++)
	{
		CHECK_FOR_INTERRUPTS();
		pg_usleep(100 * 1000L);
	}
	return true;
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
	DefineCustomIntVariable("activity_monitor.alert_batch_size",
							"Most events the activity_monitor worker processes in one alert transaction.",
							"A longer backlog is worked through in several transactions, each committing its alerts.",
							&alert_batch_size, 10000, 1, 100000, PGC_SIGHUP, 0,
							NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.seal_interval",
							"Time between two sealing rounds of the activity_monitor worker.",
							"Events committed meanwhile are sealed together; until then a superuser could change them unseen.",
							&seal_interval, 5, 1, 3600, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.seal_log_interval",
							"Time between two lines of the activity_monitor worker that write the seal head to the server log.",
							"Keep them outside the database: verify_head() proves a rewrite of events and seals against them. 0 writes none.",
							&seal_log_interval, 60, 0, 86400, PGC_SIGHUP, GUC_UNIT_S,
							NULL, NULL, NULL);
	DefineCustomIntVariable("activity_monitor.min_retention",
							"Shortest retention of activity partitions that configure() accepts and maintenance applies.",
							"Only superusers can change it: retention must not become a way to erase history.",
							&min_retention, 30 * MINS_PER_HOUR * HOURS_PER_DAY, 0, INT_MAX,
							PGC_SUSET, GUC_UNIT_MIN, NULL, NULL, NULL);
}

/* _min_retention(): activity_monitor.min_retention as an interval (days and time). */
Datum
activity_monitor_min_retention(PG_FUNCTION_ARGS)
{
	Interval   *iv = palloc0(sizeof(Interval));

	iv->day = min_retention / (MINS_PER_HOUR * HOURS_PER_DAY);
	iv->time = (int64) (min_retention % (MINS_PER_HOUR * HOURS_PER_DAY)) * USECS_PER_MINUTE;
	PG_RETURN_INTERVAL_P(iv);
}

/*
 * Register the worker of database dboid.  Returns false, having said why in
 * the log, when the postmaster has no free worker slot.
 */
bool
am_register_db_worker(Oid dboid)
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
	am_wake_set_drop(dboid, AM_DROP_NONE);	/* it exists */
	if (!am_wake_start_begin(dboid))
	{
		/*
		 * One is starting, which may yet find the database closed and leave
		 * (ALLOW_CONNECTIONS toggled meanwhile): the launcher looks again.
		 */
		am_wake_want_start(dboid, true);
		return true;
	}
	if (RegisterDynamicBackgroundWorker(&w, NULL))
	{
		am_wake_want_start(dboid, false);
		return true;
	}
	am_wake_start_end(dboid);
	am_wake_want_start(dboid, true);
	ereport(WARNING,
			(errcode(ERRCODE_CONFIGURATION_LIMIT_EXCEEDED),
			 errmsg("could not start the activity_monitor worker for database %u", dboid),
			 errdetail("No background worker slot is free (max_worker_processes = %d); the activity_monitor launcher tries again every naptime.",
					   max_worker_processes),
			 errhint("Raise max_worker_processes: activity_monitor needs one worker per database that has the extension, plus its launcher.")));
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
	/* a prepared transaction's requests would be lost at COMMIT PREPARED */
	if (event == XACT_EVENT_PRE_PREPARE && (npending_start > 0 || npending_wake > 0))
		ereport(ERROR,
				(errcode(ERRCODE_FEATURE_NOT_SUPPORTED),
				 errmsg("cannot prepare a transaction that changed whether a database is a template or allows connections"),
				 errhint("Commit it instead: activity_monitor starts or stops that database's worker at commit.")));
	if (event == XACT_EVENT_PRE_COMMIT)
	{
		int			n = 0;

		/*
		 * The databases whose worker this transaction asked to start, as the
		 * transaction leaves them: one that exists, is no template, allows
		 * connections and has no running worker.  (A worker that cannot
		 * connect would be restarted every 5 s, holding a slot; toggles of
		 * a setting within the transaction count once, as they end.)
		 */
		for (int i = 0; i < npending_start; i++)
		{
			bool		template;
			bool		allowconn;

			if (database_flags(pending_start[i], &template, &allowconn) &&
				!template && allowconn && am_wake_worker_pid(pending_start[i]) == 0)
				pending_start[n++] = pending_start[i];
		}
		npending_start = n;
	}
	if (event == XACT_EVENT_COMMIT)
	{
		if (start_at_commit)
			am_register_db_worker(MyDatabaseId);
		for (int i = 0; i < npending_start; i++)
			am_register_db_worker(pending_start[i]);
		for (int i = 0; i < npending_wake; i++)
			am_wake_database(pending_wake[i]);
	}
	/* where the drop stands, for the workers it stopped */
	if (OidIsValid(dropping_db) && (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT))
	{
		Oid			db = dropping_db;

		dropping_db = InvalidOid;
		am_wake_set_drop(db, event == XACT_EVENT_COMMIT ? AM_DROP_DONE : AM_DROP_NONE);
		/* the drop failed, however (also at a FATAL's exit): a worker again */
		if (event == XACT_EVENT_ABORT)
			(void) am_register_db_worker(db);
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
	{
		start_at_commit = false;
		npending_start = npending_wake = 0;
	}
}

/*
 * A start_worker() in a subtransaction counts only if the subtransaction
 * commits (its admin event goes with it): start_subid is the subtransaction
 * that holds the request.
 */
static void
start_worker_subxact_callback(SubXactEvent event, SubTransactionId mySubid,
							  SubTransactionId parentSubid, void *arg)
{
	if (!start_at_commit || mySubid != start_subid)
		return;
	if (event == SUBXACT_EVENT_COMMIT_SUB)
		start_subid = parentSubid;
	else if (event == SUBXACT_EVENT_ABORT_SUB)
		start_at_commit = false;
}

static void
register_callbacks(void)
{
	static bool registered = false;

	if (!registered)
	{
		RegisterXactCallback(start_worker_xact_callback, NULL);
		RegisterSubXactCallback(start_worker_subxact_callback, NULL);
		registered = true;
	}
}

/*
 * Read database dboid's pg_database row: returns whether it exists, with
 * datistemplate in *template and datallowconn in *allowconn.  From the
 * table, not the syscache: the worker asks when ALTER DATABASE's commit
 * wakes it, which happens before that transaction sends its cache
 * invalidations.  (The utility hook asks too, before the change, and the
 * commit callback after it, in the same transaction.)
 */
static bool
database_flags(Oid dboid, bool *template, bool *allowconn)
{
	Relation	rel;
	SysScanDesc scan;
	ScanKeyData key;
	HeapTuple	tup;
	bool		found;

	*template = false;
	*allowconn = false;
	ScanKeyInit(&key, Anum_pg_database_oid, BTEqualStrategyNumber, F_OIDEQ,
				ObjectIdGetDatum(dboid));
	rel = table_open(DatabaseRelationId, AccessShareLock);
	/* the launcher has no database: no index (it may not read pg_class) */
	scan = systable_beginscan(rel, DatabaseOidIndexId, OidIsValid(MyDatabaseId), NULL, 1, &key);
	tup = systable_getnext(scan);
	found = HeapTupleIsValid(tup);
	if (found)
	{
		*template = ((Form_pg_database) GETSTRUCT(tup))->datistemplate;
		/* a database a failed drop left invalid (datconnlimit -2) neither */
		*allowconn = ((Form_pg_database) GETSTRUCT(tup))->datallowconn &&
			((Form_pg_database) GETSTRUCT(tup))->datconnlimit != -2;
	}
	systable_endscan(scan);
	table_close(rel, AccessShareLock);
	return found;
}

/* Is database dboid a template (pg_database.datistemplate)? */
bool
am_database_is_template(Oid dboid)
{
	bool		template;
	bool		allowconn;

	(void) database_flags(dboid, &template, &allowconn);
	return template;
}

/* Does database dboid allow connections (pg_database.datallowconn)? */
bool
am_database_allows_connections(Oid dboid)
{
	bool		template;
	bool		allowconn;

	return database_flags(dboid, &template, &allowconn) && allowconn;
}

/*
 * start_worker(): start this database's worker when the transaction commits
 * (before that, the worker could not see the extension being created); not
 * in a template database, where a connected worker would keep CREATE
 * DATABASE from copying it.  A call outside CREATE EXTENSION is an admin
 * event (audit.c).
 */
Datum
activity_monitor_start_worker(PG_FUNCTION_ARGS)
{
	register_callbacks();
	am_record_admin(AM_SCHEMA ".worker_state", "start_worker",
					get_database_name(MyDatabaseId), (Datum) 0, (Datum) 0);
	if (am_database_is_template(MyDatabaseId))
		PG_RETURN_VOID();
	/* an earlier request of an enclosing subtransaction stays its own */
	if (!start_at_commit)
		start_subid = GetCurrentSubTransactionId();
	start_at_commit = true;
	PG_RETURN_VOID();
}

/*
 * When this transaction commits, start the worker of database dboid (start
 * true: a database just created, perhaps from a template that has the
 * extension, or one that stopped being a template; the worker exits at
 * once if the database lacks the extension), or wake it (start false: the
 * database became a template, which its worker then leaves within the
 * round, and CREATE DATABASE can copy it).  For the utility hook.
 */
void
am_worker_at_commit(Oid dboid, bool start)
{
	Oid		   *list = start ? pending_start : pending_wake;
	int		   *n = start ? &npending_start : &npending_wake;

	register_callbacks();
	for (int i = 0; i < *n; i++)
		if (list[i] == dboid)
			return;
	if (*n >= AM_PENDING_DBS)
		ereport(ERROR,
				(errcode(ERRCODE_PROGRAM_LIMIT_EXCEEDED),
				 errmsg("too many databases changed in one transaction"),
				 errdetail("activity_monitor starts or stops the workers of at most %d databases per transaction.",
						   AM_PENDING_DBS)));
	list[(*n)++] = dboid;
}

/*
 * The launcher: register a worker for every connectable database that is
 * no template, then stay, and every naptime register the workers whose
 * start found no free slot (am_wake_want_start()) of the databases that
 * still want one (connectable, no template, no worker running).
 */
void
activity_monitor_launcher_main(Datum main_arg)
{
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

			/* one that finds no slot is wanted: retried below */
			if (db->datallowconn && !db->datistemplate && db->datconnlimit != -2)
				(void) am_register_db_worker(db->oid);
		}
		table_endscan(scan);
		table_close(rel, AccessShareLock);
		CommitTransactionCommand();
	}

	for (;;)
	{
		Oid			dbs[64];
		int			n = am_wake_wanted_starts(dbs, lengthof(dbs));

		for (int i = 0; i < n; i++)
		{
			bool		template;
			bool		allowconn;
			bool		exists;

			StartTransactionCommand();
			exists = database_flags(dbs[i], &template, &allowconn);
			CommitTransactionCommand();
			if (!exists || template || !allowconn || am_wake_worker_pid(dbs[i]) != 0)
				am_wake_want_start(dbs[i], false);
			else if (!am_register_db_worker(dbs[i]))
				break;			/* no slot: the next ones would find none */
		}
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
}

/*
 * Run sql in a transaction of its own.  Returns true on success with the
 * first column of the first row (or NULL) in *result, if result is not
 * NULL, and the row's first natts columns in values/nulls (all NULL without
 * a row): only columns of pass-by-value types, which outlive the
 * transaction.  On ERROR logs it, rolls back and returns false with the
 * message in *error.  Both strings are allocated in the caller's memory
 * context.
 */
static bool
run_sql_row(const char *what, const char *sql, char **result,
			int natts, Datum *values, bool *nulls, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	if (result)
		*result = NULL;
	for (int i = 0; i < natts; i++)
	{
		values[i] = (Datum) 0;
		nulls[i] = true;
	}
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
			HeapTuple	tup = SPI_tuptable->vals[0];
			TupleDesc	desc = SPI_tuptable->tupdesc;
			char	   *v = result ? SPI_getvalue(tup, desc, 1) : NULL;

			if (v)
				*result = MemoryContextStrdup(cxt, v);
			for (int i = 0; i < natts && i < desc->natts; i++)
			{
				if (!TupleDescAttr(desc, i)->attbyval)
					elog(ERROR, "column %d of \"%s\" is not of a pass-by-value type", i + 1, sql);
				values[i] = SPI_getbinval(tup, desc, i + 1, &nulls[i]);
			}
		}
		SPI_finish();
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		*error = psprintf("%s: %s", what, edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/* run_sql_row() for the first column of the first row as text. */
static bool
run_sql(const char *what, const char *sql, char **result, char **error)
{
	return run_sql_row(what, sql, result, 0, NULL, NULL, error);
}

static char dbname[NAMEDATALEN];

typedef enum ExtensionState
{
	EXT_ABSENT,					/* not installed (or dropped) */
	EXT_FOREIGN_SCHEMA,			/* "activity_monitor" is not its schema */
	EXT_OLD_VERSION,			/* installed, ALTER EXTENSION UPDATE pending */
	EXT_TEMPLATE,				/* the database is a template */
	EXT_READY
} ExtensionState;

/*
 * Is the extension installed in this database, and may the worker run its
 * SQL?  The SQL names the schema activity_monitor: it must be the
 * extension's own schema (found by OID), and the extension must be at this
 * library's version (the worker's SQL functions are the current ones).
 * Also notes the database's name.
 */
static ExtensionState
extension_state(void)
{
	ExtensionState st = EXT_READY;
	MemoryContext cxt = CurrentMemoryContext;
	Oid			nsp;
	char	   *version = NULL;

	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	strlcpy(dbname, get_database_name(MyDatabaseId), NAMEDATALEN);
	nsp = am_extension_schema(NULL, &version);
	if (!OidIsValid(nsp))
		st = EXT_ABSENT;
	else if (am_database_is_template(MyDatabaseId))
		st = EXT_TEMPLATE;
	else if (get_namespace_oid(AM_SCHEMA, true) != nsp)
		st = EXT_FOREIGN_SCHEMA;
	else if (version == NULL || strcmp(version, AM_VERSION) != 0)
		st = EXT_OLD_VERSION;
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
	return st;
}

/*
 * The worker's database is a template: leave it for good (exit 0), since a
 * connection to it keeps CREATE DATABASE from copying it.  A database
 * created from it gets its own worker (the utility hook), and so does this
 * one when it stops being a template, or at the next server start.
 */
static void
leave_template(void)
{
	ereport(LOG,
			(errmsg("activity_monitor worker for database \"%s\" stops: the database is a template", dbname),
			 errdetail("A connection to a template would keep CREATE DATABASE from copying it; "
					   "databases created from it get their own worker.")));
	proc_exit(0);
}

/*
 * The worker, a superuser, must not run with what a database owner set with
 * ALTER DATABASE ... SET: search_path (an operator or function of the
 * owner's schema would run as superuser), role or session_authorization
 * (the worker would run as another role), exit_on_error (any caught error
 * would end it), read-only transactions, timeouts, planner switches...
 * Every setting that came from the database's settings goes back to its
 * built-in value, at session level so that the extension's functions can
 * still set their own; search_path, role and session_authorization are
 * pinned with a source nothing overrides.  Called after connecting and
 * after each configuration reload.
 */
static void
pin_settings(void)
{
	MemoryContext cxt = CurrentMemoryContext;
	struct config_generic **vars = get_guc_variables();
	int			n = GetNumConfigOptions();

	/* role and session_authorization look their value up in the catalog */
	StartTransactionCommand();

	for (int i = 0; i < n; i++)
	{
		struct config_generic *g = vars[i];
		char		buf[64];
		const char *boot = NULL;

		if (g->source != PGC_S_DATABASE && g->source != PGC_S_DATABASE_USER)
			continue;
		switch (g->vartype)
		{
			case PGC_BOOL:
				boot = ((struct config_bool *) g)->boot_val ? "on" : "off";
				break;
			case PGC_INT:
				snprintf(buf, sizeof(buf), "%d", ((struct config_int *) g)->boot_val);
				boot = buf;
				break;
			case PGC_REAL:
				snprintf(buf, sizeof(buf), "%.17g", ((struct config_real *) g)->boot_val);
				boot = buf;
				break;
			case PGC_STRING:
				boot = ((struct config_string *) g)->boot_val;
				break;
			case PGC_ENUM:
				boot = config_enum_lookup_by_value((struct config_enum *) g,
												   ((struct config_enum *) g)->boot_val);
				break;
		}
		if (boot == NULL || (g->flags & GUC_NO_RESET_ALL))
			continue;			/* role, session_authorization: below */
		(void) set_config_option(g->name, boot, PGC_SUSET, PGC_S_SESSION,
								 GUC_ACTION_SET, true, WARNING, false);
	}
	SetConfigOption("session_authorization",
					GetUserNameFromId(BOOTSTRAP_SUPERUSERID, false), PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("role", "none", PGC_SUSET, PGC_S_OVERRIDE);
	SetConfigOption("search_path", "pg_catalog, pg_temp", PGC_SUSET, PGC_S_OVERRIDE);

	/*
	 * No JIT: the worker's statements are short, and one planned over every
	 * partition (a history of 1,848 daily ones) spent minutes compiling.
	 */
	SetConfigOption("jit", "off", PGC_SUSET, PGC_S_OVERRIDE);
	if (!superuser())
		elog(FATAL, "activity_monitor worker is not running as a superuser");
	CommitTransactionCommand();
	MemoryContextSwitchTo(cxt);
}

/* Record the worker's start in worker_state. */
static void
record_start(void)
{
	char	   *result;
	char	   *error;

	(void) run_sql("record start",
				   psprintf("SELECT activity_monitor._worker_started(%d)", MyProcPid),
				   &result, &error);
}

/* Record a duty's error in worker_state (it is in the server log already). */
static void
record_error(const char *error)
{
	char	   *result;
	char	   *error2;

	(void) run_sql("record error",
				   psprintf("SELECT activity_monitor._worker_error(%s)", quote_literal_cstr(error)),
				   &result, &error2);
}

/*
 * Partition maintenance duty (_worker_partitions() runs it and records its
 * outcome in worker_state in the same transaction); an error is recorded.
 * It returns the numbers of partitions created and retired (NULL when it
 * skipped maintenance during a restore), logged when not zero.
 */
static void
duty_partitions(void)
{
	Datum		counts[2];
	bool		nulls[2];
	char	   *error;

	if (!run_sql_row("partition maintenance",
					 "SELECT p.created, p.retired FROM activity_monitor._worker_partitions() p",
					 NULL, 2, counts, nulls, &error))
		record_error(error);
	else if (nulls[0] || nulls[1])
		elog(DEBUG1, "activity_monitor: partition maintenance skipped while pg_restore is connected");
	else if (DatumGetInt32(counts[0]) > 0 || DatumGetInt32(counts[1]) > 0)
		ereport(LOG,
				(errmsg("activity_monitor: created %d and retired %d partitions of activity_monitor.activity in database \"%s\"",
						DatumGetInt32(counts[0]), DatumGetInt32(counts[1]), dbname)));
}

/*
 * One alert batch (at most alert_batch_size events) in a transaction of its
 * own, the alert engine called directly (alerts.c).  Returns true on
 * success, with *more telling whether events are left; on ERROR logs it,
 * rolls back and returns false with the message in *error, allocated in
 * the caller's memory context (as run_sql).
 */
static bool
run_alert_batch(bool *more, char **error)
{
	MemoryContext cxt = CurrentMemoryContext;
	volatile bool ok = true;

	*more = false;
	*error = NULL;
	SetCurrentStatementStartTimestamp();
	StartTransactionCommand();
	PG_TRY();
	{
		int			events;
		int			fired;

		PushActiveSnapshot(GetTransactionSnapshot());
		pgstat_report_activity(STATE_RUNNING, "alert processing");
		*more = am_process_alerts(alert_batch_size, &events, &fired);
		PopActiveSnapshot();
		CommitTransactionCommand();
		MemoryContextSwitchTo(cxt);
	}
	PG_CATCH();
	{
		ErrorData  *edata;

		MemoryContextSwitchTo(cxt);
		edata = CopyErrorData();
		EmitErrorReport();
		FlushErrorState();
		AbortCurrentTransaction();
		MemoryContextSwitchTo(cxt);
		*error = psprintf("alert processing: %s", edata->message);
		FreeErrorData(edata);
		ok = false;
	}
	PG_END_TRY();
	pgstat_report_activity(STATE_IDLE, NULL);
	return ok;
}

/*
 * How long to sleep between rounds: a naptime, or until the deadline of
 * the first absence the alert engine waits for (detect.h), whichever
 * comes first.
 */
static long
wait_ms(void)
{
	TimestampTz deadline = am_alerts_next_deadline();
	long		ms = naptime * 1000L;

	if (deadline != DT_NOEND)
		ms = Min(ms, TimestampDifferenceMilliseconds(GetCurrentTimestamp(), deadline) + 1);
	return Max(ms, 1);
}

/*
 * Alert duty: process the events committed since the last batch, in
 * batches of alert_batch_size events.  An error is recorded like the
 * partition duty's; the batch is retried on the next wake-up.
 */
static void
duty_alerts(void)
{
	bool		more;
	char	   *error;

	for (;;)
	{
		if (!run_alert_batch(&more, &error))
			break;
		if (!more || got_sigterm)
			return;
		CHECK_FOR_INTERRUPTS();
	}
	record_error(error);
}

/*
 * Merge duty: one step of merging old partitions into months and years
 * (_worker_merge(), one short transaction, which records what it did in
 * worker_state).  Returns true when the next step should follow at once
 * rather than a naptime later.
 */
static bool
duty_merge(void)
{
	Datum		more;
	bool		isnull;
	char	   *error;

	if (!run_sql_row("partition merge",
					 "SELECT m.more FROM activity_monitor._worker_merge() m",
					 NULL, 1, &more, &isnull, &error))
	{
		record_error(error);
		return false;
	}
	return !isnull && DatumGetBool(more);
}

/*
 * Rollup duty: the per-minute counts behind the dashboard view, of the
 * events committed since the previous round (_worker_rollup(); the first
 * round of a database without a rollup state: the last 10 minutes).
 */
static void
duty_rollup(void)
{
	char	   *error;
	Datum		rows;
	bool		isnull;

	if (!run_sql_row("rollup", "SELECT activity_monitor._worker_rollup()",
					 NULL, 1, &rows, &isnull, &error))
		record_error(error);
}

/*
 * Seal duty: a sealing round (_seal(), src/seal.c, a transaction of its
 * own) once per seal_interval, and the chain's head to the server log once
 * per seal_log_interval, where a copy outside the database can keep it.
 */
static void
duty_seal(bool seal_now, bool log_now)
{
	char	   *head = NULL;
	char	   *error;

	if (seal_now &&
		!run_sql("sealing", "SELECT s.head FROM activity_monitor._seal() s", &head, &error))
	{
		record_error(error);
		return;
	}
	if (!log_now)
		return;
	if (head == NULL &&
		!run_sql("seal head",
				 "SELECT pg_catalog.format('seal %s at %s hash %s', h.seal_id, h.sealed_at, h.hash) "
				 "FROM activity_monitor.seal_head() h WHERE h.seal_id IS NOT NULL",
				 &head, &error))
	{
		record_error(error);
		return;
	}
	if (head != NULL)
		ereport(LOG,
				(errmsg("activity_monitor seal head of database \"%s\": %s", dbname, head),
				 errhidestmt(true)));
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
	TimestampTz last_seal = 0;
	TimestampTz last_seal_log = 0;
	ExtensionState last_state = EXT_ABSENT;
	bool		merging = false;

	pqsignal(SIGHUP, SignalHandlerForConfigReload);
	pqsignal(SIGTERM, worker_sigterm);
	BackgroundWorkerUnblockSignals();
	/* no longer starting once it runs its rounds (wake.c) or exits */
	before_shmem_exit(worker_start_ended, ObjectIdGetDatum(dboid));
	/* restarted after its database was dropped: connecting would fail forever */
	switch (am_wake_drop_state(dboid))
	{
		case AM_DROP_DONE:
			ereport(LOG,
					(errmsg("activity_monitor worker for database %u stops: the database was dropped",
							dboid)));
			proc_exit(0);
			break;
		case AM_DROP_RUNNING:
			/* the drop, if it fails, starts a worker again */
			proc_exit(0);
			break;
		case AM_DROP_NONE:
			break;
	}
	/*
	 * Connect even where connections are not allowed, only to leave for good
	 * (exit 0: not restarted) if so, at once: restarted every 5 s, a worker
	 * that cannot connect would hold a slot for as long, and one that stayed
	 * would keep the database from being copied (CREATE DATABASE ...
	 * TEMPLATE waits 5 s for other sessions to leave).  ALTER DATABASE ...
	 * ALLOW_CONNECTIONS true starts it again (the utility hook).
	 */
	BackgroundWorkerInitializeConnectionByOid(dboid, InvalidOid, BGWORKER_BYPASS_ALLOWCONN);
	StartTransactionCommand();
	if (!am_database_allows_connections(MyDatabaseId))
	{
		ereport(LOG,
				(errmsg("activity_monitor worker for database \"%s\" stops: the database does not allow connections",
						get_database_name(MyDatabaseId)),
				 errdetail("ALTER DATABASE ... ALLOW_CONNECTIONS true starts it again.")));
		proc_exit(0);
	}
	CommitTransactionCommand();
	pin_settings();
	pgstat_report_appname(WORKER_TYPE);

	switch (extension_state())
	{
		case EXT_ABSENT:
			proc_exit(0);
			break;
		case EXT_TEMPLATE:
			leave_template();
			break;
		default:
			break;
	}

	SET_LOCKTAG_ADVISORY(tag, MyDatabaseId, WORKER_LOCK_KEY1, WORKER_LOCK_KEY2, WORKER_LOCK_SPACE);
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

	for (;;)
	{
		TimestampTz now;
		ExtensionState st;
		AmDropState drop;

		CHECK_FOR_INTERRUPTS();
		drop = am_wake_drop_state(MyDatabaseId);
		if (got_sigterm || drop != AM_DROP_NONE)
		{
			if (drop == AM_DROP_DONE)
			{
				ereport(LOG,
						(errmsg("activity_monitor worker for database \"%s\" stops: the database was dropped",
								dbname)));
				proc_exit(0);
			}
			if (drop == AM_DROP_RUNNING)
			{
				ereport(LOG,
						(errmsg("activity_monitor worker for database \"%s\" stops: the database is being dropped",
								dbname),
						 errdetail("If the drop fails, it starts a worker again.")));
				proc_exit(0);
			}
			ereport(LOG,
					(errmsg("activity_monitor worker for database \"%s\" stops on request, to be restarted",
							dbname)));
			proc_exit(1);
		}
		if (ConfigReloadPending)
		{
			ConfigReloadPending = false;
			ProcessConfigFile(PGC_SIGHUP);
			pin_settings();
		}
		st = extension_state();
		if (st == EXT_ABSENT)
		{
			ereport(LOG,
					(errmsg("activity_monitor worker for database \"%s\" stops: the extension was dropped",
							dbname)));
			proc_exit(0);
		}
		if (st == EXT_TEMPLATE)
			leave_template();
		if (st != EXT_READY)
		{
			/* capture goes on; the worker waits, saying why once */
			if (st != last_state)
				ereport(WARNING,
						(errmsg("activity_monitor worker for database \"%s\" is waiting", dbname),
						 st == EXT_OLD_VERSION ?
						 errdetail("The extension's SQL objects are older than the library (version %s).", AM_VERSION) :
						 errdetail("The schema named \"%s\" is not the extension's schema.", AM_SCHEMA),
						 st == EXT_OLD_VERSION ?
						 errhint("Run ALTER EXTENSION activity_monitor UPDATE in that database.") :
						 errhint("Find out who created or renamed that schema.")));
			last_state = st;
			(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
							 naptime * 1000L, PG_WAIT_EXTENSION);
			ResetLatch(MyLatch);
			continue;
		}
		if (last_state != EXT_READY)
		{
			record_start();
			last_state = EXT_READY;
		}

		/*
		 * Alerts on every wake-up, but at most one round per alert_delay: under
		 * a stream of commits, each setting the latch, a round per commit would
		 * keep a core busy on tiny batches.  Partitions and rollup once per
		 * naptime; a merge of old partitions step by step, one step between
		 * two alert rounds, until it has nothing left to do.
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
			merging = true;
			last_partitions = now;
		}
		if (!got_sigterm)
		{
			bool		seal_now = TimestampDifferenceExceeds(last_seal, now, seal_interval * 1000);
			bool		log_now = seal_log_interval > 0 &&
				TimestampDifferenceExceeds(last_seal_log, now, seal_log_interval * 1000);

			if (seal_now || log_now)
				duty_seal(seal_now, log_now);
			if (seal_now)
				last_seal = now;
			if (log_now)
				last_seal_log = now;
		}
		if (merging && !got_sigterm)
			merging = duty_merge();

		MemoryContextReset(round_cxt);
		(void) WaitLatch(MyLatch, WL_LATCH_SET | WL_TIMEOUT | WL_EXIT_ON_PM_DEATH,
						 merging ? Max(alert_delay, 1) : wait_ms(), PG_WAIT_EXTENSION);
		ResetLatch(MyLatch);
	}
}
