// The statistics endpoint against a real Postgres: rollups agree with the rows, sketch
// percentiles stay within 1 % of percentile_cont, exact mode is percentile_cont, and the
// documented parameters behave.

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "db_support.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/compactor.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/bridge/storage/migrations.h"
#include "statistics_support.h"

using meshhook::testing::check_close;
using meshhook::testing::kBase;
using meshhook::testing::kProject;
using meshhook::testing::sql_double;
using meshhook::testing::StatsDb;
using meshhook::testing::TestDatabase;
using nlohmann::json;
namespace bridge = meshhook::bridge;

namespace {

constexpr const char* kWorkflow = "aaaaaaaa-0000-0000-0000-000000000001";

// Inserts n runs of one workflow whose finished_at spreads evenly over [from, from + days)
// and whose durations come from the SQL expression `value` (u1, u2: uniform in (0, 1]).
void insert_runs(const TestDatabase& db, const std::string& workflow, int n,
                 const std::string& from, int days, const std::string& value,
                 const std::string& status = "succeeded", double seed = 0.42) {
  db.exec("select setseed(" + std::to_string(seed) +
          ");"
          "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
          " started_at, finished_at, execution_time_ms)"
          " select gen_random_uuid(), '" +
          std::string(kProject) + "', '" + workflow + "', '" + status +
          "', f - v * interval '1 millisecond', f, v from ("
          "  select timestamptz '" +
          from + "' + (i::float8 / " + std::to_string(n) + ") * " + std::to_string(days) +
          " * interval '1 day' as f,"
          "    greatest(0, least(1000000000, round(" +
          value +
          ")))::bigint as v"
          "  from (select i, 1 - random() as u1, 1 - random() as u2"
          "        from generate_series(0, " +
          std::to_string(n - 1) + ") as i) as g) as r");
}

std::string row_filter(const std::string& start, const std::string& end) {
  return " from execution_time_statistics where finished_at >= '" + start +
         "' and finished_at < '" + end + "'";
}

}  // namespace

TEST_CASE("rollups agree exactly with the rows through inserts, replays, updates and deletes",
          "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  insert_runs(db, kWorkflow, 3000, "2024-03-01T00:00:00Z", 3,
              "exp(6 + 1.2 * sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))");
  insert_runs(db, "aaaaaaaa-0000-0000-0000-000000000002", 500, "2024-03-01T12:00:00Z", 1, "0",
              "failed");
  insert_runs(db, kWorkflow, 2000, "2024-03-02T06:30:00Z", 2, "10 + 90 * u1", "timeout", 0.7);
  // A replay of existing run ids adds nothing (the writer's ON CONFLICT DO NOTHING).
  db.exec(
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms)"
      " select run_id, project_id, workflow_id, status, started_at, finished_at, 99999"
      " from execution_time_statistics where id % 7 = 0 on conflict (run_id) do nothing");
  db.exec("delete from execution_time_statistics where id % 11 = 0");
  db.exec(
      "update execution_time_statistics set finished_at = finished_at + interval '5 hours'"
      " where id % 13 = 0");

  for (const std::string table : {"execution_time_rollups", "execution_time_rollups_daily"}) {
    const std::string unit = table == "execution_time_rollups" ? "hour" : "day";
    const std::string from_rows =
        "select project_id, workflow_id, status, date_trunc('" + unit +
        "', finished_at, 'UTC') as b, count(*) as n, sum(execution_time_ms) as s,"
        " min(execution_time_ms) as lo, max(execution_time_ms) as hi,"
        " count(*) filter (where execution_time_ms = 0) as z"
        " from execution_time_statistics group by 1, 2, 3, 4";
    const std::string from_rollups =
        "select project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms,"
        " max_ms, zero_count from " +
        table;
    INFO(table);
    CHECK(db.scalar("select count(*) from (" + from_rows + " except " + from_rollups + ") d") == 0);
    CHECK(db.scalar("select count(*) from (" + from_rollups + " except " + from_rows + ") d") == 0);
    // The sketch holds every non-zero run.
    CHECK(db.scalar("select count(*) from " + table +
                    " r where run_count - zero_count <> coalesce((select sum(r.sketch[k][2])"
                    " from generate_subscripts(r.sketch, 1) k), 0)") == 0);
  }
  CHECK(db.scalar("select count(*) from execution_time_rollups") > 0);
}

