// queue-times and step-times against a real Postgres: exact answers are percentile_cont over
// the same rows, sketch answers stay within 1 % of them, status and range filters cut the
// rows, and a caller never sees another tenant's rows. Rows are inserted directly into
// queue_time_statistics and step_time_statistics.

#include <filesystem>
#include <fstream>
#include <map>

#include "statistics_support.h"

using meshhook::testing::check_close;
using meshhook::testing::kProject;
using meshhook::testing::sql_double;
using meshhook::testing::StatsDb;
using meshhook::testing::TestDatabase;
using nlohmann::json;

namespace {

constexpr const char* kQueue = "/api/v1/statistics/queue-times";
constexpr const char* kSteps = "/api/v1/statistics/step-times";
constexpr const char* kWorkflow = "aaaaaaaa-0000-0000-0000-000000000001";
constexpr const char* kOtherWorkflow = "aaaaaaaa-0000-0000-0000-000000000002";
constexpr const char* kOtherProject = "22222222-2222-2222-2222-222222222222";
// A lognormal around 500 ms with a long tail (u1, u2 uniform in (0, 1]).
constexpr const char* kLognormal = "exp(ln(500) + sqrt(-2 * ln(u1)) * cos(2 * pi() * u2))";

std::string n_rows(int n) {
  return "(select i, 1 - random() as u1, 1 - random() as u2, random() as u3 from "
         "generate_series(0, " +
         std::to_string(n - 1) + ") as i) as g";
}

std::string finished_at(const std::string& from, int days, int n) {
  return "timestamptz '" + from + "' + (i::float8 / " + std::to_string(n) + ") * " +
         std::to_string(days) + " * interval '1 day'";
}

// n runs' queue rows spread over [from, from + days): start wait from `value`, the queue wait
// that plus up to 100 ms of later jobs.
void insert_queue(const TestDatabase& db, const std::string& workflow, int n,
                  const std::string& from, int days, const std::string& value,
                  const std::string& status = "succeeded", double seed = 0.42,
                  const std::string& project = kProject) {
  db.exec("select setseed(" + std::to_string(seed) +
          ");"
          "insert into queue_time_statistics (run_id, project_id, workflow_id, status,"
          " finished_at, queued_at, started_at, jobs, queue_wait_ms, start_wait_ms)"
          " select gen_random_uuid(), '" +
          project + "', '" + workflow + "', '" + status +
          "', f, f - interval '1 minute', f - interval '30 seconds', 1 + extra / 40, w + extra, w"
          " from (select " +
          finished_at(from, days, n) + " as f, greatest(0, least(1000000000, round(" + value +
          ")))::bigint as w, round(100 * u3)::bigint as extra from " + n_rows(n) + ") as r");
}

// n rows of one step spread over [from, from + days): durations from `value`; a fraction
// `failing` failed after 5 attempts, a fifth of the others took 2.
void insert_steps(const TestDatabase& db, const std::string& workflow, const std::string& step,
                  const std::string& type, int n, const std::string& from, int days,
                  const std::string& value, double failing, double seed,
                  const std::string& project = kProject) {
  db.exec("select setseed(" + std::to_string(seed) +
          ");"
          "insert into step_time_statistics (run_id, step_id, step_type, project_id, workflow_id,"
          " status, attempts, started_at, finished_at, duration_ms)"
          " select gen_random_uuid(), '" +
          step + "', '" + type + "', '" + project + "', '" + workflow +
          "', case when failed then 'failed' else 'succeeded' end,"
          " case when failed then 5 when u3 < 0.2 then 2 else 1 end,"
          " f - d * interval '1 millisecond', f, d from (select " +
          finished_at(from, days, n) + " as f, greatest(0, least(1000000000, round(" + value +
          ")))::bigint as d, u3, random() < " + std::to_string(failing) + " as failed from " +
          n_rows(n) + ") as r");
}

std::string percentile_sql(double p, const std::string& column, const std::string& rows) {
  return "select percentile_cont(" + std::to_string(p) + ") within group (order by " + column +
         ")" + rows;
}

}  // namespace

