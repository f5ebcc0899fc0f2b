#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <string_view>
#include <vector>

#include "meshhook/exporter/family.h"
#include "meshhook/exporter/recent_run_ids.h"
#include "meshhook/exporter/registry.h"

namespace meshhook::exporter {

/// One finished workflow run, as the instruments see it.
struct RunObservation {
  std::string_view tenant;    // MeshHook project id
  std::string_view workflow;  // workflow id
  std::string_view status;    // succeeded, failed, canceled, timeout
  double duration_seconds = 0;
  std::string_view run_id;         // becomes the bucket's exemplar when non-empty
  std::string_view workflow_name;  // sets meshhook_workflow_info when non-empty
  double finished_at_seconds = 0;  // Unix time of the exemplar; 0 = none
};

struct RunMetricsOptions {
  std::vector<double> buckets = default_buckets();
  std::size_t max_series = 10000;  // per family
  std::size_t max_label_value_length = 128;
  bool exemplars = true;
  /// A run whose id was observed among the last duplicate_window_runs ids and within
  /// duplicate_window_age is a retry: not counted again. 0 runs = every run is counted.
  std::size_t duplicate_window_runs = 1000000;
  std::chrono::seconds duplicate_window_age{86400};

  /// 10 ms .. 1 h, roughly 1-2.5-5 per decade: see docs/metrics.md.
  static std::vector<double> default_buckets();
};

/// The run-duration instruments: meshhook_workflow_run_duration_seconds,
/// meshhook_workflow_runs_total and meshhook_workflow_info, and
/// meshhook_stats_duplicate_runs_total for the retries it recognised. Thread-safe.
class RunMetrics {
 public:
  RunMetrics(Registry& registry, RunMetricsOptions options);
  void observe(const RunObservation& run) noexcept;

 private:
  RunMetricsOptions options_;
  HistogramFamily& duration_;
  CounterFamily& runs_;
  GaugeFamily& info_;
  Counter& duplicates_;
  std::unique_ptr<RecentRunIds> recent_;  // null: no duplicate window
};

}  // namespace meshhook::exporter
