-- What Supabase and MeshHook already have before meshhook-stats migrates: the auth schema
-- with auth.uid() and auth.jwt(), and MeshHook's user_project_ids(). Each marked, so the test
-- can tell they were kept.
create schema auth;
create function auth.jwt() returns jsonb language sql stable
    as $$ select nullif(current_setting('request.jwt.claims', true), '')::jsonb /* platform */ $$;
create function auth.uid() returns uuid language sql stable
    as $$ select (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')::uuid /* platform */ $$;
create function user_project_ids() returns setof uuid language sql stable security definer
    set search_path = public, pg_temp
    as $$ select id from projects where owner = auth.uid() /* platform */ $$;
