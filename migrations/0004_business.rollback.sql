-- Undo 0004. No foreign keys run between these tables, each only references agents.
drop table system_metrics;
drop table user_sessions;
drop table file_uploads;
drop table chat_logs;
drop table chat_history;
