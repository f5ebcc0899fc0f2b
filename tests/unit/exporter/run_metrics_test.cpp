#include "meshhook/exporter/run_metrics.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "meshhook/exporter/exposition.h"

using namespace meshhook::exporter;
using Catch::Matchers::Contains;

namespace {

const FamilySnapshot& find(const std::vector<FamilySnapshot>& fs, std::string_view name) {
  for (const auto& f : fs) {
    if (f.name == name) return f;
  }
  FAIL("no family " << name);
  throw;
}

RunObservation run(std::string_view workflow, double seconds) {
  RunObservation r;
  r.tenant = "t1";
  r.workflow = workflow;
  r.status = "succeeded";
  r.duration_seconds = seconds;
  return r;
}

}  // namespace

TEST_CASE("run metrics use the documented default buckets", "[exporter]") {
  CHECK(RunMetricsOptions::default_buckets() == std::vector<double>{0.01, 0.025, 0.05, 0.1, 0.25,
                                                                    0.5, 1, 2.5, 5, 10, 30, 60, 300,
                                                                    600, 1800, 3600});
}

TEST_CASE("run metrics count a run in the histogram, the counter and the info gauge",
          "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  auto r = run("w1", 0.3);
  r.workflow_name = "Send invoice";
  r.run_id = "run-1";
  r.finished_at_seconds = 1700000000;
  m.observe(r);
  m.observe(run("w1", 2));
  const auto fs = reg.collect();

  const auto& h = find(fs, "meshhook_workflow_run_duration_seconds");
  CHECK(h.unit == "seconds");
  CHECK(h.help == "Duration of finished MeshHook workflow runs, from start to finish.");
  CHECK(h.label_names == std::vector<std::string>{"tenant", "workflow", "status"});
  REQUIRE(h.series.size() == 1);
  CHECK(h.series[0].count == 2);
  CHECK(h.series[0].sum == Approx(2.3));
  REQUIRE(h.series[0].exemplars.size() == 17);
  REQUIRE(h.series[0].exemplars[5].has_value());  // 0.3 <= 0.5
  CHECK(h.series[0].exemplars[5]->label_name == "run_id");
  CHECK(h.series[0].exemplars[5]->label_value == "run-1");
  CHECK(h.series[0].exemplars[5]->timestamp_seconds == 1700000000);

  const auto& c = find(fs, "meshhook_workflow_runs_total");
  REQUIRE(c.series.size() == 1);
  CHECK(c.series[0].value == 2);

  const auto& info = find(fs, "meshhook_workflow_info");
  REQUIRE(info.series.size() == 1);
  CHECK(info.series[0].label_values == std::vector<std::string>{"t1", "w1", "Send invoice"});
  CHECK(info.series[0].value == 1);
}

TEST_CASE("run metrics ignore negative and NaN durations", "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  m.observe(run("w", -1));
  m.observe(run("w", std::numeric_limits<double>::quiet_NaN()));
  const auto fs = reg.collect();
  CHECK(find(fs, "meshhook_workflow_run_duration_seconds").series.empty());
  CHECK(find(fs, "meshhook_workflow_runs_total").series.empty());
}

TEST_CASE("run metrics keep no exemplars when they are turned off", "[exporter]") {
  Registry reg;
  RunMetricsOptions o;
  o.exemplars = false;
  RunMetrics m(reg, o);
  auto r = run("w", 1);
  r.run_id = "run-1";
  m.observe(r);
  CHECK(find(reg.collect(), "meshhook_workflow_run_duration_seconds").series[0].exemplars.empty());
}

TEST_CASE("run metrics fold workflows over the cap and count the fold", "[exporter]") {
  Registry reg;
  RunMetricsOptions o;
  o.max_series = 40;  // each fold step keeps 40 / 20 free, the last resort 1: 35 own series
  RunMetrics m(reg, o);
  for (int w = 0; w < 45; ++w) m.observe(run("w" + std::to_string(w), 1));
  const auto fs = reg.collect();
  const auto& h = find(fs, "meshhook_workflow_run_duration_seconds");
  REQUIRE(h.series.size() == 36);
  CHECK(h.series[35].label_values == std::vector<std::string>{"t1", "__other__", "succeeded"});
  CHECK(h.series[35].count == 10);
  const auto& dropped = find(fs, "meshhook_stats_series_dropped_total");
  // One series per capped family: run durations, queue waits, steps, runs, info.
  REQUIRE(dropped.series.size() == 5);
  CHECK(dropped.series[0].label_values[0] == "meshhook_workflow_run_duration_seconds");
  CHECK(dropped.series[0].value == 10);
}

