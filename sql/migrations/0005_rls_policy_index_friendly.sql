-- 0005: the read policies of 0004, written so that Postgres can use an index for them.
--
-- 0004 said `project_id in (select meshhook_stats_caller_project_ids())`. Row level security
-- quals are not pulled up into joins, so that became a hashed subplan: a filter applied to
-- every row of the range, of every tenant, before the caller's few were kept (one tenant's
-- 24 days of daily rollups: a sequential scan of 313,947 rows, 240 ms).
-- `project_id = any (array(select ...))` computes the caller's projects once (an InitPlan)
-- and compares against that array, which is an index condition on (project_id, bucket_start)
-- and (project_id, finished_at): the same query reads 843 rows in 14 ms. Same rows visible.
do $$
declare
    t text;
begin
    foreach t in array array['execution_time_statistics', 'execution_time_rollups',
                             'execution_time_rollups_daily'] loop
        execute format('alter policy meshhook_stats_caller_projects on %I '
                       'using (project_id = any (array(select meshhook_stats_caller_project_ids())))', t);
    end loop;
end
$$;
