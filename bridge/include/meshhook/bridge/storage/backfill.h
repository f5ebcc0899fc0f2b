#pragma once
// Imports finished runs from MeshHook's workflow_runs into execution_time_statistics, and
// their queue waits and steps from job_tracking and workflow_events.

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace meshhook::bridge {

/// Backfill runs in two stages: the runs themselves, then their queue waits and steps.
enum class BackfillStage { runs, details };

struct BackfillProgress {
  BackfillStage stage = BackfillStage::runs;
  // runs: finished runs of workflow_runs in the range left to scan at the start; details:
  // stored runs of the range (captured or backfilled) without queue or step rows yet.
  std::uint64_t rows_total = 0;
  std::uint64_t rows_scanned = 0;         // of those, read so far
  std::uint64_t rows_inserted = 0;        // new rows (already-stored runs are skipped)
  std::uint64_t queue_rows_inserted = 0;  // details: of rows_inserted, queue rows
  std::uint64_t step_rows_inserted = 0;   // details: of rows_inserted, step rows
  std::int64_t position_us = 0;           // runs: finished_at reached, Unix microseconds
  bool resumed = false;                   // continued from a previous, interrupted backfill
};

struct BackfillOptions {
  std::size_t chunk_rows = 10000;  // rows per transaction
  /// Rows of execution_time_statistics per details transaction (each run's jobs and events
  /// are read, so smaller than chunk_rows).
  std::size_t details_chunk_rows = 2000;
  /// Runs that finished less than this long ago get their details at a later backfill (their
  /// last events may not be committed yet): the tailer.details_delay_ms rule.
  std::chrono::milliseconds details_delay{5000};
};

/// Imports runs with status succeeded/failed/canceled and finished_at in [since_us, until_us)
/// (until: now when absent), in chunks ordered by (finished_at, id), one transaction each.
/// Idempotent (ON CONFLICT (run_id) DO NOTHING) and resumable: the position is saved with
/// every chunk in meshhook_stats_cursors, and a run with the same since (and until) continues
/// from it. progress is called after every chunk. Rows get source = 'backfill'.
/// Then, where meshhook_stats_record_run_details is installed, records the queue waits and
/// steps of the range's captured and backfilled runs that have none yet, from job_tracking and
/// workflow_events (stage details: in id order, resumable, idempotent the same way).
/// Returns the runs inserted into execution_time_statistics.
/// Throws std::runtime_error when workflow_runs is missing or the schema is not current;
/// pqxx exceptions on database errors (committed chunks stay).
std::uint64_t backfill(const std::string& url, std::int64_t since_us,
                       std::optional<std::int64_t> until_us,
                       const std::function<void(const BackfillProgress&)>& progress = {},
                       BackfillOptions options = {});

}  // namespace meshhook::bridge
