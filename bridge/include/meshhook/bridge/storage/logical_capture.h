#pragma once
// The logical capture (capture.mode: logical): MeshHook's workflow_runs has no trigger; the
// finished runs are read from a logical replication slot (pgoutput, publication
// meshhook_stats_capture on workflow_runs only: sql/integrations/meshhook/capture_logical.sql)
// over the streaming replication protocol, and stored in execution_time_statistics (source
// 'capture', where the tailer finds them) off MeshHook's transactions.
//
// Exactly once: a batch is stored in one transaction (meshhook_stats_store_captured_runs, on
// conflict (run_id) do nothing) and only after its commit is the batch's last LSN confirmed to
// the slot. A crash in between re-delivers the batch, and the runs already stored are kept
// once. One replica reads at a time (a session advisory lock; the slot takes one reader anyway).
//
// Streaming rather than pg_logical_slot_peek_changes() in SQL: each SQL call decodes again
// from the slot's restart_lsn, which moves only at the server's running-transactions records
// (about every 15 s), so a reader polling every few hundred milliseconds would decode the same
// WAL many times over (docs/benchmarks.md). The walsender decodes each record once.
//
// Read once a round (capture.interval_ms), not as it comes: between rounds the stream stays
// unread in the sockets (they hold seconds of it), so the daemon is woken once a round rather
// than at every commit of the server (18 µs of its CPU a run when it read every message as it
// came, about 4 µs read in bulk: docs/benchmarks.md). The WAL sender still sends each
// transaction as it commits, whether or not the reader reads.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "meshhook/exporter/registry.h"

namespace meshhook::bridge {

struct LogicalCaptureOptions {
  std::string database_url;     // where runs are stored; also holds the advisory lock
  std::string replication_url;  // the slot's connection (a role with REPLICATION); "" = the above
  std::string slot = "meshhook_stats_capture";
  std::string publication = "meshhook_stats_capture";
  std::chrono::milliseconds interval{1000};     // a round: read what was sent, store, confirm
  std::size_t batch_runs = 5000;                // the most runs one store transaction takes
  std::chrono::milliseconds lag_refresh{5000};  // how often the slot's lag is read
  std::chrono::milliseconds retry{5000};        // pause after an error
};

/// What one read of the slot did.
struct LogicalCaptureRound {
  std::size_t delivered = 0;  // finished runs the slot delivered (a run updated again counts again)
  std::size_t stored = 0;     // rows new in execution_time_statistics
  std::size_t rejected = 0;   // runs Postgres refused: now in execution_time_rejected_runs
};

/// Thread-safe. Registers meshhook_stats_capture_*.
class LogicalCapture {
 public:
  LogicalCapture(LogicalCaptureOptions options, exporter::Registry& registry);
  ~LogicalCapture();
  LogicalCapture(const LogicalCapture&) = delete;
  LogicalCapture& operator=(const LogicalCapture&) = delete;

  void start();
  void stop();
  bool active() const noexcept { return active_.load(); }
  std::uint64_t runs_stored() const noexcept { return stored_.load(); }

  /// For tests and tools: reads everything the slot holds up to the server's WAL position at
  /// the call, stores it, and confirms it to the slot when `confirm` (false: as if the daemon
  /// died between its commit and the confirmation). Throws what the loop would log.
  static LogicalCaptureRound capture_once(const LogicalCaptureOptions& options,
                                          bool confirm = true);

  static constexpr long long kLockKey = 0x6d68736c6f67LL;  // "mhslog"

 private:
  struct Metrics;
  void run();
  bool sleep_for(std::chrono::milliseconds d);
  void account(const LogicalCaptureRound& round, std::uint64_t confirmed);
  /// Sleeps until `until` (or stop), calling feedback every kFeedbackEvery meanwhile.
  void pause_until(std::chrono::steady_clock::time_point until,
                   const std::function<void()>& feedback);

  static constexpr std::chrono::milliseconds kFeedbackEvery{1000};

  LogicalCaptureOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::atomic<bool> active_{false};
  std::atomic<std::uint64_t> stored_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meshhook::bridge
