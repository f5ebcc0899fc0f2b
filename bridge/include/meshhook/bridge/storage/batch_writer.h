#pragma once
// Drains the spool into execution_time_statistics: COPY into a temporary table, then one
// INSERT ... SELECT ... ON CONFLICT (run_id) DO NOTHING per batch, then the spool is
// acknowledged. A crash between the commit and the acknowledgement replays the batch, whose
// rows are then skipped by run_id: every spooled run is stored exactly once.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <pqxx/connection>
#include <pqxx/except>
#include <string>
#include <thread>

#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/registry.h"

namespace meshhook::bridge {

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

 private:
  struct Metrics;
  void run();
  void connect();
  /// Writes events[begin, end); returns rows inserted. Throws on failure.
  std::uint64_t write(const std::vector<RunEvent>& events);
  std::uint64_t write_range(const std::vector<RunEvent>& events, std::size_t begin,
                            std::size_t end);
  /// Keeps a run Postgres refused in execution_time_rejected_runs and counts it.
  void reject(const RunEvent& e, const pqxx::sql_error& error);
  void update_spool_gauges();
  void set_down(const std::string& error);
  bool sleep_for(std::chrono::milliseconds d);  // false when stop() interrupted it

  Spool& spool_;
  BatchWriterOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::unique_ptr<pqxx::connection> conn_;

  std::atomic<bool> database_up_{false};
  std::atomic<std::uint64_t> rows_written_{0};
  mutable std::mutex mutex_;
  std::condition_variable stop_cv_;
  std::string last_error_ = "not connected yet";
  bool stopping_ = false;
  std::chrono::steady_clock::time_point drain_deadline_{};
  std::thread thread_;
};

}  // namespace meshhook::bridge
