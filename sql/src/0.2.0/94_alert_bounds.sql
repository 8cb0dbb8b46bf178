-- The alert batch reads only the partitions its events can be in: each
-- snapshot it takes comes with a lower bound of the events it does not see
-- (src/alerts.c, am_process_alerts).  NULL after the update: the first batch
-- reads every partition, as 0.1.0's did.
ALTER TABLE activity_monitor.alert_state
	ADD COLUMN last_bound timestamptz,
	ADD COLUMN batch_bound timestamptz;
