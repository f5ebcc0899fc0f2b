#include "meshhook/exporter/exposition.h"

#include <zlib.h>

#include <catch2/catch.hpp>
#include <limits>
#include <string>
#include <vector>

#include "meshhook/exporter/registry.h"

using namespace meshhook::exporter;
using Catch::Matchers::Contains;
using Catch::Matchers::EndsWith;

namespace {

std::string render(const std::vector<FamilySnapshot>& fs, ExpositionFormat f) {
  std::string out;
  serialize(out, fs, f);
  return out;
}

FamilySnapshot gauge(std::string name, double v) {
  FamilySnapshot f;
  f.name = std::move(name);
  f.type = MetricType::gauge;
  f.series.emplace_back().value = v;
  return f;
}

FamilySnapshot histogram() {
  FamilySnapshot f;
  f.name = "req_seconds";
  f.help = "Request time.";
  f.unit = "seconds";
  f.type = MetricType::histogram;
  f.label_names = {"route"};
  f.bounds = {0.01, 1, 2.5, 1e6};
  auto& s = f.series.emplace_back();
  s.label_values = {"/a"};
  s.cumulative_counts = {1, 2, 2, 3, 4};
  s.sum = 12.5;
  s.count = 4;
  s.exemplars.resize(5);
  s.exemplars[1] = Exemplar{"run_id", "r-1", 0.5, 1700000000.123};
  return f;
}

std::string gunzip(const std::string& in) {
  z_stream zs{};
  REQUIRE(inflateInit2(&zs, 15 + 16) == Z_OK);
  std::string out(in.size() * 20 + 1024, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = inflate(&zs, Z_FINISH);
  out.resize(zs.total_out);
  inflateEnd(&zs);
  REQUIRE(rc == Z_STREAM_END);
  return out;
}

}  // namespace

TEST_CASE("text format writes histogram buckets, sum and count", "[exporter]") {
  const auto text = render({histogram()}, ExpositionFormat::prometheus_text);
  CHECK(text ==
        "# HELP req_seconds Request time.\n"
        "# TYPE req_seconds histogram\n"
        "req_seconds_bucket{route=\"/a\",le=\"0.01\"} 1\n"
        "req_seconds_bucket{route=\"/a\",le=\"1\"} 2\n"
        "req_seconds_bucket{route=\"/a\",le=\"2.5\"} 2\n"
        "req_seconds_bucket{route=\"/a\",le=\"1e+06\"} 3\n"
        "req_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
        "req_seconds_sum{route=\"/a\"} 12.5\n"
        "req_seconds_count{route=\"/a\"} 4\n");
}

TEST_CASE("OpenMetrics writes units, canonical le values, exemplars and EOF", "[exporter]") {
  const auto om = render({histogram()}, ExpositionFormat::openmetrics);
  CHECK(om ==
        "# HELP req_seconds Request time.\n"
        "# TYPE req_seconds histogram\n"
        "# UNIT req_seconds seconds\n"
        "req_seconds_bucket{route=\"/a\",le=\"0.01\"} 1\n"
        "req_seconds_bucket{route=\"/a\",le=\"1.0\"} 2 # {run_id=\"r-1\"} 0.5 1700000000.123\n"
        "req_seconds_bucket{route=\"/a\",le=\"2.5\"} 2\n"
        "req_seconds_bucket{route=\"/a\",le=\"1e+06\"} 3\n"
        "req_seconds_bucket{route=\"/a\",le=\"+Inf\"} 4\n"
        "req_seconds_count{route=\"/a\"} 4\n"
        "req_seconds_sum{route=\"/a\"} 12.5\n"
        "# EOF\n");
}

TEST_CASE("OpenMetrics names counter families without _total", "[exporter]") {
  FamilySnapshot c;
  c.name = "sent_bytes_total";
  c.help = "Bytes.";
  c.unit = "bytes";
  c.type = MetricType::counter;
  c.series.emplace_back().value = 3;
  const auto om = render({c}, ExpositionFormat::openmetrics);
  CHECK(om ==
        "# HELP sent_bytes Bytes.\n"
        "# TYPE sent_bytes counter\n"
        "# UNIT sent_bytes bytes\n"
        "sent_bytes_total 3.0\n"
        "# EOF\n");
  const auto text = render({c}, ExpositionFormat::prometheus_text);
  CHECK(text ==
        "# HELP sent_bytes_total Bytes.\n"
        "# TYPE sent_bytes_total counter\n"
        "sent_bytes_total 3\n");
}

TEST_CASE("exposition escapes help text and label values", "[exporter]") {
  FamilySnapshot g = gauge("g", 1);
  g.help = "a \\ b\nc \"q\"";
  g.label_names = {"l"};
  g.series[0].label_values = {"x\\y\"z\nw"};
  CHECK_THAT(render({g}, ExpositionFormat::prometheus_text),
             Contains("# HELP g a \\\\ b\\nc \"q\"\n") && Contains("g{l=\"x\\\\y\\\"z\\nw\"} 1\n"));
  CHECK_THAT(
      render({g}, ExpositionFormat::openmetrics),
      Contains("# HELP g a \\\\ b\\nc \\\"q\\\"\n") && Contains("g{l=\"x\\\\y\\\"z\\nw\"} 1.0\n"));
}

TEST_CASE("exposition spells special and large numbers as the formats do", "[exporter]") {
  const std::vector<FamilySnapshot> fs = {gauge("a", std::numeric_limits<double>::quiet_NaN()),
                                          gauge("b", std::numeric_limits<double>::infinity()),
                                          gauge("c", -std::numeric_limits<double>::infinity()),
                                          gauge("d", 1700000000.5),
                                          gauge("e", 0.1),
                                          gauge("f", 0),
                                          gauge("g", 123456)};
  const auto text = render(fs, ExpositionFormat::prometheus_text);
  CHECK_THAT(text, Contains("\na NaN\n") && Contains("\nb +Inf\n") && Contains("\nc -Inf\n") &&
                       Contains("\nd 1.7000000005e+09\n") && Contains("\ne 0.1\n") &&
                       Contains("\nf 0\n") && Contains("\ng 123456\n"));
  const auto om = render(fs, ExpositionFormat::openmetrics);
  CHECK_THAT(om, Contains("\na NaN\n") && Contains("\nb +Inf\n") && Contains("\nf 0.0\n") &&
                     Contains("\ng 123456.0\n") && EndsWith("# EOF\n"));
}

TEST_CASE("exposition renders label values when no prefix was precomputed", "[exporter]") {
  FamilySnapshot g = gauge("g", 2);
  g.label_names = {"a", "b"};
  g.series[0].label_values = {"1", "2"};
  CHECK_THAT(render({g}, ExpositionFormat::prometheus_text), Contains("g{a=\"1\",b=\"2\"} 2\n"));
}

TEST_CASE("exposition of a registry matches for families with no series", "[exporter]") {
  Registry r;
  const auto text = render(r.collect(), ExpositionFormat::prometheus_text);
  CHECK(text ==
        "# HELP meshhook_stats_series_dropped_total Label sets folded into __other__ by the "
        "per-family series cap.\n"
        "# TYPE meshhook_stats_series_dropped_total counter\n");
}

TEST_CASE("negotiation picks OpenMetrics for Prometheus 2.42's Accept header", "[exporter]") {
  CHECK(negotiate_format("application/openmetrics-text;version=1.0.0,application/"
                         "openmetrics-text;version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,"
                         "*/*;q=0.1") == ExpositionFormat::openmetrics);
  CHECK(negotiate_format("application/openmetrics-text") == ExpositionFormat::openmetrics);
  CHECK(negotiate_format("Application/OpenMetrics-Text; version=1.0.0; q=0.9, text/plain;q=0.5") ==
        ExpositionFormat::openmetrics);
}

TEST_CASE("negotiation falls back to the text format", "[exporter]") {
  CHECK(negotiate_format("") == ExpositionFormat::prometheus_text);
  CHECK(negotiate_format("*/*") == ExpositionFormat::prometheus_text);
  CHECK(negotiate_format("text/plain;version=0.0.4") == ExpositionFormat::prometheus_text);
  CHECK(negotiate_format("application/openmetrics-text;version=0.0.1") ==
        ExpositionFormat::prometheus_text);
  CHECK(negotiate_format("application/openmetrics-text;q=0.5,text/plain") ==
        ExpositionFormat::prometheus_text);
  CHECK(negotiate_format("application/openmetrics-text;q=0") == ExpositionFormat::prometheus_text);
}

TEST_CASE("content types name the format versions", "[exporter]") {
  CHECK(content_type(ExpositionFormat::prometheus_text) ==
        "text/plain; version=0.0.4; charset=utf-8");
  CHECK(content_type(ExpositionFormat::openmetrics) ==
        "application/openmetrics-text; version=1.0.0; charset=utf-8");
}

TEST_CASE("gzip is accepted unless refused with q=0", "[exporter]") {
  CHECK(accepts_gzip("gzip"));
  CHECK(accepts_gzip("deflate, gzip;q=1.0, *;q=0.5"));
  CHECK(accepts_gzip("GZIP"));
  CHECK(accepts_gzip("*"));
  CHECK_FALSE(accepts_gzip(""));
  CHECK_FALSE(accepts_gzip("identity"));
  CHECK_FALSE(accepts_gzip("gzip;q=0"));
  CHECK_FALSE(accepts_gzip("gzip; q=0.000, *"));
  CHECK_FALSE(accepts_gzip("*;q=0"));
}

TEST_CASE("gzip output inflates back to the input", "[exporter]") {
  std::string input;
  for (int i = 0; i < 10000; ++i) input += "metric_bucket{le=\"" + std::to_string(i) + "\"} 1\n";
  const std::string zipped = gzip(input);
  REQUIRE(zipped.size() > 10);
  CHECK(static_cast<unsigned char>(zipped[0]) == 0x1f);
  CHECK(static_cast<unsigned char>(zipped[1]) == 0x8b);
  CHECK(zipped.size() < input.size() / 4);
  CHECK(gunzip(zipped) == input);
  CHECK(gunzip(gzip("")).empty());
}

TEST_CASE("select_series keeps one tenant's series and drops families without the label",
          "[exporter]") {
  Registry registry;
  auto& runs = registry.add_counter(
      {.name = "runs_total", .help = "Runs.", .label_names = {"tenant", "status"}});
  runs.with({"a", "ok"}).inc(2);
  runs.with({"b", "ok"}).inc(5);
  runs.with({"a", "failed"}).inc(1);
  registry.add_gauge({.name = "only_b", .help = "B only.", .label_names = {"tenant"}})
      .with({"b"})
      .set(1);
  registry.add_gauge({.name = "build_info", .help = "Build."}).with({}).set(1);

  const auto a = select_series(registry.collect(), "tenant", "a");
  REQUIRE(a.size() == 1);
  CHECK(a[0].name == "runs_total");
  REQUIRE(a[0].series.size() == 2);
  for (const auto& s : a[0].series) CHECK(s.label_values[0] == "a");
  const auto text = render(a, ExpositionFormat::prometheus_text);
  CHECK_THAT(text, Contains(R"(runs_total{tenant="a",status="ok"} 2)"));
  CHECK_THAT(text, Contains(R"(runs_total{tenant="a",status="failed"} 1)"));
  CHECK(text.find("tenant=\"b\"") == std::string::npos);
  CHECK(text.find("build_info") == std::string::npos);

  CHECK(select_series(registry.collect(), "tenant", "nobody").empty());
  CHECK(select_series(registry.collect(), "no_such_label", "a").empty());
}
