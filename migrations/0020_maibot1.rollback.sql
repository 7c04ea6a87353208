-- Undoes 0020: drops MaiBot 1.x's tables with their rows (newest first). The schema
-- maibot1 stays, empty: sql/00_bootstrap.sql makes it, and the next `maimdb migrate` would
-- make it again; maim.maibot1_id() is sql/10_helpers.sql's, and stays too.

drop table maibot1.bot_platform_accounts;
drop table maibot1.chat_sessions;
drop table maibot1.person_info;
drop table maibot1.binary_data;
drop table maibot1.jargons;
drop table maibot1.behavior_outcomes;
drop table maibot1.behavior_actions;
drop table maibot1.behavior_scene_tag_clusters;
drop table maibot1.behavior_scene_clusters;
drop table maibot1.behavior_experience_paths;
drop table maibot1.expressions;
drop table maibot1.online_time;
drop table maibot1.high_frequency_terms;
drop table maibot1.statistics_model_hourly;
drop table maibot1.statistics_tool_hourly;
drop table maibot1.statistics_message_hourly;
drop table maibot1.statistics_aggregation_cursors;
drop table maibot1.one_time_maintenance_tasks;
drop table maibot1.maisaka_reply_effects;
drop table maibot1.maisaka_monitor_events;
drop table maibot1.tool_records;
drop table maibot1.images;
drop table maibot1.llm_usage;
drop table maibot1.mai_messages;
