-- The control plane: who owns what. Ported from the original's v2 models (users, tenants,
-- agents, api_keys, agent_active_states) and its SQLAlchemy-only plugin_settings, with the
-- integrity the original left to application code now in the database.
--
-- Who sees what (RLS, ENABLE + FORCE on every table):
--   maim_admin   everything, through explicit policies (never BYPASSRLS)
--   maim_tenant  its tenant's rows, read-only
--   maim_app     its own agent row and that agent's tenant row, read-only; its own
--                activity row read-write; plugin settings that apply to it; never api_keys

-- users ------------------------------------------------------------------------------------
create table users (
    id              text        primary key check (id ~ '^user_[A-Za-z0-9_-]{1,45}$'),
    username        text        not null unique check (char_length(username) between 1 and 100),
    email           text        unique check (email ~ '^[^@\s]+@[^@\s]+$'),
    hashed_password text        not null,
    is_active       boolean     not null default true,
    created_at      timestamptz not null default now(),
    updated_at      timestamptz not null default now()
);

-- tenants ----------------------------------------------------------------------------------
-- The original made tenant_name globally unique (Peewee) or not at all (SQLAlchemy); a name
-- is unique per owner here, so two people may both call theirs "my bots".
create table tenants (
    id            text        primary key check (id ~ '^tenant_[A-Za-z0-9_-]{1,43}$'),
    tenant_name   text        not null check (char_length(tenant_name) between 1 and 100),
    tenant_type   text        not null default 'personal'
                              check (tenant_type in ('personal', 'enterprise')),
    description   text,
    contact_email text        check (contact_email ~ '^[^@\s]+@[^@\s]+$'),
    tenant_config jsonb       not null default '{}' check (jsonb_typeof(tenant_config) = 'object'),
    status        text        not null default 'active'
                              check (status in ('active', 'inactive', 'suspended')),
    owner_id      text        references users (id) on delete set null,
    created_at    timestamptz not null default now(),
    updated_at    timestamptz not null default now(),
    unique nulls not distinct (owner_id, tenant_name)
);
create index tenants_owner_created on tenants (owner_id, created_at desc);

-- agents -----------------------------------------------------------------------------------
-- `suspended` joins the original's statuses: a suspended agent keeps its data but may not
-- act. (tenant_id, id) is unique so child tables can hold a composite foreign key that
-- proves an agent belongs to the tenant they name.
create table agents (
    id          text        primary key check (id ~ '^agent_[A-Za-z0-9_-]{1,44}$'),
    tenant_id   text        not null references tenants (id) on delete cascade,
    name        text        not null check (char_length(name) between 1 and 100),
    description text,
    template_id text        check (char_length(template_id) <= 50),
    config      jsonb       not null default '{}' check (jsonb_typeof(config) = 'object'),
    status      text        not null default 'active'
                            check (status in ('active', 'inactive', 'suspended', 'archived')),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    unique (tenant_id, name),
    unique (tenant_id, id)
);
create index agents_tenant_created on agents (tenant_id, created_at desc);

-- The tenant of the agent in scope, as that agent may see it (its own agents row).
create function maim.agent_tenant_id() returns text
    language plpgsql stable parallel safe
as $$
declare
    v text;
begin
    select a.tenant_id into v from public.agents a where a.id = maim.agent_id();
    return v;
end
$$;

-- api_keys ---------------------------------------------------------------------------------
-- The secret is never stored: only its SHA-256 and a short prefix to show in lists.
create table api_keys (
    id           text        primary key check (id ~ '^key_[A-Za-z0-9_-]{1,46}$'),
    tenant_id    text        not null references tenants (id) on delete cascade,
    agent_id     text        not null,
    name         text        not null check (char_length(name) between 1 and 100),
    description  text,
    key_hash     bytea       not null unique check (octet_length(key_hash) = 32),
    key_prefix   text        not null check (char_length(key_prefix) between 4 and 16),
    permissions  text[]      not null default '{}'
                             check (permissions <@ array['chat', 'config_read', 'config_write', 'analytics']),
    status       text        not null default 'active'
                             check (status in ('active', 'disabled', 'expired')),
    expires_at   timestamptz,
    last_used_at timestamptz,
    usage_count  bigint      not null default 0 check (usage_count >= 0),
    created_at   timestamptz not null default now(),
    updated_at   timestamptz not null default now(),
    foreign key (tenant_id, agent_id) references agents (tenant_id, id) on delete cascade,
    unique (tenant_id, name)
);
create index api_keys_agent_created on api_keys (agent_id, created_at desc);

-- agent_active_states ----------------------------------------------------------------------
-- One liveness row per agent, touched by the runtime on every inbound message.
create table agent_active_states (
    agent_id     text        primary key default maim.agent_id(),
    tenant_id    text        not null default maim.agent_tenant_id(),
    last_seen_at timestamptz not null default now(),
    ttl_seconds  integer     not null default 300 check (ttl_seconds > 0),
    expires_at   timestamptz not null,
    foreign key (tenant_id, agent_id) references agents (tenant_id, id) on delete cascade
);
-- list-active scans by expiry.
create index agent_active_states_expires on agent_active_states (expires_at);

create function maim.set_expires_at() returns trigger
    language plpgsql
as $$
begin
    new.expires_at := new.last_seen_at + make_interval(secs => new.ttl_seconds);
    return new;
end
$$;

create trigger set_expires_at before insert or update on agent_active_states
    for each row execute function maim.set_expires_at();

