-- Issue 33: one place for each scope function and each policy.
--
-- Until now every change to a scope function pasted its whole body into a new migration and
-- the body before it into that migration's rollback (open_key_scope stood in nine copies, a
-- body and its grants up to ten migrations apart), and a policy had four textual sources:
-- the format() strings of isolate_agent_table in two forms, 0001's hand-written policies
-- retargeted by a loop in 0012, and a regex over deparsed text in maim_db/schema/citus.py.
--
-- From this migration on, two files that `maimdb migrate` re-applies after the pending
-- migrations of every run own them (docs/conventions.md, "Scope functions and policies"):
--   sql/20_scope.sql     the scope functions, each with its grants beside it;
--   sql/30_policies.sql  every policy of every table, written once with terms that have a
--                        one-server and a Citus form, isolate_agent_table, and the procedure
--                        that brings every table's policies to that text.
-- The migrations before this one stay as they are (append-only, checksummed) and still
-- build the schema up to here; migrate applies the two files only once this migration is
-- applied. This file marks the hand-over in the catalog, where psql's \dn+ shows it. Its
-- rollback hands the functions back to the migrations, as 0018 left them.

comment on schema maim is
    'maim_db: scope functions in sql/20_scope.sql, policies in sql/30_policies.sql, '
    're-applied by every maimdb migrate (migrations/0019)';
