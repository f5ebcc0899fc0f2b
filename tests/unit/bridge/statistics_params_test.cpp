#include "meshhook/bridge/statistics/statistics_params.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <random>
#include <string>

#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/statistics/execution_time_sketch.h"

using namespace meshhook::bridge;

namespace {

constexpr const char* kWorkflow = "0f8fad5b-d9cb-469f-a165-70867728950e";

// The parameters named by the errors of a query, in order.
std::vector<std::string> bad(std::string_view query) {
  std::vector<std::string> out;
  for (const auto& e : parse_statistics_params(query).errors) out.push_back(e.parameter);
  return out;
}

}  // namespace

TEST_CASE("statistics parameters default to the last 7 days of every terminal status",
          "[bridge][statistics]") {
  auto r = parse_statistics_params("");
  REQUIRE(r.ok());
  CHECK(r.params.workflow_ids.empty());
  CHECK_FALSE(r.params.start.given());
  CHECK_FALSE(r.params.end.given());
  CHECK(r.params.tz == "UTC");
  CHECK(r.params.statuses ==
        std::vector<std::string>{"succeeded", "failed", "canceled", "timeout"});
  CHECK(r.params.percentiles == std::vector<double>{50, 95, 99});
  CHECK(r.params.group_by == GroupBy::none);
  CHECK_FALSE(r.params.compare_previous);
  CHECK_FALSE(r.params.exact.has_value());
  CHECK(r.params.limit == 100);
}

TEST_CASE("statistics parameters accept every documented value", "[bridge][statistics]") {
  auto r = parse_statistics_params(
      "workflow_id=0F8FAD5B-D9CB-469F-A165-70867728950E,7c9e6679-7425-40de-944b-e07fc1f90ae7"
      "&workflow_id=0f8fad5b-d9cb-469f-a165-70867728950e"
      "&start_date=2024-05-01&end_date=2024-05-08T12:30:00.5%2B02:00&tz=Europe/Berlin"
      "&status=failed&status=timeout,failed&percentiles=99.9,50,90&group_by=day"
      "&compare=previous&exact=true&limit=10&cursor=" +
      encode_statistics_cursor(20));
  INFO((r.errors.empty() ? "" : r.errors.front().parameter + ": " + r.errors.front().reason));
  REQUIRE(r.ok());
  const auto& p = r.params;
  CHECK(p.workflow_ids == std::vector<std::string>{"0f8fad5b-d9cb-469f-a165-70867728950e",
                                                   "7c9e6679-7425-40de-944b-e07fc1f90ae7"});
  CHECK(p.start.date == "2024-05-01");
  // 12:30:00.5 at +02:00 is 10:30:00.5 UTC.
  CHECK(p.end.instant_us == parse_rfc3339("2024-05-08T10:30:00.500Z"));
  CHECK(p.tz == "Europe/Berlin");
  CHECK(p.statuses == std::vector<std::string>{"failed", "timeout"});
  CHECK(p.percentiles == std::vector<double>{50, 90, 99.9});
  CHECK(p.group_by == GroupBy::day);
  CHECK(p.compare_previous);
  CHECK(p.exact == true);
  CHECK(p.limit == 10);
  CHECK(p.offset == 20);
}

TEST_CASE("an unescaped plus in an offset reads as a plus", "[bridge][statistics]") {
  auto r = parse_statistics_params("start_date=2024-05-01T02:00:00+02:00");
  REQUIRE(r.ok());
  CHECK(r.params.start.instant_us == parse_rfc3339("2024-05-01T00:00:00Z"));
}

