-- The reset check every scope statement starts with (maim_db/scope.py), as a function that
-- raises instead of answering. The statement opening a scope is sent in one pipeline with
-- the block's first statement; when the check only answered "not clean", that statement had
-- already run on the dirty connection — for `Pool.fetch`, against a temporary table an
-- earlier borrower left named like a real one. Raising aborts the pipeline, so nothing after
-- the check runs; the client resets the session and retries.
--
-- SQLSTATE MA001 is this project's own: the client matches it exactly. Callable by everyone
-- (it is evaluated as the login role, before the scope switches role) and it reads nothing.
create function maim.assert_clean_session(clean boolean) returns boolean
    language plpgsql volatile
as $$
begin
    if clean is not true then
        raise exception 'this connection carries session state from an earlier user'
            using errcode = 'MA001',
                  hint = 'maim_db resets it (DISCARD ALL) and retries once; a DSN must not '
                      || 'set role or maim.* options';
    end if;
    return true;
end
$$;

comment on function maim.assert_clean_session(boolean) is
    'The reset check of the scope statement; raises MA001 when the session is not clean.';
