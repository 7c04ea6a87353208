-- A chat belongs to one agent, so chat_id determines agent_id. Without telling the planner,
-- it multiplies the two selectivities, expects a handful of rows where a chat has hundreds,
-- and answers "the last 50 messages of this chat" with a bitmap scan and a sort over the whole
-- chat instead of reading 50 entries off the (agent_id, chat_id, time desc) index.
create statistics messages_agent_chat (dependencies, ndistinct)
    on agent_id, chat_id from messages;
create statistics action_records_agent_chat (dependencies, ndistinct)
    on agent_id, chat_id from action_records;