TEST_CASE("queue-times: exact is percentile_cont over the rows, the sketch within 1 percent",
          "[db][statistics][queue]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server, 2000);  // the daemon's exact_max_rows
  insert_queue(s.db, kWorkflow, 20000, "2024-03-01T00:00:00Z", 11, kLognormal);
  insert_queue(s.db, kOtherWorkflow, 3000, "2024-03-01T00:00:00Z", 11, "20 * u1", "failed", 0.3);
  // Outside the range: never counted.
  insert_queue(s.db, kWorkflow, 500, "2024-02-01T00:00:00Z", 5, "100000", "succeeded", 0.5);
  const std::string start = "2024-03-01T05:17:00Z";
  const std::string end = "2024-03-10T19:43:00Z";
  const std::string query = "workflow_id=" + std::string(kWorkflow) + "&start_date=" + start +
                            "&end_date=" + end + "&percentiles=1,25,50,75,90,95,99,99.9";
  const std::string rows = " from queue_time_statistics where workflow_id = '" +
                           std::string(kWorkflow) + "' and finished_at >= '" + start +
                           "' and finished_at < '" + end + "'";
  for (const std::string measure : {"queue_wait", "start_wait"}) {
    SECTION(measure) {
      const std::string column = measure + "_ms";
      const std::string q = query + (measure == "queue_wait" ? "" : "&measure=" + measure);
      auto exact = s.get(q + "&exact=true", kQueue);
      auto sketch = s.get(q + "&exact=false", kQueue);
      // Without exact, as for execution times: more rows than exact_max_rows in the range are
      // answered from the rollups.
      auto by_default = s.get(q, kQueue);
      CHECK(by_default["accuracy"] == sketch["accuracy"]);
      CHECK(by_default["groups"] == sketch["groups"]);
      CHECK(exact["accuracy"] == json({{"method", "exact"}, {"max_relative_error", 0}}));
      CHECK(sketch["accuracy"] == json({{"method", "sketch"}, {"max_relative_error", 0.01}}));
      CHECK(exact["filters"]["measure"] == measure);
      const auto& e = exact["groups"][0];
      const auto& g = sketch["groups"][0];
      CHECK(e["count"].get<long long>() == s.db.scalar("select count(*)" + rows));
      CHECK(e["min"].get<long long>() == s.db.scalar("select min(" + column + ")" + rows));
      CHECK(e["max"].get<long long>() == s.db.scalar("select max(" + column + ")" + rows));
      check_close(e["avg"].get<double>(), sql_double(s.db, "select avg(" + column + ")" + rows),
                  1e-9);
      for (const auto* key : {"count", "min", "max", "avg"}) CHECK(g[key] == e[key]);
      for (const auto& [key, value] : e["percentiles"].items()) {
        const double pg = sql_double(s.db, percentile_sql(std::stod(key) / 100.0, column, rows));
        INFO(measure << " p" << key);
        check_close(value.get<double>(), pg, 1e-9);
        check_close(g["percentiles"][key].get<double>(), pg, 0.01);
      }
    }
  }
  SECTION("the status filter and group_by") {
    auto failed =
        s.get("start_date=2024-03-01&end_date=2024-03-12&status=failed&group_by=workflow", kQueue);
    REQUIRE(failed["groups"].size() == 1);
    CHECK(failed["groups"][0]["workflow_id"] == kOtherWorkflow);
    CHECK(failed["groups"][0]["count"] == 3000);
    auto days =
        s.get("start_date=2024-03-01&end_date=2024-03-12&group_by=day&tz=Asia/Kolkata", kQueue);
    auto sketch_days =
        s.get("start_date=2024-03-01&end_date=2024-03-12&group_by=day&tz=Asia/Kolkata&exact=false",
              kQueue);
    REQUIRE(days["groups"].size() == sketch_days["groups"].size());
    long long total = 0;
    for (std::size_t i = 0; i < days["groups"].size(); ++i) {
      CHECK(days["groups"][i]["bucket_start"] == sketch_days["groups"][i]["bucket_start"]);
      CHECK(days["groups"][i]["count"] == sketch_days["groups"][i]["count"]);
      total += days["groups"][i]["count"].get<long long>();
    }
    CHECK(total == s.db.scalar("select count(*) from queue_time_statistics where finished_at >="
                               " '2024-03-01T00:00:00+05:30' and finished_at <"
                               " '2024-03-12T00:00:00+05:30'"));
  }
  SECTION("the histogram counts every row of the range, both ways") {
    for (const std::string mode : {"", "&exact=false"}) {
      auto h = s.get(query + mode, std::string(kQueue) + "/histogram");
      long long sum = 0;
      for (const auto& b : h["buckets"]) sum += b["count"].get<long long>();
      CHECK(h["count"] == sum);
      CHECK(sum == s.db.scalar("select count(*)" + rows));
    }
  }
}

