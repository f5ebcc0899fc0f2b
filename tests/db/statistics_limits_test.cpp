// The bounds on one statistics request against a real Postgres: one deadline for all its
// statements (504, and the pooled connection comes back clean), a cap on time buckets and on
// the rollup rows merged (400 naming the limit), and a per-caller concurrency limit (429).

#include <chrono>
#include <future>
#include <nlohmann/json.hpp>
#include <thread>

#include "db_support.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/compactor.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/bridge/storage/migrations.h"

using meshhook::testing::TestDatabase;
using nlohmann::json;
namespace bridge = meshhook::bridge;

namespace {

constexpr const char* kProject = "11111111-1111-1111-1111-111111111111";
constexpr const char* kBase = "/api/v1/statistics/execution-times";

std::string migrated(const TestDatabase& db) {
  bridge::migrate(db.url());
  return db.url();
}

bridge::HttpResponse call(bridge::StatisticsApi& api, const std::string& query,
                          const std::string& subject = "user-1", const std::string& path = kBase) {
  bridge::HttpRequest r;
  r.method = "GET";
  r.path = path;
  r.query = query;
  r.header = [](std::string_view) { return std::string_view(); };
  return api.handle(r, {subject, R"({"sub":")" + subject +
                                     R"(","role":"authenticated",)"
                                     R"("meshhook_project_ids":[")" +
                                     std::string(kProject) + R"("]})"});
}

std::string header(const bridge::HttpResponse& r, const std::string& name) {
  for (const auto& [k, v] : r.headers) {
    if (k == name) return v;
  }
  return {};
}

// n runs over [from, from + days), spread over `workflows` workflows.
void insert_runs(const TestDatabase& db, int n, const std::string& from, int days,
                 int workflows = 1) {
  db.exec(
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms)"
      " select gen_random_uuid(), '" +
      std::string(kProject) + "', ('aaaaaaaa-0000-0000-0000-' || lpad((i % " +
      std::to_string(workflows) +
      ")::text, 12, '0'))::uuid, 'succeeded', f, f, 1 + i % 997 from ("
      "  select i, timestamptz '" +
      from + "' + (i::float8 / " + std::to_string(n) + ") * " + std::to_string(days) +
      " * interval '1 day' as f from generate_series(0, " + std::to_string(n - 1) + ") as i) as g");
}

}  // namespace

TEST_CASE("a request past its deadline answers 504 and the pool's next request works",
          "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(migrated(db), 1);
  // Sorting 200,000 rows for percentile_cont takes far longer than 1 ms.
  insert_runs(db, 200000, "2024-01-01T00:00:00Z", 30);
  bridge::StatisticsApi hurried(pool, {.request_timeout_ms = 1});
  bridge::StatisticsApi patient(pool, {});
  const std::string q = "start_date=2024-01-01&end_date=2024-02-01&exact=true&compare=previous";
  for (const auto& path : {std::string(kBase), std::string(kBase) + "/histogram"}) {
    INFO(path);
    auto late = call(hurried, q, "user-1", path);
    INFO(late.body);
    CHECK(late.status == 504);
    auto body = json::parse(late.body);
    CHECK(body["error"] == "timeout");
    CHECK(body["message"].get<std::string>().find("statistics.request_timeout_ms") !=
          std::string::npos);
  }
  // The one pooled connection came back clean: no open transaction, no statement_timeout or
  // claims left from the request.
  REQUIRE(pool.open() == 1);
  {
    auto lease = pool.acquire();
    pqxx::nontransaction tx(lease.connection());
    auto row = tx.exec1(
        "select current_setting('statement_timeout'),"
        " coalesce(current_setting('request.jwt.claims', true), ''), current_user::text,"
        // In a transaction left open, now() would be when it began, before this statement.
        " now() = statement_timestamp()");
    CHECK(row[0].as<std::string>() == "0");
    CHECK(row[1].as<std::string>() == "");
    CHECK(row[2].as<std::string>() != "meshhook_stats_reader");
    CHECK(row[3].as<bool>());
  }
  auto ok = call(patient, q);
  INFO(ok.body);
  REQUIRE(ok.status == 200);
  CHECK(json::parse(ok.body)["groups"][0]["count"] ==
        db.scalar("select count(*) from execution_time_statistics where finished_at <"
                  " '2024-02-01T00:00:00Z'"));
}

TEST_CASE("more time buckets than max_buckets answer 400 naming the limit", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(migrated(db), 1);
  bridge::StatisticsApi api(pool, {});
  // Hours over 400 days: 9,600 buckets, more than the default 2,500.
  auto hours = call(api, "start_date=2024-01-01&end_date=2025-02-04&group_by=hour");
  CHECK(hours.status == 400);
  auto body = json::parse(hours.body);
  CHECK(body["error"] == "invalid_parameter");
  REQUIRE(body["details"].size() == 1);
  CHECK(body["details"][0]["parameter"] == "group_by");
  const std::string reason = body["details"][0]["reason"];
  CHECK(reason.find("at most 2500") != std::string::npos);
  CHECK(reason.find("9601 buckets") != std::string::npos);
  // Days over the same range are few enough; so are hours over a week.
  CHECK(call(api, "start_date=2024-01-01&end_date=2025-02-04&group_by=day").status == 200);
  CHECK(call(api, "start_date=2024-01-01&end_date=2024-01-08&group_by=hour").status == 200);
  // The limit is configurable.
  bridge::StatisticsApi strict(pool, {.max_buckets = 100});
  auto week = call(strict, "start_date=2024-01-01&end_date=2024-01-08&group_by=hour");
  CHECK(week.status == 400);
  CHECK(json::parse(week.body)["details"][0]["reason"].get<std::string>().find("at most 100") !=
        std::string::npos);
}

