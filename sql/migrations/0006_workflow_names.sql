-- 0006: workflow names, for people reading the statistics.
--
-- Run events may carry `workflow_name`; the batch writer keeps the latest name of each
-- workflow here, in the same transaction as its runs, and the statistics API returns it
-- beside `workflow_id`. A workflow belongs to one project (MeshHook's
-- workflow_definitions.project_id), so the row carries the tenant and the same row level
-- security as the runs: a caller sees the names of their own projects' workflows only.
create table execution_time_workflows (
    workflow_id uuid        primary key,
    project_id  uuid        not null,
    name        text        not null,
    updated_at  timestamptz not null default now()
);

comment on table execution_time_workflows is
    'The latest workflow_name reported for each workflow (meshhook-stats).';

create index execution_time_workflows_project on execution_time_workflows (project_id);

alter table execution_time_workflows enable row level security;
alter table execution_time_workflows force row level security;
create policy meshhook_stats_caller_projects on execution_time_workflows for select to public
    using (project_id = any (array(select meshhook_stats_caller_project_ids())));
do $$
begin
    execute format('create policy meshhook_stats_owner on execution_time_workflows for all to %I '
                   'using (true) with check (true)', current_user);
end
$$;
grant select on execution_time_workflows to meshhook_stats_reader;
