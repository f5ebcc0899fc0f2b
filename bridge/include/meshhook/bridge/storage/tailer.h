#pragma once
// Follows rows the MeshHook capture trigger adds to execution_time_statistics and observes
// them in the run-duration histograms; a settle delay later it records those runs' queue waits
// and steps from MeshHook's job_tracking and workflow_events (meshhook_stats_record_run_details)
// and observes them too. One replica tails at a time: the one holding a Postgres advisory lock
// on its dedicated connection; when that session ends, another replica's next attempt takes
// the lock and resumes from the shared cursors.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "meshhook/exporter/run_metrics.h"

namespace meshhook::bridge {

struct TailerOptions {
  std::string database_url;
  std::chrono::milliseconds interval{1000};  // poll period, and lock retry period
  std::size_t batch_rows = 5000;
  /// A captured run's queue wait and steps are read this long after the tailer first saw its
  /// row (its finish committed), so that a last step event or job row committed just after the
  /// finish is counted: docs/meshhook.md.
  std::chrono::milliseconds details_delay{5000};
  std::size_t details_batch_runs = 1000;  // runs per call of the details function
};

/// Thread-safe. On first start against a database (no cursor yet) it begins at the newest
/// row: history is for backfill and SQL, the live metrics start now.
class Tailer {
 public:
  Tailer(TailerOptions options, exporter::RunMetrics& metrics);
  ~Tailer();
  Tailer(const Tailer&) = delete;
  Tailer& operator=(const Tailer&) = delete;

  void start();
  void stop();  // releases the lock (by closing the session)

  /// This replica holds the lock and is tailing.
  bool active() const noexcept { return active_.load(); }
  std::uint64_t rows_observed() const noexcept { return observed_.load(); }
  /// The last id this replica has observed up to (0 before it first became active).
  std::int64_t position() const noexcept { return position_.load(); }
  /// Queue and step rows this replica has recorded and observed.
  std::uint64_t details_observed() const noexcept { return details_observed_.load(); }
  /// The last id whose run details are recorded (they follow position()).
  std::int64_t details_position() const noexcept { return details_position_.load(); }

  /// pg_try_advisory_lock key the active tailer holds.
  static constexpr long long kLockKey = 0x6d6873746169LL;  // "mhstai"

 private:
  void run();
  bool poll_once(void* conn);     // true when it observed a full batch (poll again at once)
  bool poll_details(void* conn);  // true when it recorded a full batch
  bool sleep_for(std::chrono::milliseconds d);

  TailerOptions options_;
  exporter::RunMetrics& metrics_;
  std::atomic<bool> active_{false};
  std::atomic<std::uint64_t> observed_{0};
  std::atomic<std::int64_t> position_{0};
  // Tailer thread only: the visibility bookkeeping of poll_once.
  struct Pending {
    std::int64_t bound;  // the highest id handed out before the snapshot
    long long horizon;   // a transaction id taken after reading it: final once all below end
  };
  std::optional<Pending> pending_;
  std::unordered_set<std::int64_t> seen_above_;  // observed ids above the cursor
  static constexpr std::size_t kMaxSeenAbove = 100000;
  // When this replica first saw each captured row still waiting for its details (at most one
  // batch: the rows past the first unsettled one are not read).
  std::unordered_map<std::int64_t, std::chrono::steady_clock::time_point> details_seen_;
  std::atomic<std::uint64_t> details_observed_{0};
  std::atomic<std::int64_t> details_position_{0};
  bool details_warned_ = false;  // logged once until details are recorded again

  std::mutex mutex_;
  std::condition_variable cv_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace meshhook::bridge
