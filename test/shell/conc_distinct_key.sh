#!/usr/bin/env bash
# Regression test (issue 12, concurrency): the distinct-count key must be
# unambiguous.  0.1.0 counted a value of a window under "window key, 0x1f,
# value key"; both parts may contain 0x1f, so a value of one group could be
# taken for a value already seen in another group, and a second distinct
# value never counted: an alert evaded.  Groups 'a' and 'a<US>sx' (US is
# 0x1f), values 'x<US>sy' in the first and 'y', 'z' in the second: the
# second group has two distinct values and must alert with value 2.  Also a
# value of exactly the length where long values are cut and hashed must not
# be taken for a long one.
set -euo pipefail
db=am_conc_distinct
. "$AM_ROOT/test/lib/shell.sh"
trap am_db_drop EXIT

am_db_new
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d "$db" >/dev/null <<'SQL'
CREATE EXTENSION activity_monitor;
CREATE TABLE logins (id int PRIMARY KEY, account text, device text);
SELECT activity_monitor.track('logins', 'login', subject_column => 'account');
SELECT activity_monitor.create_rule('devices', '$.action == "insert"', within => '1 hour', threshold => 2,
	measure => 'distinct', measure_path => '$.new.device', channel => 'am_conc_distinct');
SQL
am_wait_for 15 "$db" "SELECT running FROM activity_monitor.worker_status" || fail "no worker"
q "INSERT INTO logins VALUES (1, 'a', E'x\\x1fsy')" >/dev/null
q "INSERT INTO logins VALUES (2, E'a\\x1fsx', 'y')" >/dev/null
q "INSERT INTO logins VALUES (3, E'a\\x1fsx', 'z')" >/dev/null
caught_up
got=$(q "SELECT coalesce(string_agg(format('%s=%s', replace(group_key, E'\\x1f', '<US>'), value), ','), 'none')
		 FROM activity_monitor.alerts")
[ "$got" = "a<US>sx=2" ] || fail "two devices in group a<US>sx: expected one alert of value 2, got $got"
echo "ok: separator"

# the engine keeps a value's key ('s' and the string) whole up to 95 bytes,
# and cuts a longer one to its 78 first bytes, '#' and 16 hex digits of its
# hash (0.1.0: hash_bytes_extended, seed 0, which hashtextextended() computes
# too): a 95-byte value of that shape was taken for the long value
long=$(printf 'q%.0s' $(seq 1 200))
crafted=$(q "SELECT pg_catalog.left('$long', 77) || '#' ||
	pg_catalog.lpad(pg_catalog.to_hex(pg_catalog.hashtextextended('s' || '$long', 0)), 16, '0')")
q "INSERT INTO logins VALUES (4, 'b', '$long')" >/dev/null
q "INSERT INTO logins VALUES (5, 'b', '$crafted')" >/dev/null
caught_up
got=$(q "SELECT coalesce(string_agg(format('%s=%s', group_key, value), ','), 'none')
		 FROM activity_monitor.alerts WHERE group_key = 'b'")
[ "$got" = "b=2" ] || fail "a long value and a 95-byte value: expected one alert of value 2, got $got"
echo "ok: cut keys"
