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

#define AM_MAX_WORKERS 64
#define AM_MAX_DROPPED 64

typedef struct AmWorkerSlot
{
	Oid			dboid;
	int			pgprocno;
} AmWorkerSlot;

typedef struct AmShared
{
	slock_t		mutex;
	AmWorkerSlot slots[AM_MAX_WORKERS];
	Oid			dropped[AM_MAX_DROPPED];	/* databases dropped: the latest */
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
			shared->slots[i].dboid = InvalidOid;
		for (int i = 0; i < AM_MAX_DROPPED; i++)
			shared->dropped[i] = InvalidOid;
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
 * Note that database dboid is dropped (dropped true: from just before DROP
 * DATABASE) or exists (false: the drop failed, or a worker is registered
 * for it, which happens only for a database that exists).  A worker of a
 * dropped database that the postmaster starts again (it had exited to be
 * restarted, and was not running when the drop stopped workers) exits for
 * good instead of failing to connect every restart delay.  The latest
 * AM_MAX_DROPPED drops are remembered.
 */
void
am_wake_set_dropped(Oid dboid, bool dropped)
{
	if (shared == NULL)
		return;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_DROPPED; i++)
		if (shared->dropped[i] == dboid)
			shared->dropped[i] = InvalidOid;
	if (dropped)
	{
		shared->dropped[shared->next_dropped] = dboid;
		shared->next_dropped = (shared->next_dropped + 1) % AM_MAX_DROPPED;
	}
	SpinLockRelease(&shared->mutex);
}

/* Was database dboid dropped (am_wake_set_dropped)? */
bool
am_wake_database_dropped(Oid dboid)
{
	bool		dropped = false;

	if (shared == NULL)
		return false;
	SpinLockAcquire(&shared->mutex);
	for (int i = 0; i < AM_MAX_DROPPED; i++)
		if (shared->dropped[i] == dboid)
			dropped = true;
	SpinLockRelease(&shared->mutex);
	return dropped;
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