TEST_CASE("run metrics never exceed the cap under a flood of made-up tenants and names",
          "[exporter]") {
  Registry reg;
  RunMetricsOptions o;
  o.max_series = 100;
  RunMetrics m(reg, o);
  std::mt19937_64 rng(42);
  const char* statuses[] = {"succeeded", "failed", "canceled", "timeout"};
  constexpr int kRuns = 20000;
  for (int i = 0; i < kRuns; ++i) {
    const std::string tenant = std::to_string(rng());
    const std::string workflow = std::to_string(rng());
    const std::string name = "name " + std::to_string(i);  // every one new
    RunObservation r;
    r.tenant = tenant;
    r.workflow = workflow;
    r.status = statuses[rng() % 4];
    r.duration_seconds = 1;
    r.workflow_name = name;
    m.observe(r);
  }
  const auto fs = reg.collect();
  const auto dropped_for = [&](std::string_view family) {
    for (const auto& s : find(fs, "meshhook_stats_series_dropped_total").series) {
      if (s.label_values[0] == family) return s.value;
    }
    FAIL("no dropped series for " << family);
    return 0.0;
  };
  const auto unfolded = [](const SeriesSnapshot& s) {
    for (const auto& v : s.label_values) {
      if (v == "__other__") return false;
    }
    return true;
  };

  const auto& h = find(fs, "meshhook_workflow_run_duration_seconds");
  CHECK(h.series.size() <= 100);
  std::uint64_t total = 0;
  std::uint64_t own = 0;
  bool tenant_folded = false;
  for (const auto& s : h.series) {
    total += s.count;
    if (unfolded(s)) own += s.count;
    if (s.label_values[0] == "__other__") tenant_folded = true;
  }
  CHECK(total == kRuns);
  CHECK(tenant_folded);
  CHECK(dropped_for("meshhook_workflow_run_duration_seconds") == static_cast<double>(kRuns - own));

  const auto& c = find(fs, "meshhook_workflow_runs_total");
  CHECK(c.series.size() <= 100);
  double counted = 0;
  for (const auto& s : c.series) counted += s.value;
  CHECK(counted == kRuns);

  // Each name is new, so each lookup that did not get a series of its own was one fold.
  const auto& info = find(fs, "meshhook_workflow_info");
  CHECK(info.series.size() <= 100);
  std::size_t own_info = 0;
  for (const auto& s : info.series) {
    if (unfolded(s)) ++own_info;
    if (s.label_values[1] == "__other__") CHECK(s.label_values[2] == "__other__");
  }
  CHECK(dropped_for("meshhook_workflow_info") == static_cast<double>(kRuns - own_info));
}

TEST_CASE("run metrics count a re-posted run once, and the repost as a duplicate", "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  auto r = run("w1", 0.5);
  r.run_id = "3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6b";
  m.observe(r);
  m.observe(r);  // the producer's retry
  auto other = run("w1", 0.5);
  other.run_id = "3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6c";
  m.observe(other);
  const auto fs = reg.collect();
  const auto& h = find(fs, "meshhook_workflow_run_duration_seconds");
  REQUIRE(h.series.size() == 1);
  CHECK(h.series[0].count == 2);
  CHECK(h.series[0].sum == Approx(1.0));
  CHECK(find(fs, "meshhook_workflow_runs_total").series[0].value == 2);
  const auto& dup = find(fs, "meshhook_stats_duplicate_runs_total");
  CHECK(dup.help ==
        "Runs not observed again because their run id was observed within the duplicate window "
        "(retries).");
  REQUIRE(dup.series.size() == 1);
  CHECK(dup.series[0].value == 1);
}

TEST_CASE("run metrics count every run when the duplicate window is off", "[exporter]") {
  Registry reg;
  RunMetricsOptions o;
  o.duplicate_window_runs = 0;
  RunMetrics m(reg, o);
  auto r = run("w1", 0.5);
  r.run_id = "3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6b";
  m.observe(r);
  m.observe(r);
  const auto fs = reg.collect();
  CHECK(find(fs, "meshhook_workflow_run_duration_seconds").series[0].count == 2);
  CHECK(find(fs, "meshhook_stats_duplicate_runs_total").series[0].value == 0);
}