TEST_CASE("every bad statistics parameter is named in its own error", "[bridge][statistics]") {
  CHECK(bad("workflow_id=42") == std::vector<std::string>{"workflow_id"});
  CHECK(bad("workflow_id=") == std::vector<std::string>{"workflow_id"});
  CHECK(bad("start_date=yesterday") == std::vector<std::string>{"start_date"});
  CHECK(bad("start_date=2024-02-30") == std::vector<std::string>{"start_date"});
  CHECK(bad("end_date=2024-05-01T25:00:00Z") == std::vector<std::string>{"end_date"});
  CHECK(bad("end_date=2024-05-01T10:00:00") == std::vector<std::string>{"end_date"});  // no offset
  CHECK(bad("start_date=2024-05-02T00:00:00Z&end_date=2024-05-01T00:00:00Z") ==
        std::vector<std::string>{"end_date"});
  CHECK(bad("start_date=2020-01-01T00:00:00Z&end_date=2024-01-01T00:00:00Z") ==
        std::vector<std::string>{"end_date"});
  CHECK(bad("tz=Mars/Olympus_Mons") == std::vector<std::string>{"tz"});
  CHECK(bad("tz=../../etc/passwd") == std::vector<std::string>{"tz"});
  CHECK(bad("status=running") == std::vector<std::string>{"status"});
  CHECK(bad("percentiles=0") == std::vector<std::string>{"percentiles"});
  CHECK(bad("percentiles=100") == std::vector<std::string>{"percentiles"});
  CHECK(bad("percentiles=-5") == std::vector<std::string>{"percentiles"});
  CHECK(bad("percentiles=nan") == std::vector<std::string>{"percentiles"});
  CHECK(bad("percentiles=1e1") == std::vector<std::string>{"percentiles"});
  CHECK(bad("percentiles=1,2,3,4,5,6,7,8,9,10,11") == std::vector<std::string>{"percentiles"});
  CHECK(bad("group_by=month") == std::vector<std::string>{"group_by"});
  CHECK(bad("compare=next") == std::vector<std::string>{"compare"});
  CHECK(bad("exact=yes") == std::vector<std::string>{"exact"});
  CHECK(bad("limit=0") == std::vector<std::string>{"limit"});
  CHECK(bad("limit=1001") == std::vector<std::string>{"limit"});
  CHECK(bad("limit=ten") == std::vector<std::string>{"limit"});
  CHECK(bad("cursor=garbage!") == std::vector<std::string>{"cursor"});
  CHECK(bad("group_by=day&group_by=week") == std::vector<std::string>{"group_by"});
  CHECK(bad("workflow=abc") == std::vector<std::string>{"workflow"});
  CHECK(bad("tz=%zz") == std::vector<std::string>{"tz"});
}

TEST_CASE("several bad statistics parameters are all reported", "[bridge][statistics]") {
  CHECK(bad("limit=0&tz=Nowhere&status=paused&exact=1") ==
        std::vector<std::string>{"tz", "status", "exact", "limit"});
}

TEST_CASE("at most 100 workflows may be asked for", "[bridge][statistics]") {
  auto id = [](int i) {
    char buffer[40];
    std::snprintf(buffer, sizeof buffer, "00000000-0000-0000-0000-%012d", i);
    return std::string(buffer);
  };
  std::string q = "workflow_id=" + id(0);
  for (int i = 1; i < 100; ++i) q += "," + id(i);
  CHECK(parse_statistics_params(q).ok());
  CHECK(parse_statistics_params(q + "," + id(100)).errors.front().parameter == "workflow_id");
}

TEST_CASE("SQL injection attempts are bad values, never SQL", "[bridge][statistics]") {
  CHECK(bad("workflow_id=1'%20OR%20'1'='1") == std::vector<std::string>{"workflow_id"});
  CHECK(bad("status=succeeded');drop%20table%20execution_time_statistics;--") ==
        std::vector<std::string>{"status"});
  CHECK(bad("tz=UTC'%3B%20select%20pg_sleep(10)%3B--") == std::vector<std::string>{"tz"});
  CHECK(bad("group_by=day;delete") == std::vector<std::string>{"group_by"});
  CHECK(bad("start_date=2024-01-01'::date") == std::vector<std::string>{"start_date"});
  CHECK(bad("percentiles=50)%20union%20select%201--") == std::vector<std::string>{"percentiles"});
}

TEST_CASE("overlong statistics input is refused without echoing it", "[bridge][statistics]") {
  CHECK(bad(std::string(20000, 'a')) == std::vector<std::string>{"query"});
  CHECK(bad("tz=" + std::string(65, 'A')) == std::vector<std::string>{"tz"});
  CHECK(bad("cursor=" + std::string(100, 'A')) == std::vector<std::string>{"cursor"});
  auto r = parse_statistics_params(std::string(500, 'x') + "=1");
  REQUIRE(r.errors.size() == 1);
  CHECK(r.errors.front().parameter.size() <= 67);
  CHECK(r.errors.front().reason == "unknown parameter");
  // Bytes that are not printable ASCII never reach an error message.
  auto odd = parse_statistics_params("%FF%00=1");
  REQUIRE(odd.errors.size() == 1);
  CHECK(odd.errors.front().parameter == "??");
}

