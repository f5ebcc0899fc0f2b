#pragma once

#include <chrono>
#include <cstddef>
#include <memory>
#include <span>
#include <string_view>
#include <vector>

#include "meshhook/exporter/family.h"
#include "meshhook/exporter/recent_run_ids.h"
#include "meshhook/exporter/registry.h"

namespace meshhook::exporter {

/// One step of a finished run (its first start to its last end, every attempt included).
struct StepObservation {
  std::string_view step;    // the step's node id in the workflow definition
  std::string_view status;  // succeeded or failed (the last attempt's outcome)
  double duration_seconds = 0;
};

/// One finished workflow run, as the instruments see it.
struct RunObservation {
  std::string_view tenant;    // MeshHook project id
  std::string_view workflow;  // workflow id
  std::string_view status;    // succeeded, failed, canceled, timeout
  double duration_seconds = 0;
  std::string_view run_id;         // becomes the bucket's exemplar when non-empty
  std::string_view workflow_name;  // sets meshhook_workflow_info when non-empty
  double finished_at_seconds = 0;  // Unix time of the exemplar; 0 = none
  /// The time the run's jobs waited in the queue; negative = not known (nothing observed).
  double queue_seconds = -1;
  /// The run's steps, when known. Observed only when the run itself is (not a retry).
  std::span<const StepObservation> steps;
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

  std::vector<double> queue_buckets = default_queue_buckets();
  std::vector<double> step_buckets = default_step_buckets();
  /// 10 ms .. 1 h, roughly 1-2.5-5 per decade: see docs/metrics.md.
  static std::vector<double> default_buckets();
  /// 5 ms .. 1 h: a healthy queue hands a job over in milliseconds, a backed-up one in minutes.
  static std::vector<double> default_queue_buckets();
  /// 5 ms .. 10 min: one step is one HTTP call or transform, with retries.
  static std::vector<double> default_step_buckets();
};

/// The run-duration instruments: meshhook_workflow_run_duration_seconds,
/// meshhook_workflow_runs_total and meshhook_workflow_info, where the time went:
/// meshhook_workflow_run_queue_seconds and meshhook_workflow_step_duration_seconds, and
/// meshhook_stats_duplicate_runs_total for the retries it recognised. Thread-safe.
class RunMetrics {
 public:
  RunMetrics(Registry& registry, RunMetricsOptions options);
  void observe(const RunObservation& run) noexcept;
  /// Records only run.queue_seconds and run.steps, for details known after the run itself was
  /// observed (the MeshHook tailer reads them from MeshHook's tables once the run has
  /// settled). It neither counts the run nor consults or fills the duplicate window, so the
  /// run observed earlier is not taken for a retry; the caller passes each run's details once.
  void observe_details(const RunObservation& run) noexcept;

 private:
  void record_details(const RunObservation& run);
  RunMetricsOptions options_;
  HistogramFamily& duration_;
  HistogramFamily& queue_;
  HistogramFamily& step_;
  CounterFamily& runs_;
  GaugeFamily& info_;
  Counter& duplicates_;
  std::unique_ptr<RecentRunIds> recent_;  // null: no duplicate window
};

}  // namespace meshhook::exporter