TEST_CASE("sketch percentiles are within 1 percent of percentile_cont", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  // Edges off the hour, so daily rollups, hourly rollups and rows all take part.
  const std::string start = "2024-03-01T05:17:00Z";
  const std::string end = "2024-03-10T19:43:00Z";
  const std::string query = "workflow_id=" + std::string(kWorkflow) + "&start_date=" + start +
                            "&end_date=" + end + "&percentiles=1,10,25,50,75,90,95,99,99.9";
  struct Shape {
    const char* name;
    const char* value;
  };
  for (auto shape : {Shape{"lognormal", "exp(ln(500) + sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))"},
                     Shape{"bimodal",
                           "case when u1 < 0.5 then 100 + 10 * sqrt(-2 * ln(u2))"
                           " else 5000 + 300 * sqrt(-2 * ln(u2)) end"},
                     Shape{"constant", "1234"}, Shape{"heavy-tailed", "10 / power(u1, 1 / 1.1)"}}) {
    SECTION(shape.name) {
      StatsDb s(server);
      insert_runs(s.db, kWorkflow, 30000, "2024-03-01T00:00:00Z", 11, shape.value);
      auto sketch = s.get(query + "&exact=false");
      auto exact = s.get(query + "&exact=true");
      CHECK(sketch["accuracy"] == json({{"method", "sketch"}, {"max_relative_error", 0.01}}));
      CHECK(exact["accuracy"] == json({{"method", "exact"}, {"max_relative_error", 0}}));
      const auto& g = sketch["groups"][0];
      const auto& e = exact["groups"][0];
      const auto rows = row_filter(start, end);
      // count, min, max and avg are exact either way.
      CHECK(g["count"].get<long long>() == s.db.scalar("select count(*)" + rows));
      CHECK(g["count"] == e["count"]);
      CHECK(g["min"] == e["min"]);
      CHECK(g["max"] == e["max"]);
      CHECK(g["avg"] == e["avg"]);
      for (const auto& [key, value] : e["percentiles"].items()) {
        const double p = std::stod(key) / 100.0;
        const double pg =
            sql_double(s.db, "select percentile_cont(" + std::to_string(p) +
                                 ") within group (order by execution_time_ms)" + rows);
        INFO(shape.name << " p" << key);
        check_close(value.get<double>(), pg, 1e-9);  // exact mode is percentile_cont
        check_close(g["percentiles"][key].get<double>(), pg, 0.01);
      }
      check_close(g["median"].get<double>(), e["median"].get<double>(), 0.01);
      check_close(g["p95"].get<double>(), e["p95"].get<double>(), 0.01);
      check_close(g["p99"].get<double>(), e["p99"].get<double>(), 0.01);
    }
  }
}

