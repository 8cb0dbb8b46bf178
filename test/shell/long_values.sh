#!/usr/bin/env bash
# Values too long for an index entry never fail a write nor lose an alert
# (found by the attacker review of issue 10): a subject id or actor id of
# several kB (indexed in every activity partition) and a rule's group key of
# several kB (indexed in alerts) are stored cut to at most 1000 bytes, ending
# with "…" and the MD5 of the whole value: the write commits, the alert
# fires, distinct long values stay distinct, equal ones stay equal (the
# cooldown of a long key holds).
set -euo pipefail
db=am_long_values
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT
am_db_new
psql -X -q -v ON_ERROR_STOP=1 -d "$db" <<'SQL' >/dev/null
CREATE EXTENSION activity_monitor;
CREATE TABLE pay (id int PRIMARY KEY, account text, amount int, memo text);
SELECT activity_monitor.track('pay', 'payment', subject_column => 'account');
SELECT activity_monitor.create_rule('by_memo', '$.new.amount > 1000', group_by => '$.new.memo',
	cooldown => '1 hour');
SQL
long() { echo "(SELECT string_agg(md5(i::text || '$1'), '') FROM generate_series(1, 200) i)"; }
# 6400-byte subject, actor and memo; a second memo that differs only at its end
q "SELECT activity_monitor.set_actor('user', $(long actor), is_local => false);
   INSERT INTO pay VALUES (1, $(long a), 5000, $(long m)), (2, $(long b), 5000, $(long m)),
	(3, 'short', 5000, $(long m) || 'x')" >/dev/null || fail "a write with long values failed"
[ "$(q "SELECT count(*) FROM activity_monitor.activity WHERE table_name = 'public.pay'
	AND octet_length(subject_id) <= 1000 AND octet_length(actor_id) <= 1000
	AND subject_id LIKE '%…' || repeat('_', 32)")" = 2 ] || fail "long subject ids not cut to 1000 bytes with their MD5"
[ "$(q "SELECT count(DISTINCT subject_id) FROM activity_monitor.activity WHERE table_name = 'public.pay'")" = 3 ] ||
	fail "distinct long subjects collapsed"
[ "$(q "SELECT subject_id = left(subject_id, 0) || (SELECT left(s, 936) FROM (SELECT $(long a) s) x) || '…' || md5($(long a))
	FROM activity_monitor.activity WHERE table_name = 'public.pay' AND new_values ->> 'id' = '1'")" = t ] || fail "the cut value is not prefix, …, MD5"
caught_up
# rows 1 and 2 share a memo (cooldown: one alert), row 3's differs at its end
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE rule_name = 'by_memo'")" = 2 ] ||
	fail "alerts of the long group keys: $(q "SELECT count(*) FROM activity_monitor.alerts") (expected 2)"
[ "$(q "SELECT count(*) FROM activity_monitor.alerts WHERE octet_length(group_key) <= 1000")" = 2 ] ||
	fail "a group key longer than 1000 bytes in alerts"
[ "$(q "SELECT coalesce(last_error, '') FROM activity_monitor.worker_state")" = "" ] ||
	fail "the worker recorded an error: $(q "SELECT last_error FROM activity_monitor.worker_state")"
echo "ok: 3 writes with 6 kB values committed, 2 alerts (cooldown held for the equal long key)"
