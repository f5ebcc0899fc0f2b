-- Tenant roles read the rollups as they are stored since 0008: the rollup views run as the
-- caller (security_invoker), so a tenant role needs SELECT on the compacted tables and the
-- pending deltas under them too, not only on the views (without it every rollup read of a
-- tenant role failed with "permission denied for table execution_time_rollups_compacted").
-- The list of tables lives in one function, which grant and revoke both use, and the roles
-- already granted get the new tables now.

create function meshhook_stats_tenant_tables() returns text[]
    language sql
    immutable
    set search_path = pg_catalog, pg_temp
as $$
    select array['execution_time_statistics', 'execution_time_rollups',
                 'execution_time_rollups_daily', 'execution_time_rollups_compacted',
                 'execution_time_rollups_daily_compacted', 'execution_time_rollup_deltas',
                 'execution_time_workflows']
$$;
comment on function meshhook_stats_tenant_tables() is
    'meshhook-stats: the tables and views a tenant role (meshhook_stats_grant_tenant) may read';

create or replace function meshhook_stats_grant_tenant(tenant_role name, project uuid) returns void
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
    foreach t in array meshhook_stats_tenant_tables() loop
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
create or replace function meshhook_stats_revoke_tenant(tenant_role name, project uuid) returns boolean
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
        foreach t in array meshhook_stats_tenant_tables() loop
            execute format('revoke select on %I from %I', t, tenant_role);
        end loop;
    end if;
    return true;
end
$$;
comment on function meshhook_stats_revoke_tenant(name, uuid) is
    'meshhook-stats: undoes meshhook_stats_grant_tenant; false when there was no such grant';

do $$
declare
    f regprocedure;
    role_name name;
    t text;
begin
    for f in select p.oid::regprocedure from pg_proc p
             where p.pronamespace = current_schema()::regnamespace
               and p.proname in ('meshhook_stats_grant_tenant', 'meshhook_stats_revoke_tenant')
               and pg_get_userbyid(p.proowner) = current_user
    loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
    for role_name in select distinct r.rolname from meshhook_stats_tenant_roles m
                     join pg_roles r on r.oid = m.tenant_role
    loop
        foreach t in array meshhook_stats_tenant_tables() loop
            execute format('grant select on %I to %I', t, role_name);
        end loop;
    end loop;
end
$$;