-- plugin_settings --------------------------------------------------------------------------
-- agent_id NULL is the tenant-wide default; an agent row overrides it.
create table plugin_settings (
    id          uuid        primary key default gen_random_uuid(),
    tenant_id   text        not null references tenants (id) on delete cascade,
    agent_id    text,
    plugin_name text        not null check (char_length(plugin_name) between 1 and 100),
    enabled     boolean     not null default false,
    config      jsonb       not null default '{}' check (jsonb_typeof(config) = 'object'),
    created_at  timestamptz not null default now(),
    updated_at  timestamptz not null default now(),
    foreign key (tenant_id, agent_id) references agents (tenant_id, id) on delete cascade,
    unique nulls not distinct (tenant_id, agent_id, plugin_name)
);
create index plugin_settings_agent on plugin_settings (agent_id) where agent_id is not null;

-- updated_at -------------------------------------------------------------------------------
create trigger set_updated_at before update on users
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on tenants
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on agents
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on api_keys
    for each row execute function maim.set_updated_at();
create trigger set_updated_at before update on plugin_settings
    for each row execute function maim.set_updated_at();

-- grants: no TRUNCATE, REFERENCES or TRIGGER for anyone but the owner ------------------------
grant select, insert, update, delete on users, tenants, agents, api_keys,
    agent_active_states, plugin_settings to maim_admin;
grant select on users, tenants, agents, api_keys, agent_active_states, plugin_settings
    to maim_tenant;
grant select on tenants, agents, plugin_settings to maim_app;
grant select, insert, update, delete on agent_active_states to maim_app;

-- row-level security -----------------------------------------------------------------------
alter table users               enable row level security;
alter table users               force row level security;
alter table tenants             enable row level security;
alter table tenants             force row level security;
alter table agents              enable row level security;
alter table agents              force row level security;
alter table api_keys            enable row level security;
alter table api_keys            force row level security;
alter table agent_active_states enable row level security;
alter table agent_active_states force row level security;
alter table plugin_settings     enable row level security;
alter table plugin_settings     force row level security;

-- maim_admin: every command on every control-plane table, stated per command.
create policy admin_select on users for select to maim_admin using (true);
create policy admin_insert on users for insert to maim_admin with check (true);
create policy admin_update on users for update to maim_admin using (true) with check (true);
create policy admin_delete on users for delete to maim_admin using (true);
create policy admin_select on tenants for select to maim_admin using (true);
create policy admin_insert on tenants for insert to maim_admin with check (true);
create policy admin_update on tenants for update to maim_admin using (true) with check (true);
create policy admin_delete on tenants for delete to maim_admin using (true);
create policy admin_select on agents for select to maim_admin using (true);
create policy admin_insert on agents for insert to maim_admin with check (true);
create policy admin_update on agents for update to maim_admin using (true) with check (true);
create policy admin_delete on agents for delete to maim_admin using (true);
create policy admin_select on api_keys for select to maim_admin using (true);
create policy admin_insert on api_keys for insert to maim_admin with check (true);
create policy admin_update on api_keys for update to maim_admin using (true) with check (true);
create policy admin_delete on api_keys for delete to maim_admin using (true);
create policy admin_select on agent_active_states for select to maim_admin using (true);
create policy admin_insert on agent_active_states for insert to maim_admin with check (true);
create policy admin_update on agent_active_states for update to maim_admin using (true) with check (true);
create policy admin_delete on agent_active_states for delete to maim_admin using (true);
create policy admin_select on plugin_settings for select to maim_admin using (true);
create policy admin_insert on plugin_settings for insert to maim_admin with check (true);
create policy admin_update on plugin_settings for update to maim_admin using (true) with check (true);
create policy admin_delete on plugin_settings for delete to maim_admin using (true);

-- maim_tenant: read its own tenant's rows (and its owner's user row).
create policy tenant_select on users for select to maim_tenant
    using (id = (select t.owner_id from tenants t where t.id = (select maim.tenant_id())));
create policy tenant_select on tenants for select to maim_tenant
    using (id = (select maim.tenant_id()));
create policy tenant_select on agents for select to maim_tenant
    using (tenant_id = (select maim.tenant_id()));
create policy tenant_select on api_keys for select to maim_tenant
    using (tenant_id = (select maim.tenant_id()));
create policy tenant_select on agent_active_states for select to maim_tenant
    using (tenant_id = (select maim.tenant_id()));
create policy tenant_select on plugin_settings for select to maim_tenant
    using (tenant_id = (select maim.tenant_id()));

-- maim_app: its own agent, and nothing of any other.
create policy app_select on agents for select to maim_app
    using (id = (select maim.agent_id()));
create policy app_select on tenants for select to maim_app
    using (id = (select maim.agent_tenant_id()));
create policy app_select on agent_active_states for select to maim_app
    using (agent_id = (select maim.agent_id()));
create policy app_insert on agent_active_states for insert to maim_app
    with check (agent_id = (select maim.agent_id()));
create policy app_update on agent_active_states for update to maim_app
    using (agent_id = (select maim.agent_id()))
    with check (agent_id = (select maim.agent_id()));
create policy app_delete on agent_active_states for delete to maim_app
    using (agent_id = (select maim.agent_id()));
create policy app_select on plugin_settings for select to maim_app
    using (tenant_id = (select maim.agent_tenant_id())
           and (agent_id is null or agent_id = (select maim.agent_id())));
