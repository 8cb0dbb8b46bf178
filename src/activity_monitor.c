/*-------------------------------------------------------------------------
 *
 * activity_monitor.c
 *	  Module load: settings and per-backend callbacks.
 *
 * The library works preloaded (shared_preload_libraries) or loaded on first
 * use by a trigger or function; nothing here needs shared memory.
 *
 * IDENTIFICATION
 *	  src/activity_monitor.c
 *
 *-------------------------------------------------------------------------
 */
#include "postgres.h"

#include "activity_monitor.h"
#include "fmgr.h"
#include "utils/guc.h"

PG_MODULE_MAGIC;

void
_PG_init(void)
{
	am_define_actor_gucs();
	MarkGUCPrefixReserved("activity_monitor");
	am_sink_reset();
}
