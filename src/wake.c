/*-------------------------------------------------------------------------
 *
 * wake.c
 *	  Waking the database's worker when events some rule matched commit.
 *
 * With the library preloaded, a small shared array maps each database to
 * its worker's PGPROC.  The capture trigger only sets a flag; when the
 * transaction commits (it is visible by then), a transaction callback sets
 * the worker's latch.  This is what keeps commit-to-notification latency in
 * milliseconds without NOTIFY in the platform's transaction (which would
 * serialize every committing writer) and without fast polling.  Without
 * preloading there is no shared memory and the worker polls every naptime.
 *
 * IDENTIFICATION
 *	  src/wake.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "access/xact.h"
#include "miscadmin.h"
#include "storage/ipc.h"
#include "storage/latch.h"
#include "storage/proc.h"
#include "storage/shmem.h"
#include "storage/spin.h"
#include "utils/timestamp.h"

#define AM_MAX_WORKERS 64
#define AM_MAX_DROPPED 64

typedef struct AmWorkerSlot
{
	Oid			dboid;
	int			pgprocno;
} AmWorkerSlot;

/* A worker registered and not yet running its rounds, or a start wanted. */
typedef struct AmStart
{
	Oid			dboid;
	TimestampTz since;			/* registered at (starting only) */
} AmStart;

#define AM_START_STALE_USEC (60 * USECS_PER_SEC)	/* a start that never ran */

typedef struct AmShared
{
	slock_t		mutex;
	AmWorkerSlot slots[AM_MAX_WORKERS];
	AmStart		starting[AM_MAX_WORKERS];	/* one per database at most */
	AmStart		wanted[AM_MAX_WORKERS]; /* found no free slot: retried */
	Oid			dropped[AM_MAX_DROPPED];	/* databases dropped: the latest */
	bool		committed[AM_MAX_DROPPED];	/* its drop committed (else: running) */
	int			next_dropped;
} AmShared;

static AmShared *shared = NULL;
static shmem_request_hook_type prev_shmem_request_hook = NULL;
static shmem_startup_hook_type prev_shmem_startup_hook = NULL;
static bool wake_at_commit = false;
static bool callback_registered = false;

static void
wake_shmem_request(void)
{
	if (prev_shmem_request_hook)
		prev_shmem_request_hook();
	RequestAddinShmemSpace(MAXALIGN(sizeof(AmShared)));
}

static void
wake_shmem_startup(void)
{
	bool		found;

	if (prev_shmem_startup_hook)
		prev_shmem_startup_hook();
	LWLockAcquire(AddinShmemInitLock, LW_EXCLUSIVE);
	shared = ShmemInitStruct("activity_monitor", sizeof(AmShared), &found);
	if (!found)
	{
		SpinLockInit(&shared->mutex);
		for (int i = 0; i < AM_MAX_WORKERS; i++)
		{
			shared->slots[i].dboid = InvalidOid;
			shared->starting[i].dboid = InvalidOid;
			shared->wanted[i].dboid = InvalidOid;
		}
		for (int i = 0; i < AM_MAX_DROPPED; i++)
		{
			shared->dropped[i] = InvalidOid;
			shared->committed[i] = false;
		}
		shared->next_dropped = 0;
	}
	LWLockRelease(AddinShmemInitLock);
}

/* Install the shared memory hooks; from _PG_init while preloading. */
void
am_wake_init(void)
{
	prev_shmem_request_hook = shmem_request_hook;
	shmem_request_hook = wake_shmem_request;
	prev_shmem_startup_hook = shmem_startup_hook;
	shmem_startup_hook = wake_shmem_startup;
}

static void
wake_unregister(int code, Datum arg)
{
	int			i = DatumGetInt32(arg);

	SpinLockAcquire(&shared->mutex);
	if (shared->slots[i].pgprocno == MyProc->pgprocno)
		shared->slots[i].dboid = InvalidOid;
	SpinLockRelease(&shared->mutex);
}

/* The worker announces itself as its database's worker. */
void
am_wake_register_worker(void)
{
	int			free = -1;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS; i++)
	{
		if (shared->slots[i].dboid == MyDatabaseId ||
			(free < 0 && shared->slots[i].dboid == InvalidOid))
			free = i;
		if (shared->slots[i].dboid == MyDatabaseId)
			break;
	}
	if (free >= 0)
	{
		shared->slots[free].dboid = MyDatabaseId;
		shared->slots[free].pgprocno = MyProc->pgprocno;
	}
	SpinLockRelease(&shared->mutex);
	am_wake_start_end(MyDatabaseId);
	if (free >= 0)
		on_shmem_exit(wake_unregister, Int32GetDatum(free));
	else
		elog(LOG, "activity_monitor: more than %d workers, this one polls every naptime",
			 AM_MAX_WORKERS);
}

static void
wake_xact_callback(XactEvent event, void *arg)
{
	if (!wake_at_commit)
		return;
	if (event == XACT_EVENT_COMMIT && shared != NULL)
	{
		for (int i = 0; i < AM_MAX_WORKERS; i++)
		{
			if (shared->slots[i].dboid == MyDatabaseId)
				SetLatch(&ProcGlobal->allProcs[shared->slots[i].pgprocno].procLatch);
		}
	}
	if (event == XACT_EVENT_COMMIT || event == XACT_EVENT_ABORT ||
		event == XACT_EVENT_PARALLEL_COMMIT || event == XACT_EVENT_PARALLEL_ABORT ||
		event == XACT_EVENT_PREPARE)
		wake_at_commit = false;
}

