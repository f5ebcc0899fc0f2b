-- 0007: security definer functions that cannot be turned, and tenancy that no session setting
-- can widen.
--
-- 1. The rollup triggers of 0003 (and the MeshHook capture trigger) were created with
--    `set search_path from current`, which leaves pg_temp searched first for tables: a login
--    with nothing but INSERT and the database's default TEMP right could create a temporary
--    execution_time_rollups with a trigger of its own, insert one run, and have that trigger
--    run as the owner. Every security definer function of ours now pins
--        search_path = pg_catalog, <this schema>, pg_temp
--    pg_catalog first, so that no table or function of the same name stands in for a built-in
--    (to_regclass, date_trunc, ...); pg_temp explicitly last, so that it is never searched
--    before the real tables (and never for functions or operators at all).
--
-- 2. The policies of 0004 trusted request.jwt.claims, a setting every SQL session can set:
--    any login in meshhook_stats_reader could claim another tenant's project. The claims now
--    count only in a session whose login is the daemon's (the role owning the tables, or a
--    member of it, who could read every row anyway): PostgREST's authenticator pattern. Any
--    other login sees the projects of the tenant roles it belongs to (the mapping below, made
--    by `meshhook-stats grant-tenant`), decided by pg_has_role on session_user, which no SET
--    changes. Such a login sees nothing else whatever claims it sets.

-- The projects each tenant role may read (for direct SQL readers such as Grafana's Postgres
-- data source). Only the owner reads or writes it; callers reach it through
-- meshhook_stats_caller_project_ids().
create table meshhook_stats_tenant_roles (
    tenant_role regrole     not null,
    project_id  uuid        not null,
    granted_at  timestamptz not null default now(),
    primary key (tenant_role, project_id)
);

comment on table meshhook_stats_tenant_roles is
    'meshhook-stats: the projects a tenant role (and every login in it) may read over SQL';

alter table meshhook_stats_tenant_roles enable row level security;
alter table meshhook_stats_tenant_roles force row level security;
do $$
begin
    execute format('create policy meshhook_stats_owner on meshhook_stats_tenant_roles for all to %I '
                   'using (true) with check (true)', current_user);
end
$$;

-- What the policies ask (same name and result type as in 0004, so the policies stand).
create or replace function meshhook_stats_caller_project_ids() returns setof uuid
    language plpgsql stable security definer
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
    rows 10
as $$
declare
    listed jsonb;
