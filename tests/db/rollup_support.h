#pragma once
// Checks the rollup tests share: a rollup table or view against a recount from the rows.

#include <string>

#include "db_support.h"
#include "meshhook/bridge/storage/compactor.h"

namespace meshhook::testing {

// Rows that differ between a rollup table (or view) and the rows grouped by its bucket (and
// by status, unless the level merges the statuses).
enum class Statuses { kEach, kMerged };
inline long long mismatches(const TestDatabase& db, const std::string& table,
                            const std::string& unit, Statuses statuses = Statuses::kEach) {
  const std::string status = statuses == Statuses::kEach ? "status" : "''::text";
  const std::string rows =
      "select project_id, workflow_id, s0, b, sum(n)::bigint, sum(s)::numeric, min(lo),"
      " max(hi), coalesce(sum(n) filter (where i is null), 0)::bigint,"
      " coalesce(array_agg(array[i, n::int4] order by i) filter (where i is not null),"
      " '{}')::text"
      " from (select project_id, workflow_id, " +
      status + " as s0, date_trunc('" + unit +
      "', finished_at, 'UTC') as b,"
      "       meshhook_stats_sketch_index(execution_time_ms) as i, count(*) as n,"
      "       sum(execution_time_ms) as s, min(execution_time_ms) as lo,"
      "       max(execution_time_ms) as hi"
      "       from execution_time_statistics group by 1, 2, 3, 4, 5) x"
      " group by 1, 2, 3, 4";
  const std::string rollups = "select project_id, workflow_id, " + status +
                              ", bucket_start, run_count, sum_ms::numeric, min_ms,"
                              " max_ms, zero_count, sketch::text from " +
                              table;
  return db.scalar("select (select count(*) from (" + rows + " except " + rollups +
                   ") a) + (select count(*) from (" + rollups + " except " + rows + ") b)");
}

// Every level equals the rows: the views (compacted plus pending, with deltas still pending),
// then, once the compactor has folded everything in rounds of up to `round` deltas, the
// compacted tables alone, and what the endpoint reads of each sketch (0018) is its text.
inline void check_every_level_equals_rows(const TestDatabase& db, int round) {
  CHECK(mismatches(db, "execution_time_rollups", "hour") == 0);
  CHECK(mismatches(db, "execution_time_rollups_daily", "day") == 0);
  CHECK(mismatches(db, "execution_time_rollups_hourly_all", "hour", Statuses::kMerged) == 0);
  CHECK(mismatches(db, "execution_time_rollups_daily_all", "day", Statuses::kMerged) == 0);
  CHECK(mismatches(db, "execution_time_rollups_weekly_all", "week", Statuses::kMerged) == 0);
  CHECK(db.scalar("select count(*) from execution_time_rollup_deltas") > 0);
  for (int i = 0; i < 100 && meshhook::bridge::Compactor::compact_once(db.url(), round) > 0; ++i) {
  }
  CHECK(db.scalar("select count(*) from execution_time_rollup_deltas") == 0);
  CHECK(mismatches(db, "execution_time_rollups_compacted", "hour") == 0);
  CHECK(mismatches(db, "execution_time_rollups_daily_compacted", "day") == 0);
  CHECK(mismatches(db, "execution_time_rollups_hourly_all_compacted", "hour", Statuses::kMerged) ==
        0);
  CHECK(mismatches(db, "execution_time_rollups_daily_all_compacted", "day", Statuses::kMerged) ==
        0);
  CHECK(mismatches(db, "execution_time_rollups_weekly_all_compacted", "week", Statuses::kMerged) ==
        0);
  for (const std::string table :
       {"execution_time_rollups_compacted", "execution_time_rollups_daily_compacted",
        "execution_time_rollups_hourly_all_compacted", "execution_time_rollups_daily_all_compacted",
        "execution_time_rollups_weekly_all_compacted"}) {
    INFO(table);
    CHECK(db.scalar("select count(*) from " + table + " where sketch_text <> sketch::text") == 0);
  }
}

}  // namespace meshhook::testing
