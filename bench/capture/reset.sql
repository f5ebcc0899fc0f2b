-- Between runs: every run back to running, captured rows and rollups gone.
update workflow_runs set status = 'running', finished_at = null where status <> 'running';
truncate execution_time_statistics;
truncate execution_time_captured_runs;
vacuum analyze workflow_runs, execution_time_captured_runs;