begin
    -- The daemon's session: it switched to meshhook_stats_reader and set the claims it
    -- verified. session_user is the login and no SET ROLE changes it.
    if pg_has_role(session_user,
                   (select c.relowner from pg_class c
                    where c.oid = 'execution_time_statistics'::regclass), 'MEMBER') then
        if to_regclass('public.projects') is not null then
            return query select p from user_project_ids() as p;
            return;
        end if;
        listed := auth.jwt() -> 'meshhook_project_ids';
        if jsonb_typeof(listed) is distinct from 'array' then
            return;
        end if;
        return query
            select (e #>> '{}')::uuid
            from jsonb_array_elements(listed) as e
            where jsonb_typeof(e) = 'string'
              and (e #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$';
        return;
    end if;
    -- Any other login: its tenant roles, whatever request.jwt.claims says.
    return query
        select t.project_id
        from meshhook_stats_tenant_roles t
        join pg_roles r on r.oid = t.tenant_role
        where pg_has_role(session_user, r.oid, 'MEMBER');
end
$$;
comment on function meshhook_stats_caller_project_ids() is
    'meshhook-stats: the projects whose statistics the caller may read (RLS policies): the '
    'verified claims in the daemon''s own session, the tenant roles of any other login';

-- Makes tenant_role (created NOLOGIN if absent) a reader of project's rows: SELECT on the
-- tables, under the policies, which then show it that project (and any other granted to it).
-- Run by the owner (`meshhook-stats grant-tenant`); nobody else may insert the mapping.
create function meshhook_stats_grant_tenant(tenant_role name, project uuid) returns void
    language plpgsql
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
declare
    r record;
    t text;
begin
    if tenant_role is null or tenant_role = '' or project is null then
        raise exception 'a tenant role and a project are both needed' using errcode = '22023';
    end if;
    if not exists (select 1 from pg_roles where rolname = tenant_role) then
        begin
            execute format('create role %I nologin nosuperuser nobypassrls', tenant_role);
        exception when insufficient_privilege then
            raise exception 'role "%" does not exist, and % may not create roles', tenant_role, current_user
                using errcode = '42501',
                      hint = 'create it yourself (create role ... nologin), then run this again';
        end;
    end if;
    select rolname, rolsuper, rolbypassrls into r from pg_roles where rolname = tenant_role;
    if r.rolsuper or r.rolbypassrls then
        raise exception 'role "%" bypasses row level security, so it would see every tenant', tenant_role
            using errcode = '22023';
    end if;
    if tenant_role in ('meshhook_stats_reader', 'meshhook_stats_writer')
       or pg_has_role(tenant_role, (select c.relowner from pg_class c
                                    where c.oid = 'execution_time_statistics'::regclass), 'MEMBER') then
        raise exception 'role "%" is one of meshhook-stats'' own roles; use a role of its own for a tenant', tenant_role
            using errcode = '22023';
    end if;
    foreach t in array array['execution_time_statistics', 'execution_time_rollups',
                             'execution_time_rollups_daily', 'execution_time_workflows'] loop
        execute format('grant select on %I to %I', t, tenant_role);
    end loop;
    insert into meshhook_stats_tenant_roles (tenant_role, project_id)
    values ((select oid from pg_roles where rolname = tenant_role)::regrole, project)
    on conflict do nothing;
end
$$;
comment on function meshhook_stats_grant_tenant(name, uuid) is
    'meshhook-stats: lets tenant_role (and its members) read project''s statistics over SQL';

-- Undoes one grant; when the role has no project left, its SELECT on the tables goes too. The
-- role itself stays (it may be granted to logins). False when there was no such grant.
create function meshhook_stats_revoke_tenant(tenant_role name, project uuid) returns boolean
    language plpgsql
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
declare
    t text;
    role_oid oid;
begin
    select oid into role_oid from pg_roles where rolname = tenant_role;
    if role_oid is null then
        return false;
    end if;
    delete from meshhook_stats_tenant_roles m
    where m.tenant_role = role_oid and m.project_id = project;
    if not found then
        return false;
    end if;
    if not exists (select 1 from meshhook_stats_tenant_roles m where m.tenant_role = role_oid) then
        foreach t in array array['execution_time_statistics', 'execution_time_rollups',
                                 'execution_time_rollups_daily', 'execution_time_workflows'] loop
            execute format('revoke select on %I from %I', t, tenant_role);
        end loop;
    end if;
    return true;
end
$$;
comment on function meshhook_stats_revoke_tenant(name, uuid) is
    'meshhook-stats: undoes meshhook_stats_grant_tenant; false when there was no such grant';

revoke execute on function meshhook_stats_grant_tenant(name, uuid) from public;
revoke execute on function meshhook_stats_revoke_tenant(name, uuid) from public;

-- Pins the functions above and every security definer function of ours (0003's rollup
-- triggers, 0004's caller_project_ids, the capture trigger where it is installed) to the
-- catalog, this schema, then pg_temp. 0004's user_project_ids() (when ours) already has
-- `pg_catalog, pg_temp` and qualifies every name; MeshHook's own is MeshHook's business.
do $$
declare
    f regprocedure;
begin
    for f in select p.oid::regprocedure from pg_proc p
             where p.pronamespace = current_schema()::regnamespace
               and (p.prosecdef or p.proname in ('meshhook_stats_grant_tenant',
                                                 'meshhook_stats_revoke_tenant'))
               and p.proname like 'meshhook\_stats\_%'
               and pg_get_userbyid(p.proowner) = current_user
    loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
end
$$;
