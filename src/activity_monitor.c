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
#include "fmgr.h"
#include "miscadmin.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	am_define_actor_gucs();
	am_define_worker_gucs();
	MarkGUCPrefixReserved("activity_monitor");
	am_sink_reset();
	if (process_shared_preload_libraries_in_progress)
		am_register_launcher();
}