TEST_CASE("run metrics truncate long label values", "[exporter]") {
  Registry reg;
  RunMetricsOptions o;
  o.max_label_value_length = 8;
  RunMetrics m(reg, o);
  m.observe(run("0123456789abcdef", 1));
  const auto fs = reg.collect();
  const auto& h = find(fs, "meshhook_workflow_run_duration_seconds");
  CHECK(h.series[0].label_values[1] == "01234567");
}

TEST_CASE("run metrics render as valid OpenMetrics with exemplars", "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  auto r = run("w1", 0.05);
  r.run_id = "abc";
  r.finished_at_seconds = 1700000000.123;
  m.observe(r);
  std::string out;
  serialize(out, reg.collect(), ExpositionFormat::openmetrics);
  CHECK_THAT(out, Contains("# TYPE meshhook_workflow_runs counter\n") &&
                      Contains("# UNIT meshhook_workflow_run_duration_seconds seconds\n") &&
                      Contains("meshhook_workflow_run_duration_seconds_bucket{tenant=\"t1\","
                               "workflow=\"w1\",status=\"succeeded\",le=\"0.05\"} 1 # "
                               "{run_id=\"abc\"} 0.05 1700000000.123\n") &&
                      Contains("meshhook_workflow_runs_total{tenant=\"t1\",workflow=\"w1\","
                               "status=\"succeeded\"} 1.0\n"));
}

TEST_CASE("run metrics observe the queue wait and each step of a run, with its exemplar",
          "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  const StepObservation steps[] = {{"fetch", "succeeded", 0.2}, {"notify", "failed", 3}};
  auto r = run("w1", 4);
  r.run_id = "run-1";
  r.finished_at_seconds = 1700000000;
  r.queue_seconds = 0.04;
  r.steps = steps;
  m.observe(r);
  m.observe(run("w1", 1));  // neither queue wait nor steps known
  const auto fs = reg.collect();

  const auto& q = find(fs, "meshhook_workflow_run_queue_seconds");
  CHECK(q.unit == "seconds");
  CHECK(q.label_names == std::vector<std::string>{"tenant", "workflow"});
  REQUIRE(q.series.size() == 1);
  CHECK(q.series[0].count == 1);
  CHECK(q.series[0].sum == Approx(0.04));
  REQUIRE(q.series[0].exemplars.size() == RunMetricsOptions::default_queue_buckets().size() + 1);
  REQUIRE(q.series[0].exemplars[3].has_value());  // 0.025 < 0.04 <= 0.05
  CHECK(q.series[0].exemplars[3]->label_value == "run-1");

  const auto& s = find(fs, "meshhook_workflow_step_duration_seconds");
  CHECK(s.label_names == std::vector<std::string>{"tenant", "workflow", "step", "status"});
  REQUIRE(s.series.size() == 2);
  CHECK(s.series[0].label_values == std::vector<std::string>{"t1", "w1", "fetch", "succeeded"});
  CHECK(s.series[0].sum == Approx(0.2));
  CHECK(s.series[1].label_values == std::vector<std::string>{"t1", "w1", "notify", "failed"});
  CHECK(s.series[1].count == 1);
}

TEST_CASE("run metrics observe a re-posted run's queue wait and steps once", "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  const StepObservation steps[] = {{"fetch", "succeeded", 0.2}};
  auto r = run("w1", 1);
  r.run_id = "3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6b";
  r.queue_seconds = 0.5;
  r.steps = steps;
  m.observe(r);
  m.observe(r);
  const auto fs = reg.collect();
  CHECK(find(fs, "meshhook_workflow_run_queue_seconds").series[0].count == 1);
  CHECK(find(fs, "meshhook_workflow_step_duration_seconds").series[0].count == 1);
}

