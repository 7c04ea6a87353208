-- Re-applied by `maimdb migrate` before the versioned migrations, as the connecting role
-- (which needs CREATEROLE and CREATE on the database: a superuser, or the database owner).
--
-- Roles are cluster-wide, so they live here, not in a migration: every database of the
-- cluster shares them, and creating them must be idempotent and race-safe.

do $$
declare
    r record;
begin
    for r in
        select * from (values
            ('maim_owner',  'owns every schema object; migrations run as it'),
            ('maim_app',    'runtime services in agent scope'),
            ('maim_tenant', 'dashboards in tenant scope'),
            ('maim_admin',  'the control plane, across tenants through explicit policies'),
            ('maim_plugin', 'code acting for one agent by its API key (plugins, LLM tools)')
        ) as t(name, purpose)
    loop
        begin
            execute format('create role %I nologin nobypassrls', r.name);
            execute format('comment on role %I is %L', r.name, 'maim_db: ' || r.purpose);
        exception when duplicate_object then
            -- another database or a concurrent migrate created it first; leave it as it is
            -- (on PostgreSQL 16+ a CREATEROLE role may not even comment on a role it did
            -- not create)
            null;
        end;
    end loop;
end
$$;

-- Whoever runs migrations must be able to become the owner (a superuser already can). On
-- PostgreSQL 16+ a CREATEROLE role that created maim_owner holds only ADMIN on it, not SET:
-- it grants itself the membership; a role that did not create it must be granted it.
do $$
declare
    can_set boolean;
begin
    if current_setting('server_version_num')::int >= 160000 then
        can_set := pg_has_role(current_user, 'maim_owner', 'SET');
    else
        can_set := pg_has_role(current_user, 'maim_owner', 'MEMBER');
    end if;
    if not (select rolsuper from pg_roles where rolname = current_user) and not can_set then
        begin
            execute format('grant maim_owner to %I', current_user);
        exception when insufficient_privilege then
            raise exception 'role % cannot become maim_owner', current_user
                using errcode = '42501',
                      hint = 'The maim roles were created by another role; have it (or a '
                          || 'superuser) run GRANT maim_owner TO ' || current_user
                          || ', then migrate again.';
        end;
    end if;
end
$$;

-- A block opened from an API key runs as maim_plugin whatever the login, so the runtime
-- (maim_app) must be able to become it. Never the other way round: a plugin login granted
-- maim_app would be trusted to name any agent (docs/concepts.md).
do $$
begin
    if not exists (select from pg_auth_members m
                   where m.roleid = 'maim_plugin'::regrole and m.member = 'maim_app'::regrole) then
        grant maim_plugin to maim_app;
    end if;
end
$$;

create schema if not exists maim authorization maim_owner;
grant usage on schema maim to maim_app, maim_tenant, maim_admin, maim_plugin;

-- Tables live in `public` so MaiBot's unqualified SQL keeps working; only the owner creates there.
-- A database first made by PostgreSQL 14 or older still lets PUBLIC create in `public`:
-- revoked, or a plugin could plant an operator there that a statement under its own
-- search_path picks up (`maimdb audit` reports any creator left; the revoke only warns
-- when the connecting role does not own the schema).
revoke create on schema public from public;
grant usage, create on schema public to maim_owner;
grant usage on schema public to maim_app, maim_tenant, maim_admin, maim_plugin;

-- MaiBot 1.x's tables live in a schema of their own (migrations/0020): four of their names
-- are 0.x tables in `public` too (images, llm_usage, person_info, online_time), and each
-- generation keeps its own names. Created here because creating a schema needs CREATE on
-- the database, which maim_owner does not hold; empty until 0020 fills it.
create schema if not exists maibot1 authorization maim_owner;
grant usage on schema maibot1 to maim_app, maim_tenant, maim_admin, maim_plugin;