TEST_CASE("compacted rollups answer as the rows do, across edges and groupings",
          "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  const std::string other = "aaaaaaaa-0000-0000-0000-000000000002";
  insert_runs(s.db, kWorkflow, 20000, "2024-03-01T00:00:00Z", 11,
              "exp(ln(500) + sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))");
  insert_runs(s.db, kWorkflow, 3000, "2024-03-01T03:00:00Z", 9, "0", "failed", 0.3);
  insert_runs(s.db, other, 8000, "2024-03-01T00:00:00Z", 11, "10 + 90 * u1", "timeout", 0.7);
  // Compacted, so that the answers come from the levels' sketches as text (0018); pending
  // deltas are printed as they are read.
  while (bridge::Compactor::compact_once(s.db.url(), 100000) > 0) {
  }
  REQUIRE(s.db.scalar("select count(*) from execution_time_rollup_deltas") == 0);
  REQUIRE(s.db.scalar("select count(*) from execution_time_rollups_weekly_all_compacted") > 0);

  struct Range {
    const char* start;
    const char* end;
  };
  // Whole weeks, days and hours with rows at both edges; no whole day; within one day; whole
  // days only.
  for (auto r : {Range{"2024-03-01T05:17:00Z", "2024-03-10T19:43:00Z"},
                 Range{"2024-03-02T13:59:30Z", "2024-03-03T08:10:00Z"},
                 Range{"2024-03-04T01:00:00Z", "2024-03-04T23:00:00Z"},
                 Range{"2024-03-01T00:00:00Z", "2024-03-11T00:00:00Z"}}) {
    for (const std::string group : {"none", "workflow", "day", "status"}) {
      const std::string q = std::string("start_date=") + r.start + "&end_date=" + r.end +
                            "&group_by=" + group + "&workflow_id=" + kWorkflow + "," + other;
      auto sketch = s.get(q + "&exact=false");
      auto exact = s.get(q + "&exact=true");
      INFO(q);
      REQUIRE(sketch["groups"].size() == exact["groups"].size());
      long long total = 0;
      for (std::size_t i = 0; i < exact["groups"].size(); ++i) {
        const auto& g = sketch["groups"][i];
        const auto& e = exact["groups"][i];
        for (const char* key : {"workflow_id", "status", "bucket_start"}) {
          CHECK(g.value(key, json()) == e.value(key, json()));
        }
        CHECK(g["count"] == e["count"]);
        CHECK(g["min"] == e["min"]);
        CHECK(g["max"] == e["max"]);
        CHECK(g["avg"] == e["avg"]);
        for (const char* p : {"median", "p95", "p99"}) {
          check_close(g[p].get<double>(), e[p].get<double>(), 0.01);
        }
        total += g["count"].get<long long>();
      }
      CHECK(total == s.db.scalar("select count(*)" + row_filter(r.start, r.end)));
    }
  }
}

TEST_CASE("exact mode equals percentile_cont per workflow and status", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  const std::string w2 = "aaaaaaaa-0000-0000-0000-000000000002";
  insert_runs(s.db, kWorkflow, 4000, "2024-04-01T00:00:00Z", 5,
              "exp(6 + sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))");
  insert_runs(s.db, w2, 1500, "2024-04-01T00:00:00Z", 5, "200 * u1", "failed", 0.3);
  auto r = s.get(
      "start_date=2024-04-01&end_date=2024-04-06&group_by=workflow&exact=true"
      "&workflow_id=" +
      std::string(kWorkflow) + "," + w2);
  REQUIRE(r["groups"].size() == 2);
  for (const auto& g : r["groups"]) {
    const std::string wf = g["workflow_id"];
    const std::string rows = " from execution_time_statistics where workflow_id = '" + wf + "'";
    CHECK(g["count"].get<long long>() == s.db.scalar("select count(*)" + rows));
    CHECK(g["min"].get<long long>() == s.db.scalar("select min(execution_time_ms)" + rows));
    CHECK(g["max"].get<long long>() == s.db.scalar("select max(execution_time_ms)" + rows));
    for (auto [key, p] : {std::pair{"median", 0.5}, {"p95", 0.95}, {"p99", 0.99}}) {
      check_close(g[key].get<double>(),
                  sql_double(s.db, "select percentile_cont(" + std::to_string(p) +
                                       ") within group (order by execution_time_ms)" + rows),
                  1e-9);
    }
  }
  auto by_status = s.get("start_date=2024-04-01&end_date=2024-04-06&group_by=status&exact=true");
  REQUIRE(by_status["groups"].size() == 2);
  CHECK(by_status["groups"][0]["status"] == "failed");
  CHECK(by_status["groups"][0]["count"] == 1500);
  CHECK(by_status["groups"][1]["status"] == "succeeded");
  CHECK(s.get("start_date=2024-04-01&end_date=2024-04-06&status=failed")["groups"][0]["count"] ==
        1500);
}

