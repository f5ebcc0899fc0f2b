#pragma once
// Drains the spool into execution_time_statistics, one transaction per batch, then
// acknowledges the spool. A batch is COPYed (binary) straight into the table when row level
// security does not apply to the login, else into a temporary table and inserted from there.
// If one of its runs is already stored (a replay after a crash between the commit and the
// acknowledgement, a producer's retry) the unique run_id refuses the whole batch, and it is
// written again skipping stored runs (INSERT ... ON CONFLICT (run_id) DO NOTHING): every
// spooled run is stored exactly once. On the direct and staged paths (every run of the batch
// or none) the writer appends the batch's rollup deltas itself, in the same transaction, and
// the statement-level trigger skips that insert (migration 0017); on the replay path the
// trigger appends them, since only the server knows which runs went in.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <pqxx/connection>
#include <pqxx/except>
#include <pqxx/transaction_base>
#include <string>
#include <thread>

#include "meshhook/bridge/storage/rollup_deltas.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/registry.h"

namespace meshhook::bridge {
namespace detail {
class CopyConnection;
}

struct BatchWriterOptions {
  std::string database_url;
  std::size_t batch_rows = 20000;                  // write when this many rows are waiting
  std::chrono::milliseconds batch_interval{200};   // or when the oldest waited this long
  std::chrono::milliseconds initial_backoff{100};  // first retry after a failed write
  std::chrono::milliseconds max_backoff{10000};    // cap of the doubling backoff (jittered)
};

/// One thread, one connection. Registers its self-metrics in the registry at construction
/// (meshhook_stats_spool_*, meshhook_stats_write_*, meshhook_stats_database_up); the
/// registry must not already hold them. Public methods are thread-safe.
class BatchWriter {
 public:
  BatchWriter(Spool& spool, BatchWriterOptions options, exporter::Registry& registry);
  ~BatchWriter();
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  void start();
  /// Writes what the spool holds for at most drain (less if the database is down), then
  /// stops. What is left stays in the spool for the next start.
  void stop(std::chrono::milliseconds drain = std::chrono::seconds(5));

  /// The last connection attempt or write succeeded and the schema is current.
  bool database_up() const noexcept { return database_up_.load(); }
  /// Why the database is not up ("" when it is).
  std::string last_error() const;
  /// Rows inserted (not counting replays skipped by run_id).
  std::uint64_t rows_written() const noexcept { return rows_written_.load(); }
  /// Batches (or, on the replay path, parts of one) committed by each path: direct (when
  /// the login may COPY into the table), staged (otherwise), replay (after a batch met a
  /// run already stored, until one meets none).
  std::uint64_t direct_batches() const noexcept { return direct_batches_.load(); }
  std::uint64_t staged_batches() const noexcept { return staged_batches_.load(); }
  std::uint64_t replay_batches() const noexcept { return replay_batches_.load(); }
  /// Batches whose rollup deltas the writer computed and appended itself (the others' came
  /// from the trigger).
  std::uint64_t client_delta_batches() const noexcept { return client_delta_batches_.load(); }

 private:
  struct Metrics;
  void run();
  void connect();
  /// Writes events[begin, end); returns rows inserted. Throws on failure.
  std::uint64_t write(const std::vector<RunEvent>& events);
  enum class WritePath {
    direct,  // binary COPY into execution_time_statistics
    staged,  // binary COPY into a temporary table, then INSERT ... SELECT
    replay,  // the same, skipping runs already stored (ON CONFLICT DO NOTHING)
  };
  /// Writes events[begin, end) in one transaction; returns rows inserted. Throws on failure
  /// (the direct and staged paths with a data error when a run is already stored).
  std::uint64_t write_range(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end,
                            WritePath path);
  /// Appends deltas to execution_time_rollup_deltas in tx (the direct path COPYs them in,
  /// the staged path through a temporary table).
  void append_deltas(pqxx::transaction_base& tx, const std::vector<RollupDelta>& deltas,
                     WritePath path);
  static std::vector<std::size_t> latest_named(const std::vector<RunEvent>& events,
                                               std::size_t begin, std::size_t end);
  void count_path(WritePath path);
  /// Keeps a run Postgres refused in execution_time_rejected_runs and counts it.
  void reject(const RunEvent& e, const pqxx::sql_error& error);
  void update_spool_gauges();
  void set_down(const std::string& error);
  bool sleep_for(std::chrono::milliseconds d);  // false when stop() interrupted it

  Spool& spool_;
  BatchWriterOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<detail::CopyConnection> conn_;
  bool direct_allowed_ = false;  // row level security does not apply to this login
  // This login may append rollup deltas itself (owner of the trigger function, INSERT on the
  // deltas) and the server's sketch index agrees with ours at every bucket boundary.
  bool client_deltas_ = false;
  // After a batch met a run already stored, until a batch meets none.
  bool replaying_ = false;

  std::atomic<bool> database_up_{false};
  std::atomic<std::uint64_t> rows_written_{0};
  std::atomic<std::uint64_t> direct_batches_{0};
  std::atomic<std::uint64_t> staged_batches_{0};
  std::atomic<std::uint64_t> replay_batches_{0};
  std::atomic<std::uint64_t> client_delta_batches_{0};
  mutable std::mutex mutex_;
  std::condition_variable stop_cv_;
  std::string last_error_ = "not connected yet";
  bool stopping_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::thread thread_;
};

}  // namespace meshhook::bridge
