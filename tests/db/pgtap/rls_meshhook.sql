-- Row level security with MeshHook's tables: projects.owner = auth.uid() decides, through
-- user_project_ids(); a meshhook_project_ids claim is ignored there.
-- needs: meshhook_schema
begin;
select plan(20);
\ir _tenants.psql
\set user_a '''11111111-1111-4111-8111-111111111111'''
\set user_b '''22222222-2222-4222-8222-222222222222'''
\set user_c '''33333333-3333-4333-8333-333333333333'''
insert into projects (id, owner, name) values (:project_a, :user_a, 'A'), (:project_b, :user_b, 'B');

select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', :user_a, 'role', 'authenticated'));
select is(auth.uid(), :user_a::uuid, 'auth.uid() is the sub claim');
select results_eq('select * from user_project_ids()', array[:project_a::uuid], 'user_project_ids() is the project A''s owner owns');
select is((select count(*)::int from execution_time_statistics), 2, 'the owner of A sees A''s 2 runs');
select is((select count(*)::int from execution_time_statistics where project_id = :project_b), 0, 'and none of B''s');
select is((select count(*)::int from execution_time_rollups where project_id <> :project_a), 0, 'no other project''s hourly rollups');
select is((select count(*)::int from execution_time_rollups_daily where project_id <> :project_a), 0, 'no other project''s daily rollups');
select results_eq('select * from meshhook_stats_caller_project_ids()', array[:project_a::uuid], 'the caller''s projects are A alone');
select throws_ok('select * from projects', '42501', null, 'the reader has no grant on MeshHook''s projects');
reset role;

select pg_temp.act_as('meshhook_stats_reader',
                      jsonb_build_object('sub', :user_a, 'meshhook_project_ids', jsonb_build_array(:project_b)));
select is((select count(*)::int from execution_time_statistics where project_id = :project_b), 0,
          'a meshhook_project_ids claim does not widen what MeshHook''s projects allow');
reset role;

select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', :user_b));
select is((select count(*)::int from execution_time_statistics), 3, 'the owner of B sees B''s 3 runs');
select is((select sum(run_count)::int from execution_time_rollups), 3, 'and B''s rollups only');
reset role;

select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', :user_c));
select is((select count(*)::int from execution_time_statistics), 0, 'a user owning no project sees nothing');
reset role;

select pg_temp.act_as('meshhook_stats_reader', null);
select is((select count(*)::int from execution_time_statistics), 0, 'anonymous sees no runs');
select is((select count(*)::int from execution_time_rollups), 0, 'anonymous sees no rollups');
select is_empty('select * from user_project_ids()', 'anonymous owns no project');
reset role;

-- The capture trigger (security definer) still records MeshHook's runs under forced RLS.
insert into workflow_definitions (id, project_id, slug, name) values (:workflow_a, :project_a, 'a', 'A');
select lives_ok('insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)
                 values (' || quote_literal(:project_a) || ', ' || quote_literal(:workflow_a) || ', ''succeeded'', now() - interval ''2 seconds'', now())',
                'finishing a MeshHook run still works');
select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', :user_a));
select is((select count(*)::int from execution_time_captured_runs), 1,
          'its owner sees the captured run before the compactor moves it');
reset role;
select is((select folded >= 0 from meshhook_stats_compact(1000)), true, 'a compactor round');
select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', :user_a));
select is((select count(*)::int from execution_time_statistics), 3, 'its owner sees the captured run');
select is((select count(*)::int from execution_time_captured_runs), 0, 'moved, not copied');
reset role;

select * from finish();
rollback;
