-- Two chat settings MaiBot documents as fractions get their upper bound: at_bot_inevitable_reply
-- ("1为100%回复，0为不额外增幅": 1 is a certain reply) and talk_value ("范围0-1"). 0003 had
-- only `>= 0`. A stored value above 1 makes this migration fail, and nothing changes: such a
-- value was never meaningful to MaiBot, so fix the row and migrate again.
-- auto_chat_value stays `>= 0`: MaiBot gives it no range.
alter table chat_config_overrides
    drop constraint chat_config_overrides_at_bot_inevitable_reply_check,
    add constraint chat_config_overrides_at_bot_inevitable_reply_check
        check (at_bot_inevitable_reply between 0 and 1),
    drop constraint chat_config_overrides_talk_value_check,
    add constraint chat_config_overrides_talk_value_check
        check (talk_value between 0 and 1);

-- MaiBot's periodic clean-ups (reference/maibot-sqlite.md §3, Tier E), which 0005 left to a
-- scan of the agent's rows:
--   ThinkingBack: delete where found_answer = 0 and update_time < now - 36000
create index thinking_back_unanswered on thinking_back (agent_id, update_time)
    where not found_answer;
--   the expression reflector: where not checked and not rejected limit 50
create index expression_unreviewed on expression (agent_id)
    where not checked and not rejected;