TEST_CASE("run metrics observe details given after the run without counting the run again",
          "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  auto r = run("w1", 2);
  r.run_id = "3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6b";
  m.observe(r);
  const StepObservation steps[] = {{"fetch", "succeeded", 0.2}, {"charge", "failed", 1.5}};
  RunObservation details;
  details.tenant = "t1";
  details.workflow = "w1";
  details.run_id = r.run_id;
  details.finished_at_seconds = 1700000000;
  details.queue_seconds = 0.03;
  details.steps = steps;
  m.observe_details(details);
  const auto fs = reg.collect();
  CHECK(find(fs, "meshhook_workflow_run_duration_seconds").series[0].count == 1);
  CHECK(find(fs, "meshhook_workflow_runs_total").series[0].value == 1);
  CHECK(find(fs, "meshhook_stats_duplicate_runs_total").series[0].value == 0);
  const auto& q = find(fs, "meshhook_workflow_run_queue_seconds");
  REQUIRE(q.series.size() == 1);
  CHECK(q.series[0].sum == Approx(0.03));
  REQUIRE(q.series[0].exemplars[3].has_value());  // 0.025 < 0.03 <= 0.05
  CHECK(q.series[0].exemplars[3]->label_value == r.run_id);
  const auto& s = find(fs, "meshhook_workflow_step_duration_seconds");
  REQUIRE(s.series.size() == 2);
  CHECK(s.series[1].label_values == std::vector<std::string>{"t1", "w1", "charge", "failed"});
  CHECK(s.series[1].sum == Approx(1.5));
}

TEST_CASE("run metrics details alone count no run and skip unusable values", "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  const StepObservation steps[] = {
      {"fetch", "succeeded", std::nan("")}, {"", "succeeded", 1}, {"notify", "succeeded", 0.5}};
  RunObservation details;
  details.tenant = "t1";
  details.workflow = "w1";
  details.run_id = "run-1";
  details.queue_seconds = -1;  // unknown
  details.steps = steps;
  m.observe_details(details);
  m.observe_details(details);  // the caller's to avoid: observed twice, not taken for a retry
  const auto fs = reg.collect();
  CHECK(find(fs, "meshhook_workflow_runs_total").series.empty());
  CHECK(find(fs, "meshhook_workflow_run_duration_seconds").series.empty());
  CHECK(find(fs, "meshhook_workflow_run_queue_seconds").series.empty());
  const auto& s = find(fs, "meshhook_workflow_step_duration_seconds");
  REQUIRE(s.series.size() == 1);
  CHECK(s.series[0].label_values == std::vector<std::string>{"t1", "w1", "notify", "succeeded"});
  CHECK(s.series[0].count == 2);
  // And the run itself is still counted when it comes.
  m.observe(run("w1", 1));
  CHECK(find(reg.collect(), "meshhook_workflow_runs_total").series[0].value == 1);
}

TEST_CASE("run metrics ignore a negative queue wait or step duration and keep the run",
          "[exporter]") {
  Registry reg;
  RunMetrics m(reg, {});
  const StepObservation steps[] = {{"fetch", "succeeded", -1},
                                   {"x", "succeeded", std::numeric_limits<double>::quiet_NaN()},
                                   {"", "succeeded", 1}};
  auto r = run("w1", 1);
  r.queue_seconds = std::numeric_limits<double>::infinity();
  r.steps = steps;
  m.observe(r);
  const auto fs = reg.collect();
  CHECK(find(fs, "meshhook_workflow_run_duration_seconds").series[0].count == 1);
  CHECK(find(fs, "meshhook_workflow_run_queue_seconds").series.empty());
  CHECK(find(fs, "meshhook_workflow_step_duration_seconds").series.empty());
}

TEST_CASE("run metrics fold steps first, then workflows, under the cap", "[exporter]") {
  Registry reg;
  RunMetricsOptions o;
  o.max_series = 40;
  RunMetrics m(reg, o);
  std::vector<std::string> names;
  for (int i = 0; i < 60; ++i) names.push_back("step-" + std::to_string(i));
  std::vector<StepObservation> steps;
  for (const auto& n : names) steps.push_back({n, "succeeded", 0.1});
  auto r = run("w1", 1);
  r.steps = steps;
  m.observe(r);
  const auto fs = reg.collect();
  const auto& s = find(fs, "meshhook_workflow_step_duration_seconds");
  CHECK(s.series.size() <= 40);
  std::uint64_t total = 0;
  bool folded_step = false;
  for (const auto& series : s.series) {
    total += series.count;
    if (series.label_values == std::vector<std::string>{"t1", "w1", "__other__", "succeeded"}) {
      folded_step = true;
    }
  }
  CHECK(total == 60);  // folded, never lost
  CHECK(folded_step);
}
