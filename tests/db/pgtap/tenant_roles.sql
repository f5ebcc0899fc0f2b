-- Who decides what a direct SQL reader sees: the claims in request.jwt.claims count only in the
-- daemon's own session (its login owns the tables); any other login sees the projects of its
-- tenant roles (meshhook_stats_grant_tenant, `meshhook-stats grant-tenant`), whatever it sets.
-- The roles are created in this transaction and rolled back with it.
begin;
select plan(23);
\ir _tenants.psql

create role mh_tr_grafana login;             -- a login given the reader role, as 0004's docs said
grant meshhook_stats_reader to mh_tr_grafana;
create role mh_tr_grafana_a login;           -- a login in tenant A's role
create role mh_tr_nobody login;              -- a login with no grant at all
create role mh_tr_super superuser nologin;

select lives_ok($$select meshhook_stats_grant_tenant('mh_tr_tenant_a', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$,
                'grant_tenant creates a missing tenant role');
select ok((select not rolcanlogin and not rolsuper and not rolbypassrls from pg_roles
           where rolname = 'mh_tr_tenant_a'), 'the tenant role it creates is NOLOGIN and bypasses nothing');
select lives_ok($$select meshhook_stats_grant_tenant('mh_tr_tenant_a', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$,
                'granting again changes nothing');
select is((select count(*)::int from meshhook_stats_tenant_roles), 1, 'one grant recorded');
grant mh_tr_tenant_a to mh_tr_grafana_a;
select throws_ok($$select meshhook_stats_grant_tenant('mh_tr_super', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$,
                 '22023', null, 'a superuser role is refused: it would see every tenant');
select throws_ok($$select meshhook_stats_grant_tenant('meshhook_stats_reader', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa')$$,
                 '22023', null, 'meshhook-stats'' own roles are refused');
select throws_ok($$select meshhook_stats_grant_tenant('mh_tr_tenant_a', null)$$,
                 '22023', null, 'a missing project is refused');

-- pgTAP's bookkeeping, opened to the logins under test.
do $$
declare
    r record;
begin
    for r in select c.oid::regclass as name from pg_class c
             where c.relnamespace = pg_my_temp_schema() and c.relkind in ('r', 'S') loop
        execute format('grant all on %s to mh_tr_grafana, mh_tr_grafana_a, mh_tr_nobody', r.name);
    end loop;
end
$$;

-- A reader login that claims tenant B, in every way the daemon would.
set session authorization mh_tr_grafana;
select set_config('role', 'meshhook_stats_reader', false);
select set_config('request.jwt.claims', json_build_object('sub', 'x', 'meshhook_project_ids', json_build_array(:project_b))::text, false);
select is((select count(*)::int from execution_time_statistics), 0, 'a reader login claiming B sees none of B''s runs');
select is((select count(*)::int from execution_time_rollups), 0, 'nor hourly rollups');
select is((select count(*)::int from execution_time_rollups_daily), 0, 'nor daily rollups');
select is((select count(*)::int from execution_time_workflows), 0, 'nor workflow names');
select is_empty('select * from meshhook_stats_caller_project_ids()', 'its claims give it no project');
select throws_ok('select * from meshhook_stats_tenant_roles', '42501', null, 'it cannot read the tenant roles');
select throws_ok($$select meshhook_stats_grant_tenant('mh_tr_grafana', 'bbbbbbbb-bbbb-4bbb-8bbb-bbbbbbbbbbbb')$$,
                 '42501', null, 'nor grant itself a tenant');
reset role;
reset session authorization;

-- A login in tenant A's role: A alone, even claiming B.
set session authorization mh_tr_grafana_a;
select set_config('request.jwt.claims', json_build_object('meshhook_project_ids', json_build_array(:project_b))::text, false);
select is((select count(*)::int from execution_time_statistics), 2, 'tenant A''s login sees A''s 2 runs');
select is((select count(*)::int from execution_time_statistics where project_id <> :project_a), 0, 'and no other project''s');
select is((select sum(run_count)::int from execution_time_rollups_daily), 2, 'its daily rollups count A''s 2 runs');
select results_eq('select name from execution_time_workflows', array['A''s workflow'], 'it sees A''s workflow name alone');
reset session authorization;

-- A login with no tenant role: no grant, nothing.
set session authorization mh_tr_nobody;
select throws_ok('select count(*) from execution_time_statistics', '42501', null, 'a login without a tenant role cannot read');
reset session authorization;

-- The daemon's session (the owner's login) still reads by the claims.
select pg_temp.act_as('meshhook_stats_reader', jsonb_build_object('sub', 'x', 'meshhook_project_ids', jsonb_build_array(:project_b)));
select is((select count(*)::int from execution_time_statistics), 3, 'the daemon''s session reads B''s 3 runs by its claims');
reset role;

-- Revoking: the grant goes, and with the last project the role's SELECT.
select ok(meshhook_stats_revoke_tenant('mh_tr_tenant_a', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'), 'revoke_tenant removes the grant');
select ok(not meshhook_stats_revoke_tenant('mh_tr_tenant_a', 'aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa'), 'and says so when there is none');
select ok(not has_table_privilege('mh_tr_tenant_a', 'execution_time_statistics', 'select'), 'the role has no SELECT left');

select * from finish();
rollback;
