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
            ('maim_admin',  'the control plane, across tenants through explicit policies')
        ) as t(name, purpose)
    loop
        begin
            execute format('create role %I nologin nobypassrls', r.name);
        exception when duplicate_object then
            null;  -- another database or a concurrent migrate created it first
        end;
        execute format('comment on role %I is %L', r.name, 'maim_db: ' || r.purpose);
    end loop;
end
$$;

-- Whoever runs migrations must be able to become the owner (a superuser already can).
do $$
begin
    if not (select rolsuper from pg_roles where rolname = current_user) then
        execute format('grant maim_owner to %I', current_user);
    end if;
end
$$;

create schema if not exists maim authorization maim_owner;
grant usage on schema maim to maim_app, maim_tenant, maim_admin;

-- Tables live in `public` so MaiBot's unqualified SQL keeps working; only the owner creates there.
grant usage, create on schema public to maim_owner;
grant usage on schema public to maim_app, maim_tenant, maim_admin;
