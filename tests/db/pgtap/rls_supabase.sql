-- On Supabase with MeshHook: the platform's auth.uid(), auth.jwt() and user_project_ids() are
-- kept, and the policies use them.
-- needs: meshhook_schema
begin;
select plan(5);
\ir _tenants.psql
insert into projects (id, owner, name)
values (:project_a, '11111111-1111-4111-8111-111111111111', 'A'),
       (:project_b, '22222222-2222-4222-8222-222222222222', 'B');

select ok(pg_get_functiondef('auth.uid()'::regprocedure) like '%/* platform */%', 'auth.uid() is the platform''s');
select ok(pg_get_functiondef('auth.jwt()'::regprocedure) like '%/* platform */%', 'auth.jwt() is the platform''s');
select ok(pg_get_functiondef('user_project_ids()'::regprocedure) like '%/* platform */%', 'user_project_ids() is MeshHook''s');
select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', '22222222-2222-4222-8222-222222222222'));
select is((select count(*)::int from execution_time_statistics), 3, 'the owner of B sees B''s 3 runs through them');
select is((select count(*)::int from execution_time_statistics where project_id = :project_a), 0, 'and none of A''s');
reset role;

select * from finish();
rollback;
