/*
 * activity_monitor 0.2.0: the security model (roles and their boundaries,
 * the worker's pinned search_path, guarded capture triggers, rules that
 * cannot break a write, notifications without personal data).
 */
