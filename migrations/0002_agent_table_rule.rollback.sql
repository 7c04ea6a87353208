drop procedure maim.isolate_agent_table(regclass);