TEST_CASE("group_by=day cuts days at midnight in tz, across a DST change", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  // New York: EST (-05:00) until 2024-03-10 07:00 UTC, then EDT (-04:00).
  s.db.exec(
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms)"
      " select gen_random_uuid(), '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'succeeded', f, f, v from (values"
      " (timestamptz '2024-03-09T04:30:00Z', 10),"  // Mar 8, 23:30 EST
      " (timestamptz '2024-03-09T05:30:00Z', 20),"  // Mar 9, 00:30 EST
      " (timestamptz '2024-03-10T04:59:00Z', 30),"  // Mar 9, 23:59 EST
      " (timestamptz '2024-03-10T05:00:00Z', 40),"  // Mar 10, 00:00 EST
      " (timestamptz '2024-03-11T03:59:00Z', 50),"  // Mar 10, 23:59 EDT
      " (timestamptz '2024-03-11T04:00:00Z', 60)"   // Mar 11, 00:00 EDT
      ") as t(f, v)");
  const std::string range = "start_date=2024-03-08&end_date=2024-03-12";
  const std::string q = range + "&group_by=day";
  for (const std::string exact : {"true", "false"}) {
    auto r = s.get(q + "&tz=America/New_York&exact=" + exact);
    INFO("exact=" << exact);
    CHECK(r["filters"]["start"] == "2024-03-08T05:00:00Z");
    CHECK(r["filters"]["end"] == "2024-03-12T04:00:00Z");
    CHECK(r["accuracy"]["method"] == (exact == "true" ? "exact" : "sketch"));
    REQUIRE(r["groups"].size() == 4);
    const json expected = {{"2024-03-08T05:00:00Z", 1, 10},
                           {"2024-03-09T05:00:00Z", 2, 25},
                           {"2024-03-10T05:00:00Z", 2, 45},
                           {"2024-03-11T04:00:00Z", 1, 60}};
    for (std::size_t i = 0; i < 4; ++i) {
      CHECK(r["groups"][i]["bucket_start"] == expected[i][0]);
      CHECK(r["groups"][i]["count"] == expected[i][1]);
      CHECK(r["groups"][i]["avg"] == expected[i][2]);
    }
  }
  // UTC days differ: the same runs fall on other days.
  auto utc = s.get(q + "&exact=false");
  REQUIRE(utc["groups"].size() == 3);
  CHECK(utc["groups"][0]["bucket_start"] == "2024-03-09T00:00:00Z");
  CHECK(utc["groups"][0]["count"] == 2);
  // A zone half an hour off UTC cannot use hourly rollups: answered from the rows.
  auto kolkata = s.get(q + "&tz=Asia/Kolkata&exact=false");
  CHECK(kolkata["accuracy"]["method"] == "exact");
  CHECK(kolkata["filters"]["start"] == "2024-03-07T18:30:00Z");
  // Hours and weeks too.
  CHECK(s.get(range + "&tz=America/New_York&group_by=hour")["groups"].size() == 6);
  auto week = s.get(range + "&tz=America/New_York&group_by=week");
  REQUIRE(week["groups"].size() == 2);  // weeks start on Monday: Mar 4 and Mar 11
  CHECK(week["groups"][0]["bucket_start"] == "2024-03-04T05:00:00Z");
  CHECK(week["groups"][0]["count"] == 5);
}

TEST_CASE("compare=previous reports the preceding period and the change", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  insert_runs(s.db, kWorkflow, 100, "2024-05-01T00:00:00Z", 1, "100");
  insert_runs(s.db, kWorkflow, 150, "2024-05-02T00:00:00Z", 1, "150");
  auto r = s.get("start_date=2024-05-02&end_date=2024-05-03&compare=previous");
  CHECK(r["groups"][0]["count"] == 150);
  CHECK(r["previous"]["start"] == "2024-05-01T00:00:00Z");
  CHECK(r["previous"]["end"] == "2024-05-02T00:00:00Z");
  CHECK(r["previous"]["groups"][0]["count"] == 100);
  CHECK(r["change_percent"]["count"] == 50.0);
  CHECK(r["change_percent"]["avg"] == 50.0);
  CHECK(r["change_percent"]["median"] == 50.0);
  // Per group when grouped.
  auto w = s.get("start_date=2024-05-02&end_date=2024-05-03&compare=previous&group_by=workflow");
  CHECK(w["change_percent"].is_null());
  CHECK(w["groups"][0]["change_percent"]["p95"] == 50.0);
  auto none = s.get("start_date=2024-05-02&end_date=2024-05-03");
  CHECK(none["previous"].is_null());
  CHECK(none["change_percent"].is_null());
}

