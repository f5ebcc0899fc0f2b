#include "meshhook/exporter/process_metrics.h"

#include <catch2/catch.hpp>
#include <ctime>
#include <string>

#include "meshhook/exporter/exposition.h"

using namespace meshhook::exporter;

namespace {

const FamilySnapshot* find(const std::vector<FamilySnapshot>& fs, std::string_view name) {
  for (const auto& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("process metrics report the standard process families", "[exporter]") {
  Registry reg;
  add_process_metrics(reg, "0.1.0", "abc123");
  const auto fs = reg.collect();
  for (auto name : {"process_cpu_seconds_total", "process_resident_memory_bytes",
                    "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
                    "process_start_time_seconds"}) {
    INFO(name);
    const auto* f = find(fs, name);
    REQUIRE(f != nullptr);
    REQUIRE(f->series.size() == 1);
    CHECK(f->series[0].value >= 0);
  }
  CHECK(find(fs, "process_cpu_seconds_total")->type == MetricType::counter);
  CHECK(find(fs, "process_resident_memory_bytes")->series[0].value > 1024 * 1024);
  CHECK(find(fs, "process_open_fds")->series[0].value >= 3);
  const double start = find(fs, "process_start_time_seconds")->series[0].value;
  const double now = static_cast<double>(std::time(nullptr));
  CHECK(start > now - 3600);
  CHECK(start <= now + 1);
}

TEST_CASE("process metrics include build info of 1", "[exporter]") {
  Registry reg;
  add_process_metrics(reg, "0.1.0", "abc123");
  std::string out;
  serialize(out, reg.collect(), ExpositionFormat::prometheus_text);
  CHECK_THAT(out, Catch::Matchers::Contains(
                      "meshhook_stats_build_info{version=\"0.1.0\",revision=\"abc123\"} 1\n"));
}
