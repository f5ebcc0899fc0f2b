-- 0004: tenancy enforced by Postgres. Row level security on every table holding a tenant's
-- rows, two roles for the daemon's two paths, and the functions the policies ask:
--
--   meshhook_stats_reader   what the statistics endpoint runs as (SET LOCAL ROLE, with the
--                           caller's claims in request.jwt.claims): SELECT only, policies apply.
--   meshhook_stats_writer   for producers that write rows themselves: INSERT only, reads nothing.
--   the migrating role      owns the tables (batch writer, tailer, retention, the rollup
--                           triggers): sees every row, as MeshHook's workers do.
--
-- A row is visible to a caller when its project_id is one of meshhook_stats_caller_project_ids():
-- where MeshHook's projects table exists, user_project_ids() (projects whose owner =
-- auth.uid()); otherwise (standalone) the uuids in the claim meshhook_project_ids, which the
-- daemon fills from the claim named by auth.project_ids_claim. No claims: no rows.

-- Roles belong to the cluster, not the database: several databases of one cluster may each
-- run this migration, concurrently too, so each role is created only if absent and a lost
-- race is not an error.
do $$
declare
    r text;
begin
    foreach r in array array['meshhook_stats_reader', 'meshhook_stats_writer'] loop
        if not exists (select 1 from pg_roles where rolname = r) then
            begin
                execute format('create role %I nologin nobypassrls', r);
            exception when duplicate_object or unique_violation then
                null;
            end;
        end if;
    end loop;
end
$$;

-- The daemon connects as the migrating role and switches to the reader for each statistics
-- request, which needs membership (a superuser needs none).
do $$
begin
    if not (select rolsuper from pg_roles where rolname = current_user) then
        execute format('grant meshhook_stats_reader to %I', current_user);
    end if;
exception when insufficient_privilege then
    raise warning 'meshhook-stats: cannot grant meshhook_stats_reader to %; '
                  'grant it yourself, the statistics endpoint switches to that role', current_user;
end
$$;

-- Supabase has auth.uid() and auth.jwt(); plain Postgres gets compatible ones reading the
-- same settings PostgREST and the daemon set per transaction. Never replaced where present.
do $$
begin
    if to_regnamespace('auth') is null then
        create schema auth;
        grant usage on schema auth to public;
    end if;
    if to_regprocedure('auth.jwt()') is null then
        create function auth.jwt() returns jsonb
            language sql stable
            set search_path = pg_catalog, pg_temp
            return coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                            nullif(current_setting('request.jwt.claims', true), ''))::jsonb;
        comment on function auth.jwt() is
            'meshhook-stats: the caller''s JWT claims (request.jwt.claims), as on Supabase';
    end if;
    if to_regprocedure('auth.uid()') is null then
        -- The sub claim as a uuid; null when absent or not a uuid (a standalone issuer's
        -- subjects need not be uuids, and a cast error must not fail the caller's query).
        create function auth.uid() returns uuid
            language sql stable
            set search_path = pg_catalog, pg_temp
            return (
                select case when s ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'
                            then s::uuid end
                from (select coalesce(
                          nullif(current_setting('request.jwt.claim.sub', true), ''),
                          nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
                          as s) as claim);
        comment on function auth.uid() is
            'meshhook-stats: the caller''s sub claim as a uuid, as on Supabase';
    end if;
end
$$;

-- MeshHook's user_project_ids(), where MeshHook has not defined it: the projects the caller
-- owns. Security definer so that callers need no grant on projects; the search path is fixed
-- and every name qualified, so nothing a caller creates can stand in for them.
do $$
begin
    if to_regprocedure('user_project_ids()') is null then
        create function user_project_ids() returns setof uuid
            language plpgsql stable security definer
            set search_path = pg_catalog, pg_temp
            rows 10
        as $f$
        begin
            if to_regclass('public.projects') is not null then
                return query execute 'select id from public.projects where owner = auth.uid()';
            end if;
        end
        $f$;
        comment on function user_project_ids() is
            'The projects whose owner is auth.uid() (meshhook-stats; MeshHook''s own wins)';
    end if;
end
$$;

-- What the policies ask. MeshHook's projects table decides where it exists, even for a token
-- that carries meshhook_project_ids; only standalone deployments read the claim.
create function meshhook_stats_caller_project_ids() returns setof uuid
    language plpgsql stable security definer
    rows 10
as $$
declare
    listed jsonb;
begin
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
end
$$;
comment on function meshhook_stats_caller_project_ids() is
    'meshhook-stats: the projects whose statistics the caller may read (RLS policies)';

-- Pinned to this schema (where user_project_ids() and the tables are), then the catalog; the
-- temporary schema last, so a caller's temporary objects are never found first.
do $$
begin
    execute format('alter function meshhook_stats_caller_project_ids() set search_path = %I, pg_catalog, pg_temp',
                   current_schema());
end
$$;

-- The policies. FORCE makes them apply to the owner as well, who is then let through by an
-- explicit policy (the batch writer, tailer, retention and the rollup triggers run as owner).
do $$
declare
    t text;
begin
    foreach t in array array['execution_time_statistics', 'execution_time_rollups',
                             'execution_time_rollups_daily'] loop
        execute format('alter table %I enable row level security', t);
        execute format('alter table %I force row level security', t);
        execute format('create policy meshhook_stats_caller_projects on %I for select to public '
                       'using (project_id in (select meshhook_stats_caller_project_ids()))', t);
        execute format('create policy meshhook_stats_owner on %I for all to %I '
                       'using (true) with check (true)', t, current_user);
        execute format('grant select on %I to meshhook_stats_reader', t);
    end loop;
end
$$;

create policy meshhook_stats_writer_insert on execution_time_statistics
    for insert to meshhook_stats_writer with check (true);
grant insert on execution_time_statistics to meshhook_stats_writer;
