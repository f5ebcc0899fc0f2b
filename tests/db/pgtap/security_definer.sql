-- Every security definer function of ours pins a search_path that cannot be turned: the
-- catalog first (no stand-in for a built-in), pg_temp explicitly last (a caller's temporary
-- table never shadows ours while the function runs as the owner). With MeshHook's tables, so
-- that the capture trigger's function is among them.
-- needs: meshhook_schema
begin;
select plan(4);

create temporary view ours as
select p.oid::regprocedure::text as name,
       (select substr(c, length('search_path=') + 1) from unnest(p.proconfig) as c
        where c like 'search_path=%') as search_path
from pg_proc p
where p.pronamespace = current_schema()::regnamespace and p.prosecdef
  and (p.proname like 'meshhook\_stats\_%'
       or coalesce(obj_description(p.oid, 'pg_proc'), '') like '%meshhook-stats%');

select cmp_ok((select count(*)::int from ours), '>=', 5,
              'the security definer functions are found (rollups add, recompute, truncate, caller projects, capture)');
select ok((select count(*) = 1 from ours where name = 'meshhook_stats_capture_run()'),
          'the capture trigger function is among them');
select is(array(select name from ours where search_path is null or search_path !~ '(^|, )pg_temp$'
                order by name),
          '{}'::text[], 'every one''s search_path ends in pg_temp');
select is(array(select name from ours where search_path is null or search_path !~ '^pg_catalog, '
                order by name),
          '{}'::text[], 'every one''s search_path starts with pg_catalog');

select * from finish();
rollback;