TEST_CASE("an empty range answers count 0 and nulls", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  for (const std::string exact : {"true", "false"}) {
    auto r = s.get("start_date=2020-01-01&end_date=2020-02-01&compare=previous&exact=" + exact);
    REQUIRE(r["groups"].size() == 1);
    const auto& g = r["groups"][0];
    CHECK(g["count"] == 0);
    for (auto key :
         {"avg", "min", "max", "median", "p95", "p99", "workflow_id", "status", "bucket_start"}) {
      CHECK(g[key].is_null());
    }
    CHECK(g["percentiles"] == json({{"50", nullptr}, {"95", nullptr}, {"99", nullptr}}));
    CHECK(r["change_percent"]["count"].is_null());
    CHECK(s.get("start_date=2020-01-01&end_date=2020-02-01&group_by=day")["groups"].empty());
    auto h = s.get("start_date=2020-01-01&end_date=2020-02-01", std::string(kBase) + "/histogram");
    CHECK(h["buckets"].empty());
    CHECK(h["count"] == 0);
  }
}

TEST_CASE("histogram counts add up to the count", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server, 1000);  // small: the default choice goes to the rollups here
  insert_runs(s.db, kWorkflow, 5000, "2024-06-01T00:00:00Z", 3,
              "exp(5 + 2 * sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))");
  const std::string q = "start_date=2024-06-01T03:30:00Z&end_date=2024-06-03T20:00:00Z";
  const auto count = s.get(q)["groups"][0]["count"].get<long long>();
  CHECK(s.get(q)["accuracy"]["method"] == "sketch");
  for (const std::string exact : {"", "&exact=true", "&exact=false"}) {
    auto h = s.get(q + exact, std::string(kBase) + "/histogram");
    long long sum = 0;
    double previous_upper = -1;
    for (const auto& b : h["buckets"]) {
      sum += b["count"].get<long long>();
      CHECK(b["lower"].get<double>() >= previous_upper);
      CHECK(b["upper"].get<double>() > b["lower"].get<double>());
      previous_upper = b["upper"].get<double>();
    }
    CHECK(sum == count);
    CHECK(h["count"] == count);
  }
  // Exact bucket counts are what the rows say.
  auto h = s.get(q + "&exact=true", std::string(kBase) + "/histogram");
  for (const auto& b : h["buckets"]) {
    CHECK(b["count"].get<long long>() ==
          s.db.scalar("select count(*)" +
                      row_filter("2024-06-01T03:30:00Z", "2024-06-03T20:00:00Z") +
                      " and execution_time_ms >= " + std::to_string(b["lower"].get<long long>()) +
                      " and execution_time_ms < " + std::to_string(b["upper"].get<long long>())));
  }
}

TEST_CASE("groups page with limit and cursor", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  for (int i = 1; i <= 5; ++i) {
    insert_runs(s.db, "aaaaaaaa-0000-0000-0000-00000000000" + std::to_string(i), 10,
                "2024-07-01T00:00:00Z", 1, std::to_string(i * 10));
  }
  std::vector<std::string> seen;
  std::string cursor;
  for (int page = 0; page < 5; ++page) {
    auto r = s.get("start_date=2024-07-01&end_date=2024-07-02&group_by=workflow&limit=2" +
                   (cursor.empty() ? "" : "&cursor=" + cursor));
    for (const auto& g : r["groups"]) seen.push_back(g["workflow_id"]);
    if (r["next_cursor"].is_null()) break;
    cursor = r["next_cursor"];
  }
  CHECK(seen.size() == 5);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
}

