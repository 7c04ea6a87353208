drop index expression_unreviewed;
drop index thinking_back_unanswered;
alter table chat_config_overrides
    drop constraint chat_config_overrides_at_bot_inevitable_reply_check,
    add constraint chat_config_overrides_at_bot_inevitable_reply_check
        check (at_bot_inevitable_reply >= 0),
    drop constraint chat_config_overrides_talk_value_check,
    add constraint chat_config_overrides_talk_value_check
        check (talk_value >= 0);
