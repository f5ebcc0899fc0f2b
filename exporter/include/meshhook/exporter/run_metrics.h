#pragma once

#include <cstddef>
#include <string_view>
#include <vector>

#include "meshhook/exporter/family.h"
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

  /// 10 ms .. 1 h, roughly 1-2.5-5 per decade: see docs/metrics.md.
  static std::vector<double> default_buckets();
};

/// The run-duration instruments: meshhook_workflow_run_duration_seconds,
/// meshhook_workflow_runs_total and meshhook_workflow_info. Thread-safe.
class RunMetrics {
 public:
  RunMetrics(Registry& registry, RunMetricsOptions options);
  void observe(const RunObservation& run) noexcept;

 private:
  RunMetricsOptions options_;
  HistogramFamily& duration_;
  CounterFamily& runs_;
  GaugeFamily& info_;
};

}  // namespace meshhook::exporter
