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

TEST_CASE("family folds new label sets over the cap step by step, within the cap", "[exporter]") {
  Registry r;
  auto o = options("runs_total", {"tenant", "workflow"});
  o.max_series = 6;
  o.fold_steps = {{"workflow"}, {"tenant"}};
  o.fold_reserve = 1;  // own series up to 3, tenant folds up to 4, both folded up to 5
  auto& f = r.add_counter(o);
  f.with({"t1", "w1"}).inc();
  f.with({"t1", "w2"}).inc();
  f.with({"t2", "w1"}).inc();
  f.with({"t1", "w3"}).inc();  // folds the workflow: {t1, __other__}
  f.with({"t1", "w4"}).inc();  // the same fold
  f.with({"t2", "w2"}).inc();  // {t2, __other__} would exceed its step: {__other__, __other__}
  f.with({"t3", "w9"}).inc();  // the same
  f.with({"t1", "w1"}).inc();  // existing: not folded
  CHECK(f.size() == 5);

  const auto fs = r.collect();
  const auto* runs = find(fs, "runs_total");
  REQUIRE(runs != nullptr);
  REQUIRE(runs->series.size() == 5);
  CHECK(runs->series[0].value == 2);
  CHECK(runs->series[3].label_values == std::vector<std::string>{"t1", "__other__"});
  CHECK(runs->series[3].value == 2);
  CHECK(runs->series[4].label_values == std::vector<std::string>{"__other__", "__other__"});
  CHECK(runs->series[4].value == 2);

  const auto* dropped = find(fs, "meshhook_stats_series_dropped_total");
  REQUIRE(dropped != nullptr);
  CHECK(dropped->help == "Label sets folded into __other__ by the per-family series cap.");
  REQUIRE(dropped->series.size() == 1);
  CHECK(dropped->series[0].label_values == std::vector<std::string>{"runs_total"});
  CHECK(dropped->series[0].value == 4);
}

TEST_CASE("family without fold steps folds every label over the cap", "[exporter]") {
  Registry r;
  auto o = options("g", {"a", "b"});
  o.max_series = 3;
  auto& f = r.add_gauge(o);
  for (int i = 0; i < 100; ++i) f.with({std::to_string(i), "x"}).inc();
  CHECK(f.size() == 3);
  const auto fs = r.collect();
  const auto* g = find(fs, "g");
  REQUIRE(g->series.size() == 3);
  CHECK(g->series[2].label_values == std::vector<std::string>{"__other__", "__other__"});
  CHECK(g->series[2].value == 98);
  CHECK(find(fs, "meshhook_stats_series_dropped_total")->series[0].value == 98);
}

TEST_CASE("family stays within its cap when many threads create label sets", "[exporter]") {
  Registry r;
  auto o = options("c_total", {"tenant", "workflow"});
  o.max_series = 50;
  o.fold_steps = {{"workflow"}, {"tenant"}};
  auto& f = r.add_counter(o);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&f, t] {
      for (int i = 0; i < 5000; ++i) {
        f.with({std::to_string(t * 7919 + i % 97), std::to_string(t * 100000 + i)}).inc();
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(f.size() <= 50);
  const auto fs = r.collect();
  CHECK(find(fs, "c_total")->series.size() == f.size());
  double total = 0;
  double own = 0;
  for (const auto& s : find(fs, "c_total")->series) {
    total += s.value;
    if (s.label_values[1] != "__other__") own += s.value;
  }
  CHECK(total == 20000);
  CHECK(find(fs, "meshhook_stats_series_dropped_total")->series[0].value == total - own);
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
