// Every group_by in UTC, in zones east and west of it and across a DST change, exact and from
// the rollups, against plain SQL aggregates (percentile_cont) over the same rows; and the
// default range, which is days in tz.

#include <cmath>
#include <nlohmann/json.hpp>
#include <optional>

#include "db_support.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/bridge/storage/migrations.h"

using meshhook::testing::TestDatabase;
using nlohmann::json;
namespace bridge = meshhook::bridge;

namespace {

constexpr const char* kProject = "11111111-1111-1111-1111-111111111111";
constexpr const char* kBase = "/api/v1/statistics/execution-times";

struct GroupingDb {
  TestDatabase db;
  bridge::ConnectionPool pool;
  bridge::StatisticsApi api;
  explicit GroupingDb(const std::string& server)
      : db(server), pool(migrated(db), 2), api(pool, {.exact_max_rows = 100}) {}

  static std::string migrated(const TestDatabase& db) {
    bridge::migrate(db.url());
    return db.url();
  }

  json get(const std::string& query) {
    bridge::HttpRequest r;
    r.method = "GET";
    r.path = kBase;
    r.query = query;
    r.header = [](std::string_view) { return std::string_view(); };
    auto response = api.handle(r, {"user-1", R"({"sub":"user-1","role":"authenticated",)"
                                             R"("meshhook_project_ids":[")" +
                                                 std::string(kProject) + R"("]})"});
    INFO(query << " -> " << response.status << " " << response.body);
    REQUIRE(response.status == 200);
    return json::parse(response.body);
  }
};

// The expected groups, from the rows by plain SQL: one row per group, in the API's order.
pqxx::result expected_groups(const TestDatabase& db, const std::string& group_by,
                             const std::string& tz, const std::string& start,
                             const std::string& end) {
  std::string key = "null::text, null::text, null::timestamptz";
  if (group_by == "workflow") key = "workflow_id::text, null::text, null::timestamptz";
  if (group_by == "status") key = "null::text, status, null::timestamptz";
  if (group_by == "hour" || group_by == "day" || group_by == "week") {
    key = "null::text, null::text, date_trunc('" + group_by + "', finished_at, $1)";
  }
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  return tx.exec_params(
      "select * from (select " + key +
          ", count(*), min(execution_time_ms), max(execution_time_ms),"
          " avg(execution_time_ms)::float8,"
          " percentile_cont(array[0.5, 0.95, 0.99]) within group (order by execution_time_ms)"
          " from execution_time_statistics"
          " where finished_at >= ($2::date)::timestamp at time zone $1"
          " and finished_at < ($3::date)::timestamp at time zone $1"
          " group by 1, 2, 3) g(w, s, b, n, lo, hi, mean, p)"
          " order by w collate \"C\" nulls first, s collate \"C\" nulls first, b",
      tz, start, end);
}

std::string utc_text(const TestDatabase& db, const std::string& timestamptz) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  return tx
      .exec_params1(
          "select to_char($1::timestamptz at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')",
          timestamptz)[0]
      .as<std::string>();
}

}  // namespace

