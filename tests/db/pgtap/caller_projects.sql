-- meshhook_stats_caller_projects() (0015): the claim the daemon writes is read without a query,
-- any other claim through 0007's query, and both give what 0007's function gave.
begin;
select plan(13);
\ir _tenants.psql

create function pg_temp.projects_of(claims jsonb) returns uuid[]
    language plpgsql
as $$
begin
    perform pg_temp.act_as('meshhook_stats_reader', claims);
    return meshhook_stats_caller_projects();
end
$$;

select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids', jsonb_build_array(:project_a, :project_b))),
          array[:project_a::uuid, :project_b::uuid], 'two canonical uuids, in order');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids', jsonb_build_array(upper(:project_a)))),
          array[:project_a::uuid], 'an upper-case uuid counts, as in 0007');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids',
              jsonb_build_array('xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx', :project_b))),
          array[:project_b::uuid], 'a string shaped like a uuid but not hex is dropped, not an error');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids',
              jsonb_build_array('aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaa', :project_b))),
          array[:project_b::uuid], 'a uuid one digit short is dropped');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids',
              jsonb_build_array(:project_a || ',' || :project_b))),
          '{}'::uuid[], 'two uuids in one string are not two projects');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids', jsonb_build_array(5, :project_a))),
          array[:project_a::uuid], 'a number among the uuids is dropped');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids', :project_a)),
          '{}'::uuid[], 'a uuid that is not in a list counts for nothing');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('meshhook_project_ids', jsonb_build_array())),
          '{}'::uuid[], 'an empty list: no project');
reset role;
select is(pg_temp.projects_of(jsonb_build_object('sub', 'x')), '{}'::uuid[], 'no claim: no project');
reset role;
select is(pg_temp.projects_of(null), '{}'::uuid[], 'anonymous: no project');
reset role;

-- The policies ask this function: the rows follow the claim.
select pg_temp.act_as('meshhook_stats_reader',
                      jsonb_build_object('meshhook_project_ids', jsonb_build_array(:project_b)));
select is((select count(*)::int from execution_time_statistics), 3, 'B''s claim sees B''s 3 runs');
select results_eq('select * from meshhook_stats_caller_project_ids()', array[:project_b::uuid],
                  'meshhook_stats_caller_project_ids() lists the same projects');
reset role;
select ok((select bool_and(pg_get_expr(polqual, polrelid) like '%meshhook_stats_caller_projects()%')
           from pg_policy where polname = 'meshhook_stats_caller_projects'),
          'every caller policy asks meshhook_stats_caller_projects()');

select * from finish();
rollback;
