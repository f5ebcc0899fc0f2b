#include "meshhook/exporter/registry.h"

#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <vector>

using namespace meshhook::exporter;
using Catch::Matchers::Contains;

namespace {

FamilyOptions options(std::string name, std::vector<std::string> labels = {}) {
  FamilyOptions o;
  o.name = std::move(name);
  o.help = "Test.";
  o.label_names = std::move(labels);
  return o;
}

}  // namespace

TEST_CASE("metric and label names follow the Prometheus data model", "[exporter]") {
  CHECK(is_valid_metric_name("a:b_c9"));
  CHECK(is_valid_metric_name("_x"));
  CHECK_FALSE(is_valid_metric_name(""));
  CHECK_FALSE(is_valid_metric_name("9a"));
  CHECK_FALSE(is_valid_metric_name("a-b"));
  CHECK(is_valid_label_name("tenant_1"));
  CHECK(is_valid_label_name("_x"));
  CHECK_FALSE(is_valid_label_name("__name"));
  CHECK_FALSE(is_valid_label_name("a:b"));
  CHECK_FALSE(is_valid_label_name("1a"));
}

TEST_CASE("registry rejects a bad metric name naming the family and field", "[exporter]") {
  Registry r;
  CHECK_THROWS_WITH(r.add_gauge(options("bad-name")), Contains("\"bad-name\"") && Contains("name"));
}

TEST_CASE("registry rejects a counter whose name does not end in _total", "[exporter]") {
  Registry r;
  CHECK_THROWS_WITH(r.add_counter(options("jobs")), Contains("\"jobs\"") && Contains("_total"));
}

TEST_CASE("registry rejects reserved and malformed label names", "[exporter]") {
  Registry r;
  CHECK_THROWS_WITH(r.add_gauge(options("g", {"ok", "__x"})), Contains("label_names[1]"));
  CHECK_THROWS_WITH(r.add_gauge(options("g", {"a-b"})), Contains("label_names[0]"));
  CHECK_THROWS_WITH(r.add_gauge(options("g", {"a", "a"})), Contains("duplicate"));
  CHECK_THROWS_WITH(r.add_histogram(options("h", {"le"}), {1}),
                    Contains("\"h\"") && Contains("le"));
  CHECK_NOTHROW(r.add_gauge(options("g", {"le"})));
}

TEST_CASE("registry rejects a unit the name does not end with", "[exporter]") {
  Registry r;
  auto o = options("duration_ms");
  o.unit = "seconds";
  CHECK_THROWS_WITH(r.add_gauge(o), Contains("unit"));
  auto c = options("sent_bytes_total");
  c.unit = "bytes";
  CHECK_NOTHROW(r.add_counter(c));
  auto h = options("latency_seconds");
  h.unit = "seconds";
  CHECK_NOTHROW(r.add_histogram(h, {1}));
}

TEST_CASE("registry rejects bad bucket layouts naming the family", "[exporter]") {
  Registry r;
  CHECK_THROWS_WITH(r.add_histogram(options("h1"), {2, 1}),
                    Contains("\"h1\"") && Contains("buckets"));
  CHECK_THROWS_AS(r.add_histogram(options("h2"), {1, 1}), std::invalid_argument);
  CHECK_THROWS_AS(r.add_histogram(options("h3"), {}), std::invalid_argument);
}

TEST_CASE("registry rejects duplicate family names", "[exporter]") {
  Registry r;
  r.add_gauge(options("g"));
  CHECK_THROWS_WITH(r.add_gauge(options("g")), Contains("\"g\""));
  CHECK_THROWS_AS(r.add_counter(options("meshhook_stats_series_dropped_total", {"family"})),
                  std::invalid_argument);
}

TEST_CASE("registry requires every folded label to be a label", "[exporter]") {
  Registry r;
  auto o = options("g", {"a", "b"});
  o.max_series = 10;
  o.fold_steps = {{"a"}, {"missing"}};
  CHECK_THROWS_WITH(r.add_gauge(o), Contains("fold_steps[1]") && Contains("\"missing\""));
}

TEST_CASE("registry collects families in order, then collectors", "[exporter]") {
  Registry r;
  r.add_gauge(options("first"));
  r.add_counter(options("second_total"));
  r.add_collector([](std::vector<FamilySnapshot>& out) {
    FamilySnapshot f;
    f.name = "third";
    out.push_back(f);
  });
  const auto fs = r.collect();
  REQUIRE(fs.size() == 4);
  CHECK(fs[0].name == "meshhook_stats_series_dropped_total");
  CHECK(fs[1].name == "first");
  CHECK(fs[2].name == "second_total");
  CHECK(fs[2].type == MetricType::counter);
  CHECK(fs[3].name == "third");
}
