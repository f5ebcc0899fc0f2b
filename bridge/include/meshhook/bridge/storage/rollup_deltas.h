#pragma once
// The rollup deltas of a batch of runs, computed in the daemon exactly as the statement-level
// trigger meshhook_stats_rollups_append computes them in Postgres, so that the batch writer
// can append them itself (migration 0017) and spare the server the grouping. Plain values and
// free functions; thread-safe.

#include <cstdint>
#include <optional>
#include <utility>
#include <vector>

#include "meshhook/bridge/common/uuid.h"
#include "meshhook/bridge/storage/run_event.h"

namespace meshhook::bridge {

/// The sketch bucket of an execution time v > 0 ms, with the float8 operations of the SQL
/// function meshhook_stats_sketch_index: ceil(ln(v) / ln(1.01 / 0.99)).
int sketch_index(std::int64_t value_ms) noexcept;

/// Execution times around every bucket boundary up to max_ms (the integers next to
/// gamma^k): the only values where two implementations of ln could disagree on the bucket.
std::vector<std::int64_t> sketch_index_boundary_values(std::int64_t max_ms);

/// execution_time_ms as the writer stores it: microseconds rounded half up, negative
/// durations 0.
std::int64_t stored_execution_time_ms(const RunEvent& e) noexcept;

/// One row of execution_time_rollup_deltas.
struct RollupDelta {
  Uuid project_id;
  Uuid workflow_id;
  RunStatus status = RunStatus::succeeded;
  std::int64_t bucket_start_us = 0;  // the UTC hour of finished_at, Unix microseconds
  std::uint64_t run_count = 0;
  std::uint64_t sum_ms = 0;
  std::int64_t min_ms = 0;
  std::int64_t max_ms = 0;
  std::uint64_t zero_count = 0;
  std::vector<std::pair<int, std::int32_t>> sketch;  // [index, count], increasing index
};

/// The deltas of events[begin, end), keyed and summed as the trigger groups the rows of one
/// statement: (project_id, workflow_id, status, UTC hour of finished_at). Empty optional when
/// a sum or a bucket count would overflow its column (the trigger then does the work).
std::optional<std::vector<RollupDelta>> rollup_deltas(const std::vector<RunEvent>& events,
                                                      std::size_t begin, std::size_t end);

}  // namespace meshhook::bridge
