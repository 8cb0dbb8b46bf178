/*
 * activity_monitor 0.2.0: no dead code, immutable functions parallel safe
 * (issue 12).
 *
 * _num() (a jsonb measure as numeric) has had no caller since the alert
 * engine reads measures in C (value_num() in src/alerts.c), _cut() (free
 * text cut for a payload) none since alert_payload() is C (src/notify.c,
 * 40_notify.sql runs before this).  The immutable
 * functions were PARALLEL UNSAFE (the default), which keeps a query that
 * calls them from a parallel plan.
 */
DROP FUNCTION activity_monitor._num(jsonb);
DROP FUNCTION activity_monitor._cut(text, int);

ALTER FUNCTION activity_monitor._check_interval(text, interval) PARALLEL SAFE;
