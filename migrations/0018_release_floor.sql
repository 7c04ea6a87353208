-- Issue 31: the database says which releases may still use it.
--
-- An older maim_db misreads what newer migrations wrote, and says nothing: after 0014 and
-- the key ids of `enc:v2:` values, a service still running 0.1.0 code (every build before
-- 0.2.0 calls itself that) returned an `enc:v2:…` ciphertext from `config show --reveal` as
-- if it were the provider key, exit 0. That code cannot be changed any more; code from this
-- release on can ask.
--
-- maim.release_floor() returns the oldest release that reads and writes this schema
-- correctly, 0.2.0 now. maim_db reads it once per connection (maim_db/release.py) and, when
-- it is newer than the code, refuses in one line before any statement runs. A later
-- migration that changes what older code would misread raises it (`create or replace`, its
-- rollback putting back the value before); one that only adds leaves it, so a database
-- migrated by a newer release keeps serving older services (a rolling upgrade). A plain
-- release (`0.2.0`), compared as PEP 440 orders versions. A function, not a table: one
-- value, nothing to isolate, and its body shows in sql/schema.snapshot.

create function maim.release_floor() returns text
    language sql immutable parallel safe
    as $$ select '0.2.0'::text $$;

revoke all on function maim.release_floor() from public;
grant execute on function maim.release_floor() to maim_app, maim_tenant, maim_admin, maim_plugin;
