// Benchmarks of the metrics core against the targets in DESIGN.md: one observation <= 15 ns
// (and no slower with two threads on one series), finding an existing label set < 100 ns,
// collecting and serialising 10,000 histogram series < 20 ms.
#include <benchmark/benchmark.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "meshhook/exporter/exposition.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

using namespace meshhook::exporter;

namespace {

// A uuid-shaped label value (36 characters), distinct per n.
std::string uuid(unsigned n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-1c2a-4e5b-9a6d-%012x", n * 2654435761u, n);
  return buf;
}

const std::vector<double> kTwelveBuckets = {0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
                                            1,    2.5,   5,    10,  30,   60};

double value_for(std::int64_t i) { return static_cast<double>(i % 97) * 0.37; }

void BM_ObserveOneThread(benchmark::State& state) {
  Histogram h(RunMetricsOptions::default_buckets());
  std::int64_t i = 0;
  for (auto _ : state) h.observe(value_for(i++));
  benchmark::DoNotOptimize(&h);
}
BENCHMARK(BM_ObserveOneThread);

// Both threads hit one series: the stripes must keep them from contending.
Histogram* g_shared = nullptr;
void BM_ObserveSameSeries(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new Histogram(RunMetricsOptions::default_buckets());
  // Google Benchmark starts timing only once every thread has set up.
  std::int64_t i = state.thread_index();
  for (auto _ : state) g_shared->observe(value_for(i++));
  if (state.thread_index() == 0) {
    delete g_shared;
    g_shared = nullptr;
  }
}
BENCHMARK(BM_ObserveSameSeries)->Threads(1)->Threads(2)->UseRealTime();

std::vector<std::unique_ptr<Histogram>> g_separate;
void BM_ObserveDifferentSeries(benchmark::State& state) {
  if (state.thread_index() == 0) {
    g_separate.clear();
    for (int t = 0; t < state.threads(); ++t) {
      g_separate.push_back(std::make_unique<Histogram>(RunMetricsOptions::default_buckets()));
    }
  }
  Histogram* h = nullptr;
  std::int64_t i = 0;
  for (auto _ : state) {
    if (h == nullptr) [[unlikely]]
      h = g_separate[static_cast<std::size_t>(state.thread_index())].get();
    h->observe(value_for(i++));
  }
}
BENCHMARK(BM_ObserveDifferentSeries)->Threads(2)->UseRealTime();

void BM_ObserveWithExemplar(benchmark::State& state) {
  Histogram h(RunMetricsOptions::default_buckets());
  const std::string run_id = uuid(7);
  std::int64_t i = 0;
  for (auto _ : state) h.observe(value_for(i++), "run_id", run_id, 1700000000.5);
}
BENCHMARK(BM_ObserveWithExemplar);

// with() on an existing label set of three uuid-length values, in families of 100 and 10,000
// series.
void BM_LookupExisting(benchmark::State& state) {
  Registry registry;
  FamilyOptions o;
  o.name = "lookup_seconds";
  o.label_names = {"tenant", "workflow", "status"};
  auto& family = registry.add_histogram(o, kTwelveBuckets);
  std::vector<std::string> tenants;
  std::vector<std::string> workflows;
  // state.range(0) x 100 series, looked up round-robin.
  const auto per = static_cast<std::size_t>(state.range(0));
  for (unsigned t = 0; t < per; ++t) tenants.push_back(uuid(t));
  for (unsigned w = 0; w < 100; ++w) workflows.push_back(uuid(1000 + w));
  for (const auto& t : tenants) {
    for (const auto& w : workflows) family.with({t, w, "succeeded"});
  }
  std::size_t n = 0;
  for (auto _ : state) {
    Histogram& h = family.with({tenants[n % per], workflows[(n / per) % 100], "succeeded"});
    benchmark::DoNotOptimize(&h);
    ++n;
  }
}
BENCHMARK(BM_LookupExisting)->Arg(1)->Arg(100);

// 100 tenants x 50 workflows x 2 statuses = 10,000 histogram series of 12 buckets.
struct ScrapeFixture {
  Registry registry;
  ScrapeFixture() {
    FamilyOptions o;
    o.name = "meshhook_workflow_run_duration_seconds";
    o.help = "Duration of finished MeshHook workflow runs, from start to finish.";
    o.unit = "seconds";
    o.label_names = {"tenant", "workflow", "status"};
    auto& family = registry.add_histogram(o, kTwelveBuckets);
    std::int64_t i = 0;
    for (unsigned t = 0; t < 100; ++t) {
      const std::string tenant = uuid(t);
      for (unsigned w = 0; w < 50; ++w) {
        const std::string workflow = uuid(10000 + t * 50 + w);
        for (const char* status : {"succeeded", "failed"}) {
          Histogram& h = family.with({tenant, workflow, status});
          for (int k = 0; k < 20; ++k) h.observe(value_for(i++));
        }
      }
    }
  }
};

// reuse: keep one output buffer across scrapes (as an HTTP handler can, per thread), which saves
// the page faults of a fresh 25 MB allocation on every scrape.
void scrape(benchmark::State& state, ExpositionFormat format, bool reuse) {
  static ScrapeFixture fixture;
  std::string kept;
  std::size_t bytes = 0;
  for (auto _ : state) {
    std::string fresh;
    std::string& out = reuse ? kept : fresh;
    out.clear();
    serialize(out, fixture.registry.collect(), format);
    bytes = out.size();
    benchmark::DoNotOptimize(out.data());
  }
  state.counters["bytes"] = static_cast<double>(bytes);
}

void BM_Scrape10kSeriesText(benchmark::State& state) {
  scrape(state, ExpositionFormat::prometheus_text, state.range(0) != 0);
}
BENCHMARK(BM_Scrape10kSeriesText)
    ->ArgName("reuse_buffer")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond);

