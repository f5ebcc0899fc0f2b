#pragma once
// Imports finished runs from MeshHook's workflow_runs into execution_time_statistics.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace meshhook::bridge {

struct BackfillProgress {
  std::uint64_t rows_total = 0;     // finished runs in the range left to scan at the start
  std::uint64_t rows_scanned = 0;   // of those, read so far
  std::uint64_t rows_inserted = 0;  // new rows (already-stored runs are skipped)
  std::int64_t position_us = 0;     // finished_at reached, Unix microseconds
  bool resumed = false;             // continued from a previous, interrupted backfill
};

struct BackfillOptions {
  std::size_t chunk_rows = 10000;  // rows per transaction
};

/// Imports runs with status succeeded/failed/canceled and finished_at in [since_us, until_us)
/// (until: now when absent), in chunks ordered by (finished_at, id), one transaction each.
/// Idempotent (ON CONFLICT (run_id) DO NOTHING) and resumable: the position is saved with
/// every chunk in meshhook_stats_cursors, and a run with the same since (and until) continues
/// from it. progress is called after every chunk. Rows get source = 'backfill'.
/// Throws std::runtime_error when workflow_runs is missing or the schema is not current;
/// pqxx exceptions on database errors (committed chunks stay).
std::uint64_t backfill(const std::string& url, std::int64_t since_us,
                       std::optional<std::int64_t> until_us,
                       const std::function<void(const BackfillProgress&)>& progress = {},
                       BackfillOptions options = {});

}  // namespace meshhook::bridge