TEST_CASE("every group_by in every kind of zone agrees with SQL over the rows, exact and sketch",
          "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  GroupingDb s(server);
  // Three workflows, two statuses, runs every few minutes (at odd seconds, so every hour has
  // runs and no run sits on a bucket edge) from 2026-03-25 to 2026-04-02.
  s.db.exec(
      "select setseed(0.17);"
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms)"
      " select gen_random_uuid(), '" +
      std::string(kProject) +
      "', ('aaaaaaaa-0000-0000-0000-00000000000' || (1 + i % 3))::uuid,"
      " case when i % 5 = 0 then 'failed' else 'succeeded' end,"
      " f - v * interval '1 millisecond', f, v from ("
      "  select i, timestamptz '2026-03-25T00:00:00Z' + i * interval '157 seconds' as f,"
      "    greatest(1, round(exp(6 + (i % 3) + sqrt(-2 * ln(1 - random()))"
      "      * cos(2 * pi() * random()))))::bigint as v"
      "  from generate_series(0, 8 * 86400 / 157) as i) as r");

  const std::string start = "2026-03-27";
  const std::string end = "2026-03-31";  // Europe/Berlin springs forward on 2026-03-29
  for (const std::string tz : {"UTC", "Asia/Kolkata", "America/New_York", "Europe/Berlin"}) {
    for (const std::string group_by : {"none", "workflow", "status", "hour", "day", "week"}) {
      const auto want = expected_groups(s.db, group_by, tz, start, end);
      REQUIRE(!want.empty());
      if (group_by == "hour") {
        // Every hour of the four days has runs: 96 hours, 95 across the DST change.
        CHECK(want.size() == (tz == "Europe/Berlin" ? 95u : 96u));
      }
      for (const std::string exact : {"true", "false"}) {
        INFO("tz=" << tz << " group_by=" << group_by << " exact=" << exact);
        auto r = s.get("start_date=" + start + "&end_date=" + end + "&tz=" + tz +
                       "&group_by=" + group_by + "&exact=" + exact + "&limit=1000");
        // Half-hour zones answer time groupings from the rows; everything else as asked.
        const bool from_rows =
            exact == "true" || (tz == "Asia/Kolkata" &&
                                (group_by == "hour" || group_by == "day" || group_by == "week"));
        CHECK(r["accuracy"]["method"] == (from_rows ? "exact" : "sketch"));
        CHECK(r["next_cursor"].is_null());
        const auto& groups = r["groups"];
        REQUIRE(groups.size() == want.size());
        for (std::size_t i = 0; i < want.size(); ++i) {
          const auto& g = groups[i];
          const auto row = want[static_cast<int>(i)];
          INFO("group " << i << ": " << g.dump());
          CHECK(g["workflow_id"] == (row[0].is_null() ? json(nullptr) : json(row[0].c_str())));
          CHECK(g["status"] == (row[1].is_null() ? json(nullptr) : json(row[1].c_str())));
          CHECK(g["bucket_start"] ==
                (row[2].is_null() ? json(nullptr) : json(utc_text(s.db, row[2].c_str()))));
          CHECK(g["count"].get<long long>() == row[3].as<long long>());
          CHECK(g["min"].get<long long>() == row[4].as<long long>());
          CHECK(g["max"].get<long long>() == row[5].as<long long>());
          CHECK(std::abs(g["avg"].get<double>() - row[6].as<double>()) <= 0.0005 + 1e-9);
          // {a,b,c}: percentile_cont at 0.5, 0.95 and 0.99.
          std::string p = row[7].c_str();
          p = p.substr(1, p.size() - 2);
          std::vector<double> pg;
          for (std::size_t at = 0; at != std::string::npos;) {
            auto comma = p.find(',', at);
            pg.push_back(std::stod(p.substr(at, comma == std::string::npos ? p.npos : comma - at)));
            at = comma == std::string::npos ? comma : comma + 1;
          }
          REQUIRE(pg.size() == 3);
          const char* keys[] = {"median", "p95", "p99"};
          for (std::size_t k = 0; k < 3; ++k) {
            const double got = g[keys[k]].get<double>();
            INFO(keys[k] << ": got " << got << ", percentile_cont " << pg[k]);
            if (from_rows) {
              CHECK(std::abs(got - pg[k]) <= 0.0005 + 1e-9);
            } else {
              CHECK(std::abs(got - pg[k]) <= 0.01 * pg[k] + 1e-3);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("the default range is seven days back from end_date in tz", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  GroupingDb s(server);
  // 2026-03-30 00:00 in Berlin is 22:00Z (summer time); seven Berlin days earlier,
  // 2026-03-23 00:00, is 23:00Z (winter time).
  auto berlin = s.get("end_date=2026-03-30&tz=Europe/Berlin");
  CHECK(berlin["filters"]["end"] == "2026-03-29T22:00:00Z");
  CHECK(berlin["filters"]["start"] == "2026-03-22T23:00:00Z");
  // New York's autumn change: 2026-11-08 00:00 EST is 05:00Z, 2026-11-01 00:00 EDT 04:00Z.
  auto new_york = s.get("end_date=2026-11-08&tz=America/New_York");
  CHECK(new_york["filters"]["end"] == "2026-11-08T05:00:00Z");
  CHECK(new_york["filters"]["start"] == "2026-11-01T04:00:00Z");
  // An instant as the end: the same wall-clock time seven days earlier in tz.
  auto instant = s.get("end_date=2026-03-30T10:00:00Z&tz=Europe/Berlin");
  CHECK(instant["filters"]["start"] == "2026-03-23T11:00:00Z");
  auto utc = s.get("end_date=2026-03-30");
  CHECK(utc["filters"]["start"] == "2026-03-23T00:00:00Z");
}