TEST_CASE("RFC 3339 instants round-trip through UTC", "[bridge][statistics]") {
  CHECK(format_rfc3339_utc(*parse_rfc3339("2024-02-29T23:59:59Z")) == "2024-02-29T23:59:59Z");
  CHECK(format_rfc3339_utc(*parse_rfc3339("2024-03-01T01:00:00.123456+01:00")) ==
        "2024-03-01T00:00:00.123456Z");
  CHECK(format_rfc3339_utc(0) == "1970-01-01T00:00:00Z");
  CHECK(format_rfc3339_utc(-1) == "1969-12-31T23:59:59.999999Z");
  CHECK_FALSE(parse_rfc3339("2023-02-29T00:00:00Z"));
  CHECK(percentile_key(99.9) == "99.9");
  CHECK(percentile_key(50) == "50");
}

TEST_CASE("the sketch answers every rank within 1 percent", "[bridge][statistics][sketch]") {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> d(std::log(300.0), 1.5);
  std::vector<std::int64_t> values;
  ExecutionTimeSketch a, b;
  for (int i = 0; i < 20000; ++i) {
    auto v = static_cast<std::int64_t>(std::llround(d(rng)));
    values.push_back(v);
    (i % 2 ? a : b).add(v);
  }
  a.merge(b);
  REQUIRE(a.count() == values.size());
  std::sort(values.begin(), values.end());
  for (std::size_t rank = 0; rank < values.size(); rank += 97) {
    const double exact = static_cast<double>(values[rank]);
    const double got = a.value_at_rank(rank);
    if (exact == 0) {
      CHECK(got == 0);
    } else {
      CHECK(std::abs(got - exact) <= 0.01 * exact);
    }
  }
}

TEST_CASE("the sketch reads Postgres's int4[][] text and answers small values exactly",
          "[bridge][statistics][sketch]") {
  ExecutionTimeSketch s;
  REQUIRE(s.add_pg_text("{{0,2},{35,1}}"));  // 1 ms twice, 2 ms once
  s.add_zeros(1);
  CHECK(s.count() == 4);
  CHECK(s.value_at_rank(0) == 0);
  CHECK(s.value_at_rank(1) == 1);
  CHECK(s.value_at_rank(3) == 2);
  CHECK(ExecutionTimeSketch::index_of(2) == 35);
  CHECK(s.percentile_cont(0.5) == 1);
  CHECK_FALSE(s.add_pg_text("{{1,2},{3}}"));
  CHECK_FALSE(s.add_pg_text("{{1,x}}"));
  CHECK(s.count() == 4);
}

TEST_CASE("queue-times measures the queue wait by default, or the time to start",
          "[bridge][statistics]") {
  auto r = parse_statistics_params("", StatisticsEndpoint::queue_times);
  REQUIRE(r.ok());
  CHECK(r.params.measure == Measure::queue_wait);
  CHECK(r.params.statuses.size() == 4);
  CHECK(all_statuses(r.params));
  r = parse_statistics_params("measure=start_wait&group_by=workflow",
                              StatisticsEndpoint::queue_times);
  REQUIRE(r.ok());
  CHECK(r.params.measure == Measure::start_wait);
  CHECK(parse_statistics_params("measure=runtime", StatisticsEndpoint::queue_times)
            .errors.front()
            .parameter == "measure");
  // Only queue-times knows it.
  CHECK(bad("measure=queue_wait") == std::vector<std::string>{"measure"});
  CHECK(parse_statistics_params("").params.measure == Measure::execution_time);
}

TEST_CASE("step-times takes exactly one workflow and the step statuses", "[bridge][statistics]") {
  const std::string wf = std::string("workflow_id=") + kWorkflow;
  auto r = parse_statistics_params(wf + "&status=failed", StatisticsEndpoint::step_times);
  REQUIRE(r.ok());
  CHECK(r.params.measure == Measure::step_duration);
  CHECK(r.params.statuses == std::vector<std::string>{"failed"});
  CHECK_FALSE(all_statuses(r.params));
  r = parse_statistics_params(wf, StatisticsEndpoint::step_times);
  CHECK(r.params.statuses == std::vector<std::string>{"succeeded", "failed"});
  CHECK(all_statuses(r.params));
  auto names = [](std::string_view q) {
    std::vector<std::string> out;
    for (const auto& e : parse_statistics_params(q, StatisticsEndpoint::step_times).errors) {
      out.push_back(e.parameter);
    }
    return out;
  };
  using Names = std::vector<std::string>;
  CHECK(names("") == Names{"workflow_id"});
  CHECK(names(wf + "," + "7c9e6679-7425-40de-944b-e07fc1f90ae7") == Names{"workflow_id"});
  CHECK(names(wf + "&status=timeout") == Names{"status"});
  for (const char* other : {"percentiles=50", "group_by=day", "compare=previous", "limit=5",
                            "cursor=x", "measure=queue_wait"}) {
    INFO(other);
    CHECK(names(wf + "&" + other).size() == 1);
  }
}
