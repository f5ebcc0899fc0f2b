-- 0018: every compacted execution-time rollup keeps its sketch's text beside the sketch.
--
-- The statistics endpoint reads the sketches of the compacted rollups as text and merges them
-- in the daemon. Printing an int4[] costs about 38 ns an element (array_out calls int4out for
-- each, checks it for quoting and copies it), and a bucket is two elements: a request for one
-- tenant's ten workflows over 30 days, by workflow, reads about 250 rollup rows holding some
-- 12,000 buckets, and `perf` put 28 % of Postgres's time for it in array_out. Each row is read
-- far more often than it is written, so the text is now made when the row is written: a stored
-- generated column, which Postgres computes from the row on every insert and update (the
-- compactor's folds, retention's rebuilds, a fill by hand), so it cannot disagree with the
-- sketch, and which a read sends as it is (a copy). The pending deltas are few and still
-- printed when read. Measured in docs/benchmarks.md.
--
-- With the text a busy key's row passes 2 kB, where Postgres starts compressing (pglz) the
-- widest values of a row at every write and decompressing them at every read: the compactor,
-- which rewrites the current hour's, day's and week's rows of every key it folds, spent twice
-- as long a round once sketches were that wide (bench/compactor/fold.sh). So rows stay as they
-- are up to nearly a page (toast_tuple_target 8160 bytes: a sketch of about 500 buckets and its
-- text); wider ones are still compressed.
--
-- Adding a stored column rewrites each table under an ACCESS EXCLUSIVE lock, so reads of the
-- rollups and the compactor wait for it (about 35 s for the 5 million rollup rows of 10 million
-- runs on 2 cores), and the tables grow by about the size of their sketches: migrate at a quiet
-- moment.

-- The text of a sketch, exactly as sketch::text prints it ({{bucket,count},...}). int4 and
-- array output do not depend on any setting, so the function is immutable, as a generated
-- column needs (array_out is declared stable only because it serves every element type).
create function meshhook_stats_sketch_text(sketch int4[]) returns text
    language sql immutable strict parallel safe
    return sketch::text;

comment on function meshhook_stats_sketch_text(int4[]) is
    'meshhook-stats: a rollup sketch as text, as sketch::text prints it (the sketch_text columns)';

do $$
declare
    t text;
begin
    foreach t in array array['execution_time_rollups_compacted',
                             'execution_time_rollups_daily_compacted',
                             'execution_time_rollups_hourly_all_compacted',
                             'execution_time_rollups_daily_all_compacted',
                             'execution_time_rollups_weekly_all_compacted'] loop
        execute format('alter table %I set (toast_tuple_target = 8160)', t);
        execute format('alter table %I add column sketch_text text not null '
                       'generated always as (meshhook_stats_sketch_text(sketch)) stored', t);
        execute format('comment on column %I.sketch_text is %L', t,
                       'sketch as text, made by Postgres from sketch on every write; what the '
                       'statistics endpoint reads (meshhook-stats)');
    end loop;
end
$$;
