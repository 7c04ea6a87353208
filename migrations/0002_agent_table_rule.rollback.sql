drop function maim.isolate_agent_table(regclass);