TEST_CASE("statistics errors: 400 naming the parameter, 405, 404, 503", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  auto bad = s.raw(kBase, "limit=0&tz=Nowhere/Atlantis");
  CHECK(bad.status == 400);
  auto body = json::parse(bad.body);
  CHECK(body["error"] == "invalid_parameter");
  CHECK(body["details"] ==
        json::array(
            {{{"parameter", "tz"}, {"reason", "not an IANA time zone name (e.g. Europe/Berlin)"}},
             {{"parameter", "limit"}, {"reason", "must be an integer from 1 to 1000"}}}));
  // A date that is only invalid once resolved: end before start.
  auto order = s.raw(kBase, "start_date=2024-05-02&end_date=2024-05-01");
  CHECK(order.status == 400);
  CHECK(json::parse(order.body)["details"][0]["parameter"] == "end_date");
  CHECK(s.raw(kBase + std::string("/other"), "").status == 404);
  bridge::HttpRequest post;
  post.method = "POST";
  post.path = kBase;
  CHECK(s.api.handle(post, {}).status == 405);

  // Nothing listens on port 1: the pool cannot connect.
  bridge::ConnectionPool dead(meshhook::testing::with_host_port(s.db.url(), "127.0.0.1:1"), 1);
  bridge::StatisticsApi api(dead);
  bridge::HttpRequest r;
  r.method = "GET";
  r.path = kBase;
  auto down = api.handle(r, {});
  CHECK(down.status == 503);
  CHECK(json::parse(down.body)["error"] == "database_unavailable");
}

TEST_CASE("a lost connection answers 503 and is not reused", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  CHECK(s.raw(kBase, "").status == 200);
  REQUIRE(s.pool.open() == 1);
  // Kill the pooled connection's backend from outside.
  s.db.exec(
      "select pg_terminate_backend(pid) from pg_stat_activity where datname = current_database()"
      " and pid <> pg_backend_pid()");
  CHECK(s.raw(kBase, "").status == 503);
  CHECK(s.pool.open() == 0);
  CHECK(s.raw(kBase, "").status == 200);
}

TEST_CASE("a caller sees only the projects in their claims", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  insert_runs(s.db, kWorkflow, 500, "2024-05-01T00:00:00Z", 1, "100");
  const std::string q = "start_date=2024-05-01&end_date=2024-05-02";
  for (const std::string exact : {"&exact=true", "&exact=false"}) {
    auto mine = s.raw(kBase, q + exact);
    CHECK(json::parse(mine.body)["groups"][0]["count"] == 500);
    auto theirs = s.raw(kBase, q + exact, "22222222-2222-2222-2222-222222222222");
    REQUIRE(theirs.status == 200);
    CHECK(json::parse(theirs.body)["groups"][0]["count"] == 0);
    auto h =
        s.raw(kBase + std::string("/histogram"), q + exact, "22222222-2222-2222-2222-222222222222");
    CHECK(json::parse(h.body)["count"] == 0);
  }
}

TEST_CASE("the query runs read-only with the caller's claims", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  auto lease = s.pool.acquire();
  pqxx::work tx(lease.connection());
  // Session state does not leak: set_config(..., true) is local to the request's transaction.
  CHECK(tx.exec1("select coalesce(current_setting('request.jwt.claims', true), '')")[0]
            .as<std::string>() == "");
}

