drop function maim.check_login(text, text);
drop function maim.login_setting(text);
drop policy definer_select on users;
