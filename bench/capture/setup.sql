-- MeshHook-shaped data for bench/capture/run.sh: 10 projects, 20 workflows, 400,000 runs in
-- `running` (uuid ids), the schema of tests/fixtures/meshhook_schema.sql.
insert into projects (owner, name)
select gen_random_uuid(), 'project ' || p from generate_series(1, 10) p;
insert into workflow_definitions (project_id, slug, name)
select p.id, 'w' || w, 'workflow ' || w
from (select id, row_number() over (order by id) as k from projects) p, generate_series(1, 2) w;
create table bench_run_ids (k integer primary key, id uuid not null);
with d as (select id, project_id, row_number() over (order by id) as k from workflow_definitions),
ins as (
    insert into workflow_runs (project_id, workflow_id, started_at)
    select d.project_id, d.id, now() - random() * interval '1 hour'
    from generate_series(1, 400000) i join d on d.k = 1 + i % 20
    returning id
)
insert into bench_run_ids select row_number() over (), id from ins;
analyze;
