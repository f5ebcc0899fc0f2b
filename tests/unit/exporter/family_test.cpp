#include <catch2/catch.hpp>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "meshhook/exporter/registry.h"

using namespace meshhook::exporter;

namespace {

FamilyOptions options(std::string name, std::vector<std::string> labels) {
  FamilyOptions o;
  o.name = std::move(name);
  o.help = "Test.";
  o.label_names = std::move(labels);
  return o;
}

const FamilySnapshot* find(const std::vector<FamilySnapshot>& fs, std::string_view name) {
  for (const auto& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("family returns the same metric for the same label set", "[exporter]") {
  Registry r;
  auto& f = r.add_counter(options("jobs_total", {"a", "b"}));
  Counter& c1 = f.with({"x", "y"});
  Counter& c2 = f.with({"x", "y"});
  Counter& c3 = f.with({"xy", ""});
  CHECK(&c1 == &c2);
  CHECK(&c1 != &c3);
  CHECK(f.size() == 2);
}

TEST_CASE("family keys cannot be confused by separators inside values", "[exporter]") {
  Registry r;
  auto& f = r.add_gauge(options("g", {"a", "b"}));
  Gauge& g1 = f.with({"a\xff", "b"});
  Gauge& g2 = f.with({"a",
                      "\xff"
                      "b"});
  CHECK(&g1 != &g2);
}

TEST_CASE("family rejects a wrong number of label values", "[exporter]") {
  Registry r;
  auto& f = r.add_gauge(options("g", {"a", "b"}));
  CHECK_THROWS_AS(f.with({"only one"}), std::invalid_argument);
}

TEST_CASE("family folds new label sets over the cap into __other__", "[exporter]") {
  Registry r;
  auto o = options("runs_total", {"tenant", "workflow"});
  o.max_series = 2;
  o.overflow_label = "workflow";
  auto& f = r.add_counter(o);
  f.with({"t", "w1"}).inc();
  f.with({"t", "w2"}).inc();
  f.with({"t", "w3"}).inc();
  f.with({"t", "w4"}).inc();
  f.with({"t", "w1"}).inc();  // existing: not folded
  CHECK(f.size() == 3);

  const auto fs = r.collect();
  const auto* runs = find(fs, "runs_total");
  REQUIRE(runs != nullptr);
  REQUIRE(runs->series.size() == 3);
  CHECK(runs->series[2].label_values == std::vector<std::string>{"t", "__other__"});
  CHECK(runs->series[2].value == 2);
  CHECK(runs->series[0].value == 2);

  const auto* dropped = find(fs, "meshhook_stats_series_dropped_total");
  REQUIRE(dropped != nullptr);
  CHECK(dropped->help == "Label sets folded into __other__ by the per-family series cap.");
  REQUIRE(dropped->series.size() == 1);
  CHECK(dropped->series[0].label_values == std::vector<std::string>{"runs_total"});
  CHECK(dropped->series[0].value == 2);
}

TEST_CASE("family truncates long label values on a UTF-8 boundary", "[exporter]") {
  Registry r;
  auto o = options("g", {"a"});
  o.max_label_value_length = 4;
  auto& f = r.add_gauge(o);
  f.with({"abc\xc3\xa9xyz"}).set(1);         // "abcé..." : é would straddle byte 4
  Gauge& same = f.with({"abc\xc3\xa9zzz"});  // the same after truncation
  same.inc();
  const auto fs = r.collect();
  const auto* g = find(fs, "g");
  REQUIRE(g->series.size() == 1);
  CHECK(g->series[0].label_values[0] == "abc");
  CHECK(g->series[0].value == 2);
}

TEST_CASE("family clear removes every series", "[exporter]") {
  Registry r;
  auto& f = r.add_gauge(options("g", {"a"}));
  f.with({"1"});
  f.with({"2"});
  f.clear();
  CHECK(f.size() == 0);
  f.with({"3"}).set(3);
  CHECK(find(r.collect(), "g")->series.size() == 1);
}

TEST_CASE("family lookups from many threads agree on one series", "[exporter]") {
  Registry r;
  auto& f = r.add_counter(options("c_total", {"a"}));
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&f] {
      for (int i = 0; i < 10000; ++i) f.with({std::to_string(i % 100)}).inc();
    });
  }
  for (auto& t : threads) t.join();
  CHECK(f.size() == 100);
  double total = 0;
  const auto fs = r.collect();
  for (const auto& s : find(fs, "c_total")->series) total += s.value;
  CHECK(total == 40000);
}

TEST_CASE("family renders each series' labels once, escaped", "[exporter]") {
  Registry r;
  auto& f = r.add_gauge(options("g", {"a", "b"}));
  f.with({"x\"y", "1\\2\n"});
  const auto fs = r.collect();
  CHECK(find(fs, "g")->series[0].rendered_labels == R"(a="x\"y",b="1\\2\n")");
}
