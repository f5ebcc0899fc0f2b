-- Row level security without MeshHook's tables: the claim meshhook_project_ids decides.
begin;
select plan(38);
\ir _tenants.psql

-- The roles and the policies themselves.
select ok((select not rolbypassrls and not rolsuper and not rolcanlogin from pg_roles
           where rolname = 'meshhook_stats_reader'), 'the reader role cannot bypass RLS');
select ok((select not rolbypassrls and not rolsuper and not rolcanlogin from pg_roles
           where rolname = 'meshhook_stats_writer'), 'the writer role cannot bypass RLS');
select is((select count(*)::int from pg_class c join pg_attribute a on a.attrelid = c.oid
           where a.attname = 'project_id' and c.relkind in ('r', 'p')
             and c.relnamespace = current_schema()::regnamespace
             and not (c.relrowsecurity and c.relforcerowsecurity)), 0,
          'every table with a project_id has row level security enabled and forced');
select is((select count(*)::int from pg_class c join pg_attribute a on a.attrelid = c.oid
           where a.attname = 'project_id' and c.relkind in ('r', 'p')
             and c.relnamespace = current_schema()::regnamespace), 15,
          'fifteen tables hold tenant rows (runs, captured runs not moved yet, queue waits, steps, compacted hourly and daily rollups and hourly, daily and weekly all-status ones, rollup deltas, queue and step rollups and their deltas, rejected runs, workflow names, tenant roles)');
select is((select count(*)::int from pg_class c join pg_attribute a on a.attrelid = c.oid
           where a.attname = 'project_id' and c.relkind in ('v', 'm')
             and c.relnamespace = current_schema()::regnamespace
             and not coalesce('security_invoker=true' = any (c.reloptions), false)), 0,
          'every view with a project_id runs as the caller (security_invoker), so RLS applies');
select is((select count(*)::int from pg_proc p
           where p.pronamespace = current_schema()::regnamespace and p.prosecdef
             and (p.proconfig is null or not exists (select 1 from unnest(p.proconfig) as c
                                                     where c like 'search_path=%'))), 0,
          'every security definer function pins its search_path');
select ok((select prosecdef from pg_proc where oid = 'user_project_ids()'::regprocedure),
          'user_project_ids() is security definer');

-- Owner of project A: only A, in every table and function.
select pg_temp.act_as('meshhook_stats_reader',
                      jsonb_build_object('sub', 'user-a', 'meshhook_project_ids', jsonb_build_array(:project_a)));
select is((select count(*)::int from execution_time_statistics), 2, 'A sees its 2 runs');
select is((select count(*)::int from execution_time_statistics where project_id <> :project_a), 0,
          'A sees no other project''s run');
select is((select count(*)::int from execution_time_statistics where workflow_id = :workflow_b), 0,
          'A asking for B''s workflow by id gets nothing');
select is((select count(*)::int from execution_time_rollups where project_id <> :project_a), 0,
          'A sees no other project''s hourly rollups');
select is((select sum(run_count)::int from execution_time_rollups), 2, 'A''s hourly rollups count 2 runs');
select is((select sum(run_count)::int from execution_time_rollups_daily), 2, 'A''s daily rollups count 2 runs');
select results_eq('select name from execution_time_workflows', array['A''s workflow'],
                  'A sees the name of its own workflow alone');
select results_eq('select * from meshhook_stats_caller_project_ids()', array[:project_a::uuid],
                  'meshhook_stats_caller_project_ids() is A alone');
select is_empty('select * from user_project_ids()', 'user_project_ids() is empty without MeshHook''s projects');
select throws_ok('insert into execution_time_statistics (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms)
                  values (gen_random_uuid(), ' || quote_literal(:project_a) || ', gen_random_uuid(), ''failed'', now(), now(), 1)',
                 '42501', null, 'the reader cannot insert');
select throws_ok('update execution_time_statistics set execution_time_ms = 0', '42501', null, 'the reader cannot update');
select throws_ok('delete from execution_time_statistics', '42501', null, 'the reader cannot delete');
select throws_ok('delete from execution_time_rollups', '42501', null, 'the reader cannot delete rollups');
select throws_ok('select * from meshhook_stats_cursors', '42501', null, 'the reader cannot read the cursors');
reset role;

-- Owner of project B: only B.
select pg_temp.act_as('meshhook_stats_reader',
                      jsonb_build_object('sub', 'user-b', 'meshhook_project_ids', jsonb_build_array(:project_b)));
select is((select count(*)::int from execution_time_statistics), 3, 'B sees its 3 runs');
select is((select count(*)::int from execution_time_rollups where project_id = :project_a), 0, 'B sees none of A''s rollups');
select is((select count(*)::int from execution_time_workflows where project_id = :project_a), 0, 'B sees none of A''s workflow names');
reset role;

-- Anonymous and malformed claims: nothing, and no error.
select pg_temp.act_as('meshhook_stats_reader', null);
select is((select count(*)::int from execution_time_statistics), 0, 'anonymous sees no runs');
select is((select count(*)::int from execution_time_rollups), 0, 'anonymous sees no hourly rollups');
select is((select count(*)::int from execution_time_rollups_daily), 0, 'anonymous sees no daily rollups');
select is((select count(*)::int from execution_time_workflows), 0, 'anonymous sees no workflow names');
select is_empty('select * from meshhook_stats_caller_project_ids()', 'anonymous has no projects');
reset role;
select pg_temp.act_as('meshhook_stats_reader',
                      jsonb_build_object('sub', 'x', 'meshhook_project_ids', jsonb_build_array('not-a-uuid', 5, jsonb_build_object('a', 1))));
select is((select count(*)::int from execution_time_statistics), 0, 'malformed project ids match nothing');
reset role;
select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', 'x', 'meshhook_project_ids', :project_a));
select is((select count(*)::int from execution_time_statistics), 0, 'a project id that is not in a list matches nothing');
select is(auth.uid(), null, 'auth.uid() of a non-uuid subject is null, not an error');
reset role;

-- The writer: inserts, reads nothing.
select pg_temp.act_as('meshhook_stats_writer', null);
select lives_ok('insert into execution_time_statistics (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms)
                 values (''cccccccc-0000-4000-8000-000000000001'', ' || quote_literal(:project_a) || ', ' || quote_literal(:workflow_a) || ', ''failed'', timestamptz ''2024-05-01 05:00+00'', timestamptz ''2024-05-01 05:00:01+00'', 1000)
                 on conflict do nothing',
                'the writer can insert, replays ignored (on conflict do nothing)');
select throws_ok('insert into execution_time_statistics (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms)
                  values (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), ''failed'', now(), now(), 1)
                  on conflict (run_id) do nothing', '42501', null,
                 'a conflict target would need SELECT, which the writer does not have');
select throws_ok('select count(*) from execution_time_statistics', '42501', null, 'the writer cannot read runs');
select throws_ok('select count(*) from execution_time_rollups', '42501', null, 'the writer cannot read rollups');
select throws_ok('insert into execution_time_statistics (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms)
                  values (gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), ''failed'', now(), now(), 1)
                  returning project_id, execution_time_ms', '42501', null, 'not even the row it inserts (returning)');
reset role;
select is((select sum(run_count)::int from execution_time_rollups where project_id = :project_a), 3,
          'the writer''s run reached the rollups (the trigger runs as owner)');

select * from finish();
rollback;
