#include "meshhook/exporter/run_metrics.h"

#include <cmath>

namespace meshhook::exporter {

namespace {

FamilyOptions capped(std::string name, std::string help, std::string unit,
                     std::vector<std::string> labels, std::vector<std::string> workflow_labels,
                     const RunMetricsOptions& o) {
  FamilyOptions f{
      .name = std::move(name),
      .help = std::move(help),
      .unit = std::move(unit),
      .label_names = std::move(labels),
      .max_series = o.max_series,
      .max_label_value_length = o.max_label_value_length,
  };
  // Workflows are many and grow, so they fold first, keeping the tenant; when even that would
  // exceed the cap (many tenants, or made-up ones), the tenant folds too.
  if (o.max_series > 0) f.fold_steps = {std::move(workflow_labels), {"tenant"}};
  return f;
}

void observe_into(Histogram& h, double seconds, const RunObservation& run, bool exemplars) {
  if (exemplars && !run.run_id.empty()) {
    h.observe(seconds, "run_id", run.run_id, run.finished_at_seconds);
  } else {
    h.observe(seconds);
  }
}

bool usable(double seconds) { return std::isfinite(seconds) && seconds >= 0; }

}  // namespace

std::vector<double> RunMetricsOptions::default_buckets() {
  return {0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 600, 1800, 3600};
}

std::vector<double> RunMetricsOptions::default_queue_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600};
}

std::vector<double> RunMetricsOptions::default_step_buckets() {
  return {0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600};
}

RunMetrics::RunMetrics(Registry& registry, RunMetricsOptions options)
    : options_(std::move(options)),
      duration_(registry.add_histogram(
          capped("meshhook_workflow_run_duration_seconds",
                 "Duration of finished MeshHook workflow runs, from start to finish.", "seconds",
                 {"tenant", "workflow", "status"}, {"workflow"}, options_),
          options_.buckets)),
      queue_(registry.add_histogram(
          capped("meshhook_workflow_run_queue_seconds",
                 "Time the jobs of finished MeshHook workflow runs waited in the queue before a "
                 "worker started them, summed over each run's jobs.",
                 "seconds", {"tenant", "workflow"}, {"workflow"}, options_),
          options_.queue_buckets)),
      step_([&]() -> HistogramFamily& {
        // Steps are the most numerous label, so they fold first, then workflows, then tenants.
        auto f =
            capped("meshhook_workflow_step_duration_seconds",
                   "Duration of the steps of finished MeshHook workflow runs, from a step's "
                   "first start to its last end (retries included).",
                   "seconds", {"tenant", "workflow", "step", "status"}, {"workflow"}, options_);
        if (!f.fold_steps.empty()) f.fold_steps.insert(f.fold_steps.begin(), {"step"});
        return registry.add_histogram(std::move(f), options_.step_buckets);
      }()),
      runs_(registry.add_counter(capped("meshhook_workflow_runs_total",
                                        "Finished MeshHook workflow runs.", "",
                                        {"tenant", "workflow", "status"}, {"workflow"}, options_))),
      info_(registry.add_gauge(
          capped("meshhook_workflow_info",
                 "Names of MeshHook workflows, for joins on workflow; the value is always 1.", "",
                 {"tenant", "workflow", "name"}, {"workflow", "name"}, options_))),
      duplicates_(registry
                      .add_counter({.name = "meshhook_stats_duplicate_runs_total",
                                    .help = "Runs not observed again because their run id was "
                                            "observed within the duplicate window (retries)."})
                      .with({})) {
  if (options_.duplicate_window_runs > 0) {
    recent_ = std::make_unique<RecentRunIds>(options_.duplicate_window_runs,
                                             options_.duplicate_window_age);
  }
}

void RunMetrics::observe(const RunObservation& run) noexcept {
  // Negative, NaN and infinite durations are bad input; they would corrupt _sum.
  if (!usable(run.duration_seconds)) return;
  if (recent_ != nullptr && !run.run_id.empty() && recent_->seen_or_remember(run.run_id)) {
    duplicates_.inc();
    return;
  }
  try {
    observe_into(duration_.with({run.tenant, run.workflow, run.status}), run.duration_seconds, run,
                 options_.exemplars);
    record_details(run);
    runs_.with({run.tenant, run.workflow, run.status}).inc();
    if (!run.workflow_name.empty()) {
      info_.with({run.tenant, run.workflow, run.workflow_name}).set(1);
    }
  } catch (...) {
    // Only allocation can fail here (a new label set); the run is then not counted.
  }
}

void RunMetrics::observe_details(const RunObservation& run) noexcept {
  try {
    record_details(run);
  } catch (...) {
    // As in observe: only a new label set can fail to allocate; those details are then lost.
  }
}

void RunMetrics::record_details(const RunObservation& run) {
  if (usable(run.queue_seconds)) {
    observe_into(queue_.with({run.tenant, run.workflow}), run.queue_seconds, run,
                 options_.exemplars);
  }
  for (const StepObservation& step : run.steps) {
    if (!usable(step.duration_seconds) || step.step.empty()) continue;
    observe_into(step_.with({run.tenant, run.workflow, step.step, step.status}),
                 step.duration_seconds, run, options_.exemplars);
  }
}

}  // namespace meshhook::exporter
