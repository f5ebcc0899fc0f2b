-- Removes the MeshHook capture trigger and the functions of the capture; the rows already
-- recorded stay.
do $$
begin
    if to_regclass('workflow_runs') is not null then
        drop trigger if exists meshhook_stats_capture_run on workflow_runs;
        drop trigger if exists meshhook_stats_capture_run_insert on workflow_runs;
    end if;
end
$$;
drop function if exists meshhook_stats_capture_run();
drop function if exists meshhook_stats_record_run_details(uuid[], text);
drop function if exists meshhook_stats_insert_run_details(uuid[], text);
