#pragma once
// Folds the rollup deltas that inserts append (execution_time_rollup_deltas) into the
// compacted hourly and daily rollups, off every write path: each round is one short
// transaction of its own calling meshhook_stats_compact(), which folds and deletes the deltas
// together, so a crash at any point loses and doubles nothing. One replica folds at a time
// (a transaction-level advisory lock inside that function); the others find it taken and wait.
// Also keeps the dead-letter gauge (execution_time_rejected_runs by source) fresh.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "meshhook/exporter/registry.h"

namespace meshhook::bridge {

struct CompactorOptions {
  std::string database_url;
  std::chrono::milliseconds interval{1000};  // pause after a round that found little to fold
  int batch_deltas = 20000;                  // deltas folded per transaction at most
  std::chrono::milliseconds rejected_refresh{10000};  // how often the dead-letter gauge is read
};

/// Thread-safe. Registers meshhook_stats_compaction_* and meshhook_stats_rejected_runs.
class Compactor {
 public:
  Compactor(CompactorOptions options, exporter::Registry& registry);
  ~Compactor();
  Compactor(const Compactor&) = delete;
  Compactor& operator=(const Compactor&) = delete;

  void start();
  void stop();

  /// One round on the caller's connection URL, for tests and tools: folds up to max_deltas;
  /// returns how many it folded, or -1 when another compactor holds the lock.
  static int compact_once(const std::string& database_url, int max_deltas);

  std::uint64_t deltas_folded() const noexcept { return folded_.load(); }

 private:
  struct Metrics;
  void run();
  bool sleep_for(std::chrono::milliseconds d);

  CompactorOptions options_;
  std::unique_ptr<Metrics> metrics_;
  std::atomic<std::uint64_t> folded_{0};
  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meshhook::bridge