TEST_CASE("step-times: one group per step by share, exact = percentile_cont, sketch within 1 %",
          "[db][statistics][steps]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server, 2000);  // the daemon's exact_max_rows
  insert_steps(s.db, kWorkflow, "fetch", "http", 4000, "2024-05-01T00:00:00Z", 5, kLognormal, 0.1,
               0.1);
  insert_steps(s.db, kWorkflow, "transform", "code", 4000, "2024-05-01T00:00:00Z", 5, "40 * u1",
               0.0, 0.2);
  insert_steps(s.db, kWorkflow, "notify", "http", 1500, "2024-05-01T00:00:00Z", 5,
               "2000 + 500 * u1", 0.3, 0.3);
  // Another workflow's steps, and this one's outside the range: never counted.
  insert_steps(s.db, kOtherWorkflow, "fetch", "http", 800, "2024-05-01T00:00:00Z", 5, "100", 0.5,
               0.4);
  insert_steps(s.db, kWorkflow, "fetch", "http", 300, "2024-04-01T00:00:00Z", 5, "99999", 0.0, 0.5);
  const std::string range = "start_date=2024-05-01&end_date=2024-05-06";
  const std::string q = "workflow_id=" + std::string(kWorkflow) + "&" + range;
  const std::string in_range = " from step_time_statistics where workflow_id = '" +
                               std::string(kWorkflow) +
                               "' and finished_at >= '2024-05-01' and finished_at < '2024-05-06'";
  const double total = sql_double(s.db, "select sum(duration_ms)" + in_range);

  auto exact = s.get(q + "&exact=true", kSteps);
  CHECK(exact["accuracy"]["method"] == "exact");
  // Without exact, as for execution times: 9,500 rows (more than exact_max_rows) are answered
  // from the rollups, 300 exactly.
  CHECK(s.get(q, kSteps)["accuracy"]["method"] == "sketch");
  CHECK(
      s.get("workflow_id=" + std::string(kWorkflow) + "&start_date=2024-04-01&end_date=2024-04-30",
            kSteps)["accuracy"]["method"] == "exact");
  CHECK(exact["filters"]["workflow_id"] == kWorkflow);
  CHECK(exact["count"].get<long long>() == s.db.scalar("select count(*)" + in_range));
  const auto& steps = exact["steps"];
  REQUIRE(steps.size() == 3);
  // notify takes 1500 x ~2250 ms, fetch 4000 x ~600 ms, transform 4000 x ~20 ms.
  CHECK(steps[0]["step_id"] == "notify");
  CHECK(steps[1]["step_id"] == "fetch");
  CHECK(steps[2]["step_id"] == "transform");
  double share_sum = 0;
  double median_share_sum = 0;
  std::map<std::string, double> medians;
  for (const auto& step : steps) {
    const std::string id = step["step_id"];
    INFO("step " << id);
    const std::string rows = in_range + " and step_id = '" + id + "'";
    CHECK(step["step_type"] == (id == "transform" ? "code" : "http"));
    CHECK(step["count"].get<long long>() == s.db.scalar("select count(*)" + rows));
    CHECK(step["failed"].get<long long>() ==
          s.db.scalar("select count(*)" + rows + " and status = 'failed'"));
    check_close(step["avg_ms"].get<double>(), sql_double(s.db, "select avg(duration_ms)" + rows),
                1e-9);
    for (auto [key, p] : {std::pair{"median_ms", 0.5}, {"p95_ms", 0.95}, {"p99_ms", 0.99}}) {
      check_close(step[key].get<double>(), sql_double(s.db, percentile_sql(p, "duration_ms", rows)),
                  1e-9);
    }
    check_close(step["failure_ratio"].get<double>(),
                sql_double(s.db, "select avg((status = 'failed')::int)" + rows), 1e-5);
    check_close(step["mean_attempts"].get<double>(),
                sql_double(s.db, "select avg(attempts)" + rows), 1e-3);
    check_close(step["share"].get<double>(),
                sql_double(s.db, "select sum(duration_ms)" + rows) / total, 1e-5);
    share_sum += step["share"].get<double>();
    median_share_sum += step["median_share"].get<double>();
    medians[id] = step["median_ms"].get<double>();
  }
  CHECK(std::abs(share_sum - 1.0) < 1e-5);
  CHECK(std::abs(median_share_sum - 1.0) < 1e-5);
  const double median_total = medians["fetch"] + medians["transform"] + medians["notify"];
  check_close(steps[0]["median_share"].get<double>(), medians["notify"] / median_total, 1e-5);
  CHECK(steps[2]["failure_ratio"] == 0);

  SECTION("the sketch is within 1 percent, the rest exact") {
    auto sketch = s.get(q + "&exact=false", kSteps);
    CHECK(sketch["accuracy"] == json({{"method", "sketch"}, {"max_relative_error", 0.01}}));
    REQUIRE(sketch["steps"].size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const auto& a = sketch["steps"][i];
      const auto& b = steps[i];
      for (const auto* key : {"step_id", "step_type", "count", "failed", "avg_ms", "total_ms",
                              "failure_ratio", "mean_attempts", "share"}) {
        CHECK(a[key] == b[key]);
      }
      for (const auto* key : {"median_ms", "p95_ms", "p99_ms"}) {
        check_close(a[key].get<double>(), b[key].get<double>(), 0.01);
      }
    }
  }
  SECTION("status and range filters") {
    auto failed = s.get(q + "&status=failed", kSteps);
    CHECK(failed["filters"]["statuses"] == json::array({"failed"}));
    for (const auto& step : failed["steps"]) {
      CHECK(step["failure_ratio"] == 1);
      CHECK(step["mean_attempts"] == 5);
      CHECK(step["step_id"] != "transform");  // it never failed
    }
    CHECK(failed["count"].get<long long>() ==
          s.db.scalar("select count(*)" + in_range + " and status = 'failed'"));
    auto april = s.get(
        "workflow_id=" + std::string(kWorkflow) + "&start_date=2024-04-01&end_date=2024-04-30",
        kSteps);
    REQUIRE(april["steps"].size() == 1);
    CHECK(april["steps"][0]["count"] == 300);
    CHECK(april["steps"][0]["median_ms"] == 99999);
    CHECK(april["steps"][0]["share"] == 1);
  }
}

