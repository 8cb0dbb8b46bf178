-- Variant "activity_monitor_book": activity_monitor tracked as in
-- variant_activity_monitor.sql, plus rule_book.sql's thirty detection rules
-- on payments (ten sequences, ten absences, ten first-seen, as a fraud team
-- writes them: a payment change matches 4 to 7 of them), and no other rule:
-- issue 14's "10 rules of each new type active" under the pgbench workload.
-- Not in run.sh's default rounds: BENCH_VARIANTS='... activity_monitor_book'.
-- records: as activity_monitor, plus the detection rules each payment change matched
-- requires: activity_monitor
-- preload: activity
\ir variant_activity_monitor.sql

\set book_table payments
\ir rule_book.sql