/* The pid of the worker of database dboid, 0 if none is known. */
int
am_wake_worker_pid(Oid dboid)
{
	int			pid = 0;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS; i++)
		if (shared->slots[i].dboid == dboid)
			pid = ProcGlobal->allProcs[shared->slots[i].pgprocno].pid;
	SpinLockRelease(&shared->mutex);
	return pid;
}

/*
 * Note where the DROP DATABASE of dboid stands: AM_DROP_RUNNING from just
 * before its worker is stopped (the utility hook) until its transaction
 * ends; AM_DROP_DONE once it committed; AM_DROP_NONE when it aborted (the
 * aborting backend starts a worker again), or when a worker is registered
 * for the database (which happens only for one that exists).  A worker of
 * the database that the postmaster starts while the drop runs or after it
 * (one that had exited to be restarted) exits for good instead of failing
 * to connect every restart delay.  The latest AM_MAX_DROPPED drops are
 * remembered.
 */
void
am_wake_set_drop(Oid dboid, AmDropState state)
{
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_DROPPED; i++)
		if (shared->dropped[i] == dboid)
			shared->dropped[i] = InvalidOid;
	if (state != AM_DROP_NONE)
	{
		shared->dropped[shared->next_dropped] = dboid;
		shared->committed[shared->next_dropped] = (state == AM_DROP_DONE);
		shared->next_dropped = (shared->next_dropped + 1) % AM_MAX_DROPPED;
	}
	SpinLockRelease(&shared->mutex);
}

/* Where does a DROP DATABASE of dboid stand (am_wake_set_drop)? */
AmDropState
am_wake_drop_state(Oid dboid)
{
	AmDropState state = AM_DROP_NONE;

	if (shared == NULL)
		return AM_DROP_NONE;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_DROPPED; i++)
		if (shared->dropped[i] == dboid)
			state = shared->committed[i] ? AM_DROP_DONE : AM_DROP_RUNNING;
	SpinLockRelease(&shared->mutex);
	return state;
}

/*
 * Note a worker of database dboid about to be registered: returns false if
 * one is registered already and has not run its rounds yet (nor exited;
 * for at most a minute), so that a loop of starts, a loop of ALTER
 * DATABASE ... ALLOW_CONNECTIONS true commits among them, registers one
 * worker at a time and cannot take every background worker slot.
 */
bool
am_wake_start_begin(Oid dboid)
{
	TimestampTz now = GetCurrentTimestamp();
	int			free = -1;
	bool		ok = true;

	if (shared == NULL)
		return true;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS; i++)
	{
		if (shared->starting[i].dboid == dboid)
		{
			if (shared->starting[i].since > now - AM_START_STALE_USEC)
				ok = false;
			free = i;
			break;
		}
		if (free < 0 && shared->starting[i].dboid == InvalidOid)
			free = i;
	}
	if (ok && free >= 0)
	{
		shared->starting[free].dboid = dboid;
		shared->starting[free].since = now;
	}
	SpinLockRelease(&shared->mutex);
	return ok;
}

/* The worker of dboid runs its rounds, exited, or was never registered. */
void
am_wake_start_end(Oid dboid)
{
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS; i++)
		if (shared->starting[i].dboid == dboid)
			shared->starting[i].dboid = InvalidOid;
	SpinLockRelease(&shared->mutex);
}

/*
 * Want a worker for database dboid started (want true: its start found no
 * free slot; the launcher retries every naptime), or no longer.
 */
void
am_wake_want_start(Oid dboid, bool want)
{
	int			free = -1;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS; i++)
	{
		if (shared->wanted[i].dboid == dboid)
		{
			if (!want)
				shared->wanted[i].dboid = InvalidOid;
			free = -2;
			break;
		}
		if (free == -1 && shared->wanted[i].dboid == InvalidOid)
			free = i;
	}
	if (want && free >= 0)
		shared->wanted[free].dboid = dboid;
	SpinLockRelease(&shared->mutex);
}

/* The databases whose start is wanted (at most max of them, into dbs). */
int
am_wake_wanted_starts(Oid *dbs, int max)
{
	int			n = 0;

	if (shared == NULL)
		return 0;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS && n < max; i++)
		if (shared->wanted[i].dboid != InvalidOid)
			dbs[n++] = shared->wanted[i].dboid;
	SpinLockRelease(&shared->mutex);
	return n;
}

/* Set the latch of database dboid's worker, if it has one. */
void
am_wake_database(Oid dboid)
{
	int			pgprocno = -1;

	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_WORKERS; i++)
		if (shared->slots[i].dboid == dboid)
			pgprocno = shared->slots[i].pgprocno;
	SpinLockRelease(&shared->mutex);
	/* SetLatch may signal: not under the spinlock */
	if (pgprocno >= 0)
		SetLatch(&ProcGlobal->allProcs[pgprocno].procLatch);
}

/* Called by capture: wake the worker when this transaction commits. */
void
am_wake_at_commit(void)
{
	if (shared == NULL || wake_at_commit)
		return;
	if (!callback_registered)
	{
		RegisterXactCallback(wake_xact_callback, NULL);
		callback_registered = true;
	}
	wake_at_commit = true;
}