TEST_CASE("a step whose type changed is one group with its latest type, both ways",
          "[db][statistics][steps]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  insert_steps(s.db, kWorkflow, "fetch", "http", 300, "2024-05-01T00:00:00Z", 1, "100", 0, 0.1);
  insert_steps(s.db, kWorkflow, "fetch", "graphql", 1, "2024-05-01T23:59:59Z", 0, "5000", 0, 0.2);
  const std::string q =
      "workflow_id=" + std::string(kWorkflow) + "&start_date=2024-05-01&end_date=2024-05-02";
  for (const std::string mode : {"", "&exact=false"}) {
    auto r = s.get(q + mode, kSteps);
    REQUIRE(r["steps"].size() == 1);
    CHECK(r["steps"][0]["step_type"] == "graphql");
    CHECK(r["steps"][0]["count"] == 301);
    CHECK(r["steps"][0]["total_ms"] == 300 * 100 + 5000);
  }
}

TEST_CASE("queue and step rows of another tenant answer as if they did not exist",
          "[db][statistics][queue][steps]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  insert_queue(s.db, kWorkflow, 200, "2024-05-01T00:00:00Z", 1, "100");
  insert_steps(s.db, kWorkflow, "fetch", "http", 200, "2024-05-01T00:00:00Z", 1, "100", 0, 0.1);
  const std::string range = "&start_date=2024-05-01&end_date=2024-05-02";
  const std::string missing = "aaaaaaaa-0000-0000-0000-0000000000ff";
  for (const std::string mode : {"", "&exact=false"}) {
    auto mine = s.raw(kSteps, "workflow_id=" + std::string(kWorkflow) + range + mode);
    REQUIRE(mine.status == 200);
    CHECK(json::parse(mine.body)["steps"].size() == 1);
    auto theirs =
        s.raw(kSteps, "workflow_id=" + std::string(kWorkflow) + range + mode, kOtherProject);
    auto none = s.raw(kSteps, "workflow_id=" + missing + range + mode, kOtherProject);
    REQUIRE(theirs.status == 200);
    CHECK(json::parse(theirs.body)["steps"] == json::array());
    // Byte for byte the answer for a workflow that does not exist, but for the id asked.
    auto replaced = none.body;
    replaced.replace(replaced.find(missing), missing.size(), kWorkflow);
    CHECK(theirs.body == replaced);

    CHECK(json::parse(s.raw(kQueue, range.substr(1) + mode).body)["groups"][0]["count"] == 200);
    auto queue = s.raw(kQueue, range.substr(1) + mode, kOtherProject);
    CHECK(json::parse(queue.body)["groups"][0]["count"] == 0);
  }
}