TEST_CASE("more rollup rows than max_rollup_rows answer 400 naming the limit", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(migrated(db), 1);
  // 30 workflows over 60 days: 1,800 daily rollup rows, once compacted (pending deltas are
  // hourly, and counted as the rollup rows they are).
  insert_runs(db, 36000, "2024-03-01T00:00:00Z", 60, 30);
  while (bridge::Compactor::compact_once(db.url(), 100000) > 0) {
  }
  REQUIRE(db.scalar("select count(*) from execution_time_rollups_daily") == 1800);
  bridge::StatisticsApi api(pool, {.max_rollup_rows = 1000});
  const std::string q = "start_date=2024-03-01&end_date=2024-04-30";
  auto sketch = call(api, q + "&exact=false");
  CHECK(sketch.status == 400);
  auto body = json::parse(sketch.body);
  CHECK(body["error"] == "too_much_data");
  CHECK(body["message"].get<std::string>().find("1000 rollup rows") != std::string::npos);
  auto histogram = call(api, q + "&exact=false", "user-1", std::string(kBase) + "/histogram");
  CHECK(histogram.status == 400);
  // Narrower requests read fewer rows and are answered.
  auto one = call(api, q + "&exact=false&workflow_id=aaaaaaaa-0000-0000-0000-000000000007");
  REQUIRE(one.status == 200);
  CHECK(json::parse(one.body)["groups"][0]["count"] == 1200);
  auto month = call(api, "start_date=2024-03-01&end_date=2024-03-21&exact=false");
  REQUIRE(month.status == 200);
  CHECK(json::parse(month.body)["groups"][0]["count"] ==
        db.scalar("select count(*) from execution_time_statistics"
                  " where finished_at < '2024-03-21T00:00:00Z'"));
}

TEST_CASE("a caller over its concurrency limit answers 429 with Retry-After", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(migrated(db), 1, std::chrono::milliseconds(60000));
  bridge::StatisticsApi api(pool, {.max_in_flight_per_caller = 2});
  const std::string q = "start_date=2024-01-01&end_date=2024-01-02";
  std::future<bridge::HttpResponse> first, second;
  {
    // Holding the only connection keeps the caller's two requests in flight.
    auto held = pool.acquire();
    first = std::async(std::launch::async, [&] { return call(api, q); });
    second = std::async(std::launch::async, [&] { return call(api, q); });
    for (int i = 0; i < 60000 && api.caller_limit().in_flight("user-1") < 2; ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    REQUIRE(api.caller_limit().in_flight("user-1") == 2);
    auto third = call(api, q);
    CHECK(third.status == 429);
    CHECK(header(third, "Retry-After") == "1");
    auto body = json::parse(third.body);
    CHECK(body["error"] == "too_many_requests");
    CHECK(body["message"].get<std::string>().find("at most 2") != std::string::npos);
    // Another caller is not counted against this one (it waits for the connection too).
    CHECK(api.caller_limit().in_flight("user-2") == 0);
  }
  CHECK(first.get().status == 200);
  CHECK(second.get().status == 200);
  CHECK(api.caller_limit().in_flight("user-1") == 0);
  CHECK(call(api, q).status == 200);
  CHECK(call(api, q, "user-2").status == 200);
}

TEST_CASE("each statement gets the time the request deadline leaves", "[db][statistics]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  pqxx::connection c(db.url());
  {
    pqxx::read_transaction tx(c);
    const bridge::RequestDeadline deadline(std::chrono::milliseconds(1000));
    deadline.limit(tx);
    const auto ms = tx.exec1("select current_setting('statement_timeout')")[0].as<std::string>();
    INFO(ms);
    // Postgres shows whole seconds as "1s"; anything less as milliseconds.
    CHECK((ms == "1s" || (ms.ends_with("ms") && std::stoi(ms) > 0 && std::stoi(ms) <= 1000)));
    // A statement that would run for a minute is canceled when the time is up.
    try {
      tx.exec("select count(*) from generate_series(1, 1000000000)");
      FAIL("the statement outlived the deadline");
    } catch (const pqxx::sql_error& e) {
      CHECK(e.sqlstate() == "57014");
    }
  }
  // Local to the transaction: the session's own setting is back.
  pqxx::nontransaction tx(c);
  CHECK(tx.exec1("select current_setting('statement_timeout')")[0].as<std::string>() == "0");
  // A deadline already passed runs nothing.
  const bridge::RequestDeadline passed(std::chrono::milliseconds(0));
  CHECK_THROWS_AS(passed.limit(tx), bridge::RequestTimeout);
}
