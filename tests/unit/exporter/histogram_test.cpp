#include "meshhook/exporter/histogram.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <limits>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

using meshhook::exporter::Histogram;
using meshhook::exporter::SeriesSnapshot;

namespace {
SeriesSnapshot snap(const Histogram& h) {
  SeriesSnapshot s;
  h.snapshot(s);
  return s;
}
}  // namespace

TEST_CASE("histogram puts a value equal to a bound into that bound's bucket", "[exporter]") {
  Histogram h({1, 2, 5});
  h.observe(1.0);
  h.observe(2.0);
  h.observe(5.0);
  const auto s = snap(h);
  CHECK(s.cumulative_counts == std::vector<std::uint64_t>{1, 2, 3, 3});
}

TEST_CASE("histogram counts are cumulative with +Inf last", "[exporter]") {
  Histogram h({0.1, 1, 10});
  for (double v : {0.05, 0.5, 0.7, 5.0, 50.0, 100.0}) h.observe(v);
  const auto s = snap(h);
  CHECK(s.cumulative_counts == std::vector<std::uint64_t>{1, 3, 4, 6});
  CHECK(s.count == 6);
  CHECK(s.sum == Approx(156.25));
}

TEST_CASE("histogram puts values below the first bound into the first bucket", "[exporter]") {
  Histogram h({1, 2});
  h.observe(-3);
  h.observe(0);
  CHECK(snap(h).cumulative_counts == std::vector<std::uint64_t>{2, 2, 2});
}

TEST_CASE("histogram puts NaN into the +Inf bucket", "[exporter]") {
  Histogram h({1, 2});
  h.observe(std::numeric_limits<double>::quiet_NaN());
  CHECK(snap(h).cumulative_counts == std::vector<std::uint64_t>{0, 0, 1});
}

TEST_CASE("histogram with many bounds finds buckets by binary search", "[exporter]") {
  std::vector<double> bounds;
  for (int i = 1; i <= 100; ++i) bounds.push_back(i);
  Histogram h(bounds);
  h.observe(42);
  h.observe(42.5);
  h.observe(1000);
  const auto s = snap(h);
  CHECK(s.cumulative_counts[40] == 0);
  CHECK(s.cumulative_counts[41] == 1);
  CHECK(s.cumulative_counts[42] == 2);
  CHECK(s.cumulative_counts[100] == 3);
}

TEST_CASE("histogram rejects unsorted buckets", "[exporter]") {
  CHECK_THROWS_AS(Histogram({1, 3, 2}), std::invalid_argument);
  CHECK_THROWS_AS(Histogram({1, 1}), std::invalid_argument);
}

TEST_CASE("histogram rejects infinite and NaN buckets", "[exporter]") {
  CHECK_THROWS_AS(Histogram({1, std::numeric_limits<double>::infinity()}), std::invalid_argument);
  CHECK_THROWS_AS(Histogram({std::nan("")}), std::invalid_argument);
  CHECK(Histogram::check_bounds({0.5, 1}).empty());
  CHECK_FALSE(Histogram::check_bounds({}).empty());
}

TEST_CASE("histogram counts exactly when many threads observe one series", "[exporter]") {
  Histogram h({1, 2, 3});
  constexpr int kThreads = 8;
  constexpr int kPerThread = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < kPerThread; ++i) h.observe(static_cast<double>((i + t) % 4) + 0.5);
    });
  }
  for (auto& t : threads) t.join();
  const auto s = snap(h);
  CHECK(s.count == kThreads * kPerThread);
  CHECK(s.cumulative_counts[0] == kThreads * kPerThread / 4);
  CHECK(s.cumulative_counts[1] == kThreads * kPerThread / 2);
  // Every observation is a multiple of 0.5, so the sum is exact in a double.
  CHECK(s.sum == kThreads * (kPerThread / 4) * (0.5 + 1.5 + 2.5 + 3.5));
}

TEST_CASE("histogram keeps the latest exemplar of each bucket", "[exporter]") {
  Histogram h({1, 2});
  h.observe(0.5, "run_id", "a", 100);
  h.observe(0.7, "run_id", "b", 101);
  h.observe(1.5);
  const auto s = snap(h);
  REQUIRE(s.exemplars.size() == 3);
  REQUIRE(s.exemplars[0].has_value());
  CHECK(s.exemplars[0]->label_value == "b");
  CHECK(s.exemplars[0]->value == 0.7);
  CHECK(s.exemplars[0]->timestamp_seconds == 101);
  CHECK_FALSE(s.exemplars[1].has_value());
  CHECK(s.count == 3);
}

TEST_CASE("histogram limits an exemplar's labels to 128 characters", "[exporter]") {
  Histogram h({1});
  std::string utf8;
  for (int i = 0; i < 200; ++i) utf8 += "\xc3\xa9";  // é, two bytes, one character
  h.observe(0.5, "run_id", utf8, 0);
  auto s = snap(h);
  REQUIRE(s.exemplars[0].has_value());
  CHECK(s.exemplars[0]->label_value.size() == 2 * (128 - 6));
}

TEST_CASE("histogram without exemplars reports none", "[exporter]") {
  Histogram h({1});
  h.observe(0.5);
  CHECK(snap(h).exemplars.empty());
}