// A request runs each statement in one message that sets the caller first (no BEGIN/COMMIT):
// every statement of every kind of request, the range, groups, the previous period, the
// histogram, the names, reads as the caller, and none leaves a setting on the connection.
TEST_CASE("every statement of a request reads as the caller and leaves the connection as it was",
          "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server, 100);
  insert_runs(s.db, kWorkflow, 500, "2024-05-01T00:00:00Z", 2, "100");
  insert_runs(s.db, kWorkflow, 100, "2024-04-29T00:00:00Z", 2, "50");  // the previous period
  s.db.exec(std::string("insert into execution_time_workflows (workflow_id, project_id, name)"
                        " values ('") +
            kWorkflow + "', '" + kProject + "', 'nightly import')");
  const std::string other = "22222222-2222-2222-2222-222222222222";
  const std::string w = std::string("workflow_id=") + kWorkflow;
  struct Ask {
    std::string path, query;
    std::uint64_t count;  // the owner's
  };
  const std::vector<Ask> asks = {
      // Two instants in UTC (resolved without a statement), then dates (resolved by one).
      {kBase,
       w + "&start_date=2024-05-01T00:00:00Z&end_date=2024-05-03T00:00:00Z&group_by=workflow"
           "&compare=previous",
       500},
      // Berlin's midnights are 22:00 UTC the day before (summer time).
      {kBase, w + "&start_date=2024-05-01&end_date=2024-05-03&tz=Europe/Berlin&group_by=day",
       static_cast<std::uint64_t>(
           s.db.scalar("select count(*) from execution_time_statistics where finished_at >="
                       " '2024-04-30T22:00:00Z' and finished_at < '2024-05-02T22:00:00Z'"))},
      {kBase, w + "&start_date=2024-05-01&end_date=2024-05-03&exact=true", 500},
      {kBase, w + "&start_date=2024-05-01&end_date=2024-05-03&exact=false", 500},
      {std::string(kBase) + "/histogram", w + "&start_date=2024-05-01&end_date=2024-05-03", 500},
  };
  for (const auto& a : asks) {
    INFO(a.path << "?" << a.query);
    const auto mine = s.raw(a.path, a.query);
    REQUIRE(mine.status == 200);
    const auto theirs = s.raw(a.path, a.query, other);
    REQUIRE(theirs.status == 200);
    const auto m = json::parse(mine.body), t = json::parse(theirs.body);
    if (a.path.ends_with("/histogram")) {
      CHECK(m["count"] == a.count);
      CHECK(t["count"] == 0);
      continue;
    }
    std::uint64_t mine_count = 0, their_count = 0;
    for (const auto& g : m["groups"]) mine_count += g["count"].get<std::uint64_t>();
    for (const auto& g : t["groups"]) their_count += g["count"].get<std::uint64_t>();
    CHECK(mine_count == a.count);
    CHECK(their_count == 0);
    if (a.query.find("group_by=workflow") != std::string::npos) {
      // The names statement reads as the caller too: the owner's name, nobody else's.
      CHECK(m["groups"][0]["workflow_name"] == "nightly import");
      CHECK(t["groups"].empty());
      REQUIRE(m["previous"]["groups"].size() == 1);
      CHECK(m["previous"]["groups"][0]["count"] == 100);
      CHECK(t["previous"]["groups"].empty());
    }
  }
  // Every pooled connection is back to the daemon's own login and settings.
  auto first = s.pool.acquire();
  auto second = s.pool.acquire();
  for (auto* lease : {&first, &second}) {
    pqxx::nontransaction tx(lease->connection());
    const auto row = tx.exec1(
        "select coalesce(current_setting('request.jwt.claims', true), ''),"
        " current_user = session_user, current_setting('transaction_read_only'),"
        " current_setting('statement_timeout')");
    CHECK(row[0].as<std::string>() == "");
    CHECK(row[1].as<bool>());
    CHECK(row[2].as<std::string>() == "off");
    CHECK(row[3].as<std::string>() == "0");
  }
}

// Not run by default: writes real responses for tests/db/test_openapi_responses.py, which
// validates them against docs/openapi.yaml.
TEST_CASE("write sample statistics responses", "[.openapi-samples]") {
  auto server = meshhook::testing::server_url();
  const char* dir = std::getenv("MESHHOOK_RESPONSE_DIR");
  if (server.empty() || dir == nullptr) return;
  StatsDb s(server, 100);
  insert_runs(s.db, kWorkflow, 2000, "2024-08-01T00:00:00Z", 3,
              "exp(6 + sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))");
  insert_runs(s.db, "aaaaaaaa-0000-0000-0000-000000000002", 300, "2024-08-01T00:00:00Z", 3, "50",
              "failed");
  REQUIRE(s.db.scalar("select count(*) from execution_time_statistics") == 2300);
  const std::string range = "start_date=2024-08-01&end_date=2024-08-04";
  const std::vector<std::pair<std::string, std::string>> samples = {
      {"statistics_none", range},
      {"statistics_exact_compare", range + "&exact=true&compare=previous&percentiles=50,90,99.9"},
      {"statistics_workflow_compare", range + "&group_by=workflow&compare=previous&limit=1"},
      {"statistics_status", range + "&group_by=status&exact=false"},
      {"statistics_day_tz", range + "&group_by=day&tz=Europe/Berlin"},
      {"statistics_empty", "start_date=2020-01-01&end_date=2020-01-02"},
      {"statistics_400", "limit=0&workflow_id=x"},
      {"histogram_sketch", range + "&exact=false"},
      {"histogram_exact", range + "&exact=true"},
  };
  std::filesystem::create_directories(dir);
  for (const auto& [name, query] : samples) {
    const bool histogram = name.starts_with("histogram");
    auto r = s.raw(histogram ? std::string(kBase) + "/histogram" : kBase, query);
    std::ofstream(std::string(dir) + "/" + name + "." + std::to_string(r.status) + ".json")
        << r.body;
  }
}

