// Builds a registry from fixed inputs and prints its exposition, so that a golden-file test can
// pin the exact /metrics output. Usage: exposition_golden prom|om
#include <cstdio>
#include <cstring>
#include <string>

#include "meshhook/exporter/exposition.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

using namespace meshhook::exporter;

namespace {

void fill(Registry& registry) {
  RunMetricsOptions options;
  // Small, so that both folds show: 3 series of their own, then the workflow folds, then the
  // tenant too.
  options.max_series = 6;
  RunMetrics runs(registry, options);

  const auto observe = [&](std::string_view tenant, std::string_view workflow,
                           std::string_view status, double seconds, std::string_view run_id,
                           std::string_view name, double finished_at, double queue = -1,
                           std::span<const StepObservation> steps = {}) {
    RunObservation r;
    r.queue_seconds = queue;
    r.steps = steps;
    r.tenant = tenant;
    r.workflow = workflow;
    r.status = status;
    r.duration_seconds = seconds;
    r.run_id = run_id;
    r.workflow_name = name;
    r.finished_at_seconds = finished_at;
    runs.observe(r);
  };
  const std::string_view t1 = "7d4f0b9e-1c2a-4e5b-9a6d-3f8e2b1c0a91";
  const std::string_view w1 = "0f6c2d1e-8b7a-4c3d-9e5f-1a2b3c4d5e6f";
  const std::string_view w2 = "5a4b3c2d-1e0f-4a9b-8c7d-6e5f4a3b2c1d";
  observe(t1, w1, "succeeded", 0.042, "3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6b", "Send invoice",
          1700000000.123);
  observe(t1, w1, "succeeded", 0.25, "", "", 0);
  const StepObservation steps[] = {{"fetch-order", "succeeded", 0.9}, {"notify", "failed", 0.4}};
  observe(t1, w1, "succeeded", 1.5, "9e8d7c6b-5a4f-4e3d-8c2b-1a0f9e8d7c6b", "", 1700000060.5, 0.12,
          steps);
  observe(t1, w1, "failed", 7200, "c0ffee00-0000-4000-8000-000000000001", "", 1700000120);
  observe(t1, w2, "succeeded", 12, "", "Nightly \"sync\" C:\\jobs\nsecond line", 0);
  // Over the cap: the first folds into workflow="__other__"; the second would exceed that step's
  // share of the cap and folds its tenant too.
  observe(t1, "late-workflow-1", "succeeded", 0.5, "", "", 0);
  observe(t1, "late-workflow-2", "canceled", 30, "", "", 0);

  FamilyOptions requests;
  requests.name = "meshhook_stats_ingest_requests_total";
  requests.help = "Ingest requests by outcome.";
  requests.label_names = {"outcome"};
  auto& ingest = registry.add_counter(requests);
  ingest.with({"accepted"}).inc(41);
  ingest.with({"rejected"}).inc();

  FamilyOptions spool;
  spool.name = "meshhook_stats_spool_bytes";
  spool.help = "Bytes in the local spool, not yet written to Postgres.";
  spool.unit = "bytes";
  registry.add_gauge(spool).with({}).set(1048576);

  FamilyOptions build;
  build.name = "meshhook_stats_build_info";
  build.help = "Version and revision of meshhook-stats; the value is always 1.";
  build.label_names = {"version", "revision"};
  registry.add_gauge(build).with({"0.1.0", "golden"}).set(1);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2 || (std::strcmp(argv[1], "prom") != 0 && std::strcmp(argv[1], "om") != 0)) {
    std::fprintf(stderr, "usage: exposition_golden prom|om\n");
    return 2;
  }
  Registry registry;
  fill(registry);
  std::string out;
  serialize(out, registry.collect(),
            std::strcmp(argv[1], "om") == 0 ? ExpositionFormat::openmetrics
                                            : ExpositionFormat::prometheus_text);
  std::fwrite(out.data(), 1, out.size(), stdout);
  return 0;
}