void BM_Scrape10kSeriesOpenMetrics(benchmark::State& state) {
  scrape(state, ExpositionFormat::openmetrics, state.range(0) != 0);
}
BENCHMARK(BM_Scrape10kSeriesOpenMetrics)
    ->ArgName("reuse_buffer")
    ->Arg(0)
    ->Arg(1)
    ->Unit(benchmark::kMillisecond);

void BM_Collect10kSeries(benchmark::State& state) {
  static ScrapeFixture fixture;
  for (auto _ : state) benchmark::DoNotOptimize(fixture.registry.collect());
}
BENCHMARK(BM_Collect10kSeries)->Unit(benchmark::kMillisecond);

// The whole path of one run event: histogram, counter (and exemplar) via label lookups, and the
// duplicate window (its size is the argument; 0 = off). Every run has its own id, as producers
// send them.
void BM_RunMetricsObserve(benchmark::State& state) {
  Registry registry;
  RunMetricsOptions options;
  options.duplicate_window_runs = static_cast<std::size_t>(state.range(0));
  RunMetrics metrics(registry, options);
  std::vector<std::string> workflows;
  for (unsigned w = 0; w < 100; ++w) workflows.push_back(uuid(w));
  const std::string tenant = uuid(5000);
  std::string run_id = uuid(6000);
  RunObservation run;
  run.tenant = tenant;
  run.status = "succeeded";
  run.finished_at_seconds = 1700000000;
  std::size_t n = 0;
  for (auto _ : state) {
    std::snprintf(run_id.data(), run_id.size() + 1, "%08zx-1c2a-4e5b-9a6d-%012zx", n, n);
    run.run_id = run_id;
    run.workflow = workflows[n % 100];
    run.duration_seconds = value_for(static_cast<std::int64_t>(n));
    metrics.observe(run);
    ++n;
  }
}
BENCHMARK(BM_RunMetricsObserve)->ArgName("window")->Arg(0)->Arg(65536)->Arg(1000000);

// A producer's retry: the same run posted again, which is recognised and not counted twice.
void BM_RunMetricsObserveRepost(benchmark::State& state) {
  Registry registry;
  RunMetrics metrics(registry, {});
  const std::string tenant = uuid(5000);
  const std::string workflow = uuid(1);
  std::vector<std::string> run_ids;
  for (unsigned r = 0; r < 1024; ++r) run_ids.push_back(uuid(100000 + r));
  RunObservation run;
  run.tenant = tenant;
  run.workflow = workflow;
  run.status = "succeeded";
  run.duration_seconds = 0.5;
  run.finished_at_seconds = 1700000000;
  std::size_t n = 0;
  for (auto _ : state) {
    run.run_id = run_ids[n++ % run_ids.size()];
    metrics.observe(run);
  }
}
BENCHMARK(BM_RunMetricsObserveRepost);

}  // namespace
