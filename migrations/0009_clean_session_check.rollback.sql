drop function maim.assert_clean_session(boolean);
