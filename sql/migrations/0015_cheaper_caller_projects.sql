-- 0015: the caller's projects at a fraction of the cost, the same projects.
--
-- Every row level security policy asks meshhook_stats_caller_project_ids() once per table scan
-- (an InitPlan), and a statistics request scans about nine: 16 us a call on a quiet machine, so
-- ~150 us of the ~2 ms of Postgres CPU a request costs. Most of it was not the answer but the
-- machinery: the set-returning plpgsql function fed its rows through a tuplestore, the owner
-- lookup and the claims were each a query of their own (an executor start each), and
-- auth.jwt() is a function with its own search path (a GUC change per call).
--
-- meshhook_stats_caller_projects() returns the same projects as an array, computed by plain
-- expressions (no query on the daemon's path), and the policies compare with it through a
-- scalar subquery (still an InitPlan: evaluated once per scan, usable in the index condition):
--     project_id = any ((select meshhook_stats_caller_projects())::uuid[])
-- What decides is unchanged:
--   - the daemon's session, told apart by session_user (no SET changes it) being a member of
--     current_user, which in this security definer function is its owner: the role that runs
--     the migrations and so owns the tables (0007 asked for the tables' owner in pg_class; the
--     two are the same role, and the policies of every migration grant that role by name);
--     its projects are MeshHook's user_project_ids() where MeshHook's projects exist, else the
--     meshhook_project_ids claim the daemon verified, read from the settings auth.jwt() reads;
--   - any other login: its tenant roles (0007), whatever request.jwt.claims says.
-- The claim is parsed without a regular expression when it has the one shape the daemon
-- writes (a JSON list of lower-case canonical uuids): each character is checked by translate()
-- against that shape; anything else takes 0007's query, which drops what is not a uuid string.
-- meshhook_stats_caller_project_ids() stays, for SQL callers and the daemon's project check,
-- as the rows of the array. Every policy that used it is rewritten, whichever table it is on.

create function meshhook_stats_caller_projects() returns uuid[]
    language plpgsql stable security definer
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
as $$
declare
    listed jsonb;
    listed_text text;
    n integer;
begin
    if pg_has_role(session_user, current_user, 'MEMBER') then
        if to_regclass('public.projects') is not null then
            return array(select p from user_project_ids() as p);
        end if;
        listed := coalesce(nullif(current_setting('request.jwt.claim', true), ''),
                           nullif(current_setting('request.jwt.claims', true), ''))::jsonb
                  -> 'meshhook_project_ids';
        if jsonb_typeof(listed) is distinct from 'array' then
            return '{}';
        end if;
        n := jsonb_array_length(listed);
        if n = 0 then
            return '{}';
        end if;
        listed_text := listed::text;
        -- ["8-4-4-4-12", "..."] with every hex digit lower case: exactly that shape. The hex
        -- digits become \x01, which jsonb's text never holds raw (it writes control
        -- characters as \u0001), so no other string can look like a uuid here.
        if length(listed_text) = 40 * n
           and translate(listed_text, '0123456789abcdef', repeat(E'\x01', 16))
               = translate('[' || repeat('"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", ', n - 1)
                               || '"xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"]', 'x', E'\x01') then
            return translate(listed_text, '[]" ', '{}')::uuid[];
        end if;
        return array(
            select (e #>> '{}')::uuid
            from jsonb_array_elements(listed) as e
            where jsonb_typeof(e) = 'string'
              and (e #>> '{}') ~* '^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$');
    end if;
    return array(
        select t.project_id
        from meshhook_stats_tenant_roles t
        join pg_roles r on r.oid = t.tenant_role
        where pg_has_role(session_user, r.oid, 'MEMBER'));
end
$$;
comment on function meshhook_stats_caller_projects() is
    'meshhook-stats: the projects whose statistics the caller may read (RLS policies), as an '
    'array: the verified claims in the daemon''s own session, the tenant roles of any other login';

-- The same projects as rows, for SQL callers; the array decides.
create or replace function meshhook_stats_caller_project_ids() returns setof uuid
    language plpgsql stable
    set search_path = pg_catalog, pg_temp  -- replaced below by one naming this schema
    rows 10
as $$
begin
    return query select unnest(meshhook_stats_caller_projects());
end
$$;

do $$
declare
    f text;
begin
    foreach f in array array['meshhook_stats_caller_projects()',
                             'meshhook_stats_caller_project_ids()'] loop
        execute format('alter function %s set search_path = pg_catalog, %I, pg_temp',
                       f, current_schema());
    end loop;
end
$$;
grant execute on function meshhook_stats_caller_projects() to public;

-- Every policy of ours that asks for the caller's projects, on whichever table (0004-0014).
do $$
declare
    p record;
begin
    for p in select tablename from pg_policies
             where schemaname = current_schema() and policyname = 'meshhook_stats_caller_projects'
             order by tablename loop
        execute format('alter policy meshhook_stats_caller_projects on %I '
                       'using (project_id = any ((select meshhook_stats_caller_projects())::uuid[]))',
                       p.tablename);
    end loop;
end
$$;