TEST_CASE("a captured run counts at once, before the compactor moves it, and once after",
          "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  insert_runs(s.db, kWorkflow, 3000, "2024-06-01T00:00:00Z", 3, "100 + 900 * u1");
  // What the capture trigger appends: four runs, one of them captured twice (finished, then
  // moved to another terminal status: the earliest finish counts), one already stored.
  s.db.exec(
      "insert into execution_time_captured_runs (run_id, project_id, workflow_id, status,"
      " started_at, finished_at) values"
      " ('c0000000-0000-4000-8000-000000000001', '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'succeeded', '2024-06-02 10:00:00+00', '2024-06-02 10:00:07.5+00'),"
      " ('c0000000-0000-4000-8000-000000000002', '" +
      kProject + "', '" + kWorkflow +
      "', 'failed', '2024-06-02 11:00:00+00', '2024-06-02 11:00:00.0004+00'),"
      " ('c0000000-0000-4000-8000-000000000003', '" +
      kProject + "', '" + kWorkflow +
      "', 'succeeded', '2024-06-03 23:59:00+00', '2024-06-03 23:59:30+00'),"
      " ('c0000000-0000-4000-8000-000000000003', '" +
      kProject + "', '" + kWorkflow +
      "', 'canceled', '2024-06-03 23:59:00+00', '2024-06-04 00:00:10+00'),"
      " ((select run_id from execution_time_statistics order by id limit 1), '" +
      kProject + "', '" + kWorkflow +
      "', 'succeeded', '2024-06-02 12:00:00+00', '2024-06-02 12:00:59+00')");
  const std::string range = "start_date=2024-06-01&end_date=2024-06-04";
  const std::string rows =
      " from (select execution_time_ms from execution_time_statistics"
      " where finished_at < '2024-06-04' union all values (7500::bigint), (0), (30000)) as r";

  auto exact_before = s.get(range + "&exact=true");
  auto pieces_before = s.get(range + "&exact=false");
  auto by_status_before = s.get(range + "&exact=false&group_by=status");
  REQUIRE(exact_before["groups"].size() == 1);
  const auto& e = exact_before["groups"][0];
  CHECK(e["count"].get<long long>() == 3003);
  CHECK(e["count"].get<long long>() == s.db.scalar("select count(*)" + rows));
  CHECK(e["max"].get<double>() == 30000);
  CHECK(e["min"].get<double>() == 0);
  check_close(e["median"].get<double>(),
              sql_double(s.db,
                         "select percentile_cont(0.5) within group (order by "
                         "execution_time_ms)" +
                             rows),
              1e-9);
  CHECK(pieces_before["groups"][0]["count"] == e["count"]);
  CHECK(pieces_before["groups"][0]["max"] == e["max"]);

  // The compactor's round moves them: nothing counts twice, nothing is lost.
  s.db.exec("select meshhook_stats_compact(100000)");
  CHECK(s.db.scalar("select count(*) from execution_time_captured_runs") == 0);
  CHECK(s.db.scalar("select count(*) from execution_time_statistics where source = 'capture'") ==
        3);
  CHECK(s.db.scalar("select execution_time_ms from execution_time_statistics"
                    " where run_id = 'c0000000-0000-4000-8000-000000000003'") == 30000);
  CHECK(s.get(range + "&exact=true") == exact_before);
  CHECK(s.get(range + "&exact=false") == pieces_before);
  CHECK(s.get(range + "&exact=false&group_by=status") == by_status_before);
}