TEST_CASE("queue-times and step-times reject bad parameters with 400 naming them",
          "[db][statistics][queue][steps]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  auto details = [&](const std::string& path, const std::string& query) {
    auto r = s.raw(path, query);
    INFO(path << "?" << query << " -> " << r.body);
    CHECK(r.status == 400);
    auto body = json::parse(r.body);
    CHECK(body["error"] == "invalid_parameter");
    CHECK(body["message"].is_string());
    std::vector<std::string> names;
    for (const auto& d : body["details"]) names.push_back(d["parameter"]);
    return names;
  };
  using Names = std::vector<std::string>;
  const std::string wf = "workflow_id=" + std::string(kWorkflow);
  CHECK(details(kQueue, "measure=run_time") == Names{"measure"});
  CHECK(details(kQueue, "measure=queue_wait&measure=start_wait") == Names{"measure"});
  CHECK(details(meshhook::testing::kBase, "measure=queue_wait") == Names{"measure"});
  CHECK(details(kSteps, "start_date=2024-05-01") == Names{"workflow_id"});
  CHECK(details(kSteps, wf + "," + kOtherWorkflow) == Names{"workflow_id"});
  CHECK(details(kSteps, wf + "&status=canceled") == Names{"status"});
  CHECK(details(kSteps, wf + "&group_by=workflow") == Names{"group_by"});
  CHECK(details(kSteps, wf + "&measure=queue_wait") == Names{"measure"});
  CHECK(details(kSteps, wf + "&exact=maybe") == Names{"exact"});
  CHECK(details(kSteps, wf + "&start_date=2024-05-02&end_date=2024-05-01") == Names{"end_date"});
  CHECK(s.raw(kSteps + std::string("/histogram"), wf).status == 404);
}

// Not run by default: writes real responses for tests/openapi/test_openapi_responses.py.
TEST_CASE("write sample queue and step responses", "[.openapi-samples]") {
  auto server = meshhook::testing::server_url();
  const char* dir = std::getenv("MESHHOOK_RESPONSE_DIR");
  if (server.empty() || dir == nullptr) return;
  StatsDb s(server);
  insert_queue(s.db, kWorkflow, 1000, "2024-08-01T00:00:00Z", 3, kLognormal);
  insert_queue(s.db, kOtherWorkflow, 200, "2024-08-01T00:00:00Z", 3, "50", "failed");
  insert_steps(s.db, kWorkflow, "fetch", "http", 1000, "2024-08-01T00:00:00Z", 3, kLognormal, 0.1,
               0.1);
  insert_steps(s.db, kWorkflow, "transform", "code", 1000, "2024-08-01T00:00:00Z", 3, "30", 0, 0.2);
  const std::string range = "start_date=2024-08-01&end_date=2024-08-04";
  const std::string wf = "&workflow_id=" + std::string(kWorkflow);
  const std::vector<std::tuple<std::string, std::string, std::string>> samples = {
      {"queue_none", kQueue, range},
      {"queue_start_wait_workflow", kQueue, range + "&measure=start_wait&group_by=workflow"},
      {"queue_sketch_compare", kQueue, range + "&exact=false&compare=previous&group_by=day"},
      {"queue_400", kQueue, "measure=x"},
      {"queue_histogram", std::string(kQueue) + "/histogram", range},
      {"steps_exact", kSteps, range + wf},
      {"steps_sketch", kSteps, range + wf + "&exact=false&status=succeeded"},
      {"steps_empty", kSteps, "start_date=2020-01-01&end_date=2020-01-02" + wf},
      {"steps_400", kSteps, range},
  };
  std::filesystem::create_directories(dir);
  for (const auto& [name, path, query] : samples) {
    auto r = s.raw(path, query);
    std::ofstream(std::string(dir) + "/" + name + "." + std::to_string(r.status) + ".json")
        << r.body;
  }
}
