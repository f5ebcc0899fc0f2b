#pragma once
// Everything the daemon needs to keep runs in Postgres, behind one object: the spool (the
// RunSink ingest writes to), the batch writer, the MeshHook tailer, the rollup compactor
// and retention.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "meshhook/bridge/storage/run_sink.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

namespace meshhook::bridge {

class Spool;
class BatchWriter;
class Tailer;
class Compactor;
class LogicalCapture;

/// Mirrors the storage settings of the daemon's config.
struct StorageOptions {
  std::string database_url;
  int database_pool_size = 4;  // reserved for the query side; the writer uses one connection
  std::string spool_dir = "var/spool";
  std::uint64_t spool_max_bytes = 1ull << 30;
  std::uint64_t spool_segment_bytes = 64ull << 20;
  int spool_group_commit_us = 1000;
  std::size_t writer_batch_rows = 20000;
  int writer_batch_interval_ms = 200;
  int writer_max_backoff_ms = 10000;
  int retention_days = 0;  // 0 = keep forever
  bool tail_enabled = false;
  int tail_interval_ms = 1000;
  /// A captured run's queue wait and steps are recorded this long after the tailer saw it.
  int tail_details_delay_ms = 5000;
  /// How long stop() keeps writing what the spool holds before it returns.
  int stop_drain_ms = 5000;
  /// Retention runs this often (and once shortly after start).
  int retention_interval_ms = 10 * 60 * 1000;
  std::size_t retention_batch_rows = 5000;
  /// The compactor folds rollup deltas into the compacted rollups (one replica at a time).
  bool compaction_enabled = true;
  int compaction_interval_ms = 1000;
  int compaction_batch_deltas = 20000;
  /// capture.mode logical: read finished runs from a replication slot (logical_capture.h).
  bool logical_capture = false;
  std::string capture_replication_url;  // "" = database_url
  std::string capture_slot = "meshhook_stats_capture";
  int capture_interval_ms = 200;
  std::size_t capture_batch_runs = 5000;
};

/// Owns the spool, the writer thread, the optional tailer and retention threads.
/// Nothing touches disk, network or the registry until start(), which registers the
/// self-metrics (once: a Storage is started at most once).
/// sink() is thread-safe; start()/stop() are for the owning thread.
class Storage {
 public:
  Storage(StorageOptions options, exporter::Registry& registry, exporter::RunMetrics& metrics);
  ~Storage();  // stop()
  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  /// Opens the spool (recovering it) and starts the threads. When the database is reachable
  /// its schema must be current, else throws std::runtime_error("database schema is at
  /// version N, this build needs M: run `meshhook-stats migrate`"). An unreachable database
  /// is not an error: runs are spooled and written when it comes back. Also throws
  /// std::runtime_error when the spool directory cannot be used.
  void start();
  /// Stops accepting, writes what the spool holds for at most stop_drain_ms, stops the
  /// threads. Idempotent.
  void stop();

  /// Where ingest puts accepted runs: accepted only once they are on disk. Valid after start().
  RunSink& sink();
  /// The database is reachable with a current schema and the spool can write. (The sink
  /// keeps accepting while the database is down, as long as the spool has room.)
  bool ready() const;
  /// One line for /readyz, e.g. "database up; spool 0 runs (0 bytes)" or
  /// "database down: connection refused; spool 1200 runs (100800 bytes), oldest 31.2 s".
  std::string readiness_detail() const;
  bool database_up() const;

  /// For tests and the benchmark.
  Spool& spool();
  BatchWriter& writer();

 private:
  void retention_loop();

  StorageOptions options_;
  exporter::Registry& registry_;
  exporter::RunMetrics& run_metrics_;
  std::unique_ptr<Spool> spool_;
  std::unique_ptr<BatchWriter> writer_;
  std::unique_ptr<Tailer> tailer_;
  std::unique_ptr<Compactor> compactor_;
  std::unique_ptr<LogicalCapture> capture_;
  std::thread retention_;
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  bool started_ = false;
};

/// Deletes runs, queue waits and steps with finished_at older than retention_days, batch_rows
/// at a time, each batch its own short transaction. Returns rows deleted. Used by Storage; callable
/// alone.
std::uint64_t delete_expired(const std::string& url, int retention_days, std::size_t batch_rows,
                             const std::function<bool()>& keep_going = {});

}  // namespace meshhook::bridge
