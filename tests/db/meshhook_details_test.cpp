// Queue waits and steps of MeshHook runs, derived from job_tracking and workflow_events by
// meshhook_stats_record_run_details (sql/integrations/meshhook/capture.sql), the tailer and
// backfill.
#include <map>
#include <thread>

#include "db_support.h"
#include "meshhook/bridge/storage/backfill.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/tailer.h"
#include "meshhook/exporter/exposition.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"
#include "pipeline.h"

using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;
namespace exporter = meshhook::exporter;
using namespace std::chrono_literals;

namespace {

constexpr const char* kProject = "11111111-1111-4111-8111-111111111111";
constexpr const char* kWorkflow = "22222222-2222-4222-8222-222222222222";
constexpr const char* kT0 = "timestamptz '2026-01-01 00:00:00+00'";

// A MeshHook database (our schema, MeshHook's tables, one project and workflow) with the
// capture installed.
void make_meshhook(const TestDatabase& db) {
  bridge::migrate(db.url());
  db.exec_file("tests/fixtures/meshhook_schema.sql");
  db.exec("insert into projects (id, owner, name) values ('" + std::string(kProject) +
          "', gen_random_uuid(), 'demo');"
          "insert into workflow_definitions (id, project_id, slug, name) values ('" +
          kWorkflow + "', '" + kProject + "', 'checkout', 'Checkout')");
  REQUIRE(bridge::install_meshhook_capture(db.url()));
}

std::string q(const std::string& s) { return "'" + s + "'"; }

// What the daemon's compactor does each round: captured runs move into
// execution_time_statistics (migration 0013), where the tailer and backfill find them.
constexpr const char* kMove = "select meshhook_stats_compact(100000);";

// A run started at kT0 + started (an interval literal), still running.
void start_run(const TestDatabase& db, const std::string& id, const std::string& started = "0") {
  db.exec("insert into workflow_runs (id, project_id, workflow_id, started_at) values (" + q(id) +
          ", " + q(kProject) + ", " + q(kWorkflow) + ", " + kT0 + " + interval " +
          q(started + " s") + ")");
}

void finish_run(const TestDatabase& db, const std::string& id, const std::string& status,
                const std::string& finished) {
  db.exec("update workflow_runs set status = " + q(status) + ", finished_at = " + kT0 +
          " + interval " + q(finished + " s") + " where id = " + q(id) + ";" + kMove);
}

// A job enqueued and (unless started is empty) started at kT0 + seconds.
void job(const TestDatabase& db, const std::string& run, const std::string& enqueued,
         const std::string& started, int attempt = 1) {
  const std::string start =
      started.empty() ? "null" : std::string(kT0) + " + interval " + q(started + " s");
  db.exec(
      "insert into job_tracking (msg_id, run_id, queue_name, attempt, enqueued_at, started_at) "
      "values (" +
      std::to_string(attempt) + ", " + q(run) + ", 'workflow_jobs', " + std::to_string(attempt) +
      ", " + kT0 + " + interval " + q(enqueued + " s") + ", " + start + ")");
}

void event(const TestDatabase& db, const std::string& run, const std::string& at,
           const std::string& type, const std::string& payload) {
  db.exec("insert into workflow_events (run_id, ts, type, payload) values (" + q(run) + ", " + kT0 +
          " + interval " + q(at + " s") + ", " + q(type) + ", " + q(payload) + ")");
}

// Calls the details function for these runs; returns how many rows it says it inserted.
long long record(const TestDatabase& db, const std::vector<std::string>& runs,
                 const std::string& source = "capture") {
  std::string ids = "array[";
  for (std::size_t i = 0; i < runs.size(); ++i) ids += (i ? ", " : "") + q(runs[i]) + "::uuid";
  ids += "]::uuid[]";
  pqxx::connection c(db.url());
  pqxx::work tx(c);
  const auto n = tx.exec1("select count(*) from meshhook_stats_record_run_details(" + ids + ", " +
                          q(source) + ")")[0]
                     .as<long long>();
  tx.commit();
  return n;
}

// Every row of a query, columns joined by '|', for comparing whole result sets.
std::vector<std::string> rows(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  std::vector<std::string> out;
  for (const auto& r : tx.exec(sql)) {
    std::string line;
    for (const auto& f : r) line += (f.is_null() ? "<null>" : f.c_str()) + std::string("|");
    out.push_back(line);
  }
  return out;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 20s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

bridge::TailerOptions tailer_options(const std::string& url, std::chrono::milliseconds delay) {
  bridge::TailerOptions o;
  o.database_url = url;
  o.interval = 50ms;
  o.details_delay = delay;
  return o;
}

const exporter::FamilySnapshot* family(const std::vector<exporter::FamilySnapshot>& fs,
                                       std::string_view name) {
  for (const auto& f : fs) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

// Observations per label set of one family ("v1,v2" -> count; counters: their value).
std::map<std::string, double> counts(const exporter::Registry& registry, std::string_view name) {
  std::map<std::string, double> out;
  const auto fs = registry.collect();
  const auto* f = family(fs, name);
  if (f == nullptr) return out;
  for (const auto& s : f->series) {
    std::string key;
    for (const auto& v : s.label_values) key += (key.empty() ? "" : ",") + v;
    out[key] += f->bounds.empty() ? s.value : static_cast<double>(s.count);
  }
  return out;
}

constexpr const char* kRunA = "a0000000-0000-4000-8000-000000000001";
constexpr const char* kRunB = "b0000000-0000-4000-8000-000000000002";
constexpr const char* kRunC = "c0000000-0000-4000-8000-000000000003";
constexpr const char* kRunD = "d0000000-0000-4000-8000-000000000004";

constexpr const char* kQueueRows =
    "select run_id, project_id, workflow_id, status, finished_at, queued_at, started_at, jobs, "
    "queue_wait_ms, start_wait_ms from queue_time_statistics order by run_id";
constexpr const char* kStepRows =
    "select run_id, step_id, step_type, project_id, workflow_id, status, attempts, started_at, "
    "finished_at, duration_ms from step_time_statistics order by run_id, step_id";

// Many runs with MeshHook's usual shapes: 1-3 job attempts (some never started), three steps
// each with 0-2 failed attempts, some ending failed, some never ending.
std::string many_runs_sql(int from, int to) {
  const std::string runs = "(select g, md5('run' || g)::uuid as id, " + std::string(kT0) +
                           " + g * interval '1 min' as t from generate_series(" +
                           std::to_string(from) + ", " + std::to_string(to) + ") g) r";
  return "insert into workflow_runs (id, project_id, workflow_id, started_at) select r.id, " +
         q(kProject) + ", " + q(kWorkflow) + ", r.t from " + runs +
         ";"
         "insert into job_tracking (msg_id, run_id, queue_name, attempt, enqueued_at, started_at)"
         " select r.g * 10 + a, r.id, 'workflow_jobs', a, r.t + a * interval '1 s',"
         "   case when a = 3 and r.g % 4 = 0 then null"
         "   else r.t + a * interval '1 s' + (r.g * a * 37 % 1000) * interval '1 ms'"
         "        + (r.g % 7) * interval '1 us' end"
         " from " +
         runs +
         ", generate_series(1, 1 + r.g % 3) a;"
         "insert into workflow_events (run_id, ts, type, payload)"
         " select r.id, r.t + s * interval '2 s', 'step_started',"
         "   jsonb_build_object('node', jsonb_build_object('id', 'step-' || s, 'type', 'http'))"
         " from " +
         runs +
         ", generate_series(1, 3) s;"
         "insert into workflow_events (run_id, ts, type, payload)"
         " select r.id, r.t + s * interval '2 s' + k * interval '0.3 s' + interval '0.1 s',"
         "   'step_failed', jsonb_build_object('node', jsonb_build_object('id', 'step-' || s),"
         "                                     'attempt', k, 'error', 'HTTP 503')"
         " from " +
         runs +
         ", generate_series(1, 3) s, generate_series(1, 2) k where k <= (r.g + s) % 3;"
         "insert into workflow_events (run_id, ts, type, payload)"
         " select r.id, r.t + s * interval '2 s' + interval '1.2345 s',"
         "   case when (r.g + s) % 4 = 0 then 'step_failed' else 'step_succeeded' end,"
         "   jsonb_build_object('node', jsonb_build_object('id', 'step-' || s))"
         " from " +
         runs +
         ", generate_series(1, 3) s where (r.g * s) % 5 <> 0;"
         "insert into workflow_events (run_id, ts, type, payload)"
         " select r.id, r.t + s * interval '2 s' + interval '1.5 s', 'http_attempted',"
         "   jsonb_build_object('node', 'step-' || s, 'status', 502)"
         " from " +
         runs +
         ", generate_series(1, 3) s where (r.g * s) % 5 = 0;"
         "update workflow_runs set status = case when extract(minute from started_at)::int % 5 = 0"
         " then 'failed' else 'succeeded' end, finished_at = started_at + interval '20 s'"
         " where status = 'running';" +
         kMove;
}

}  // namespace

TEST_CASE("queue wait of a run sums the waits of every job attempt, start wait is the first's",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  job(db, kRunA, "0", "0.2505", 1);    // waited 250.5 ms, then failed
  job(db, kRunA, "1", "1.5", 2);       // 500 ms
  job(db, kRunA, "2", "2.000499", 3);  // 0.499 ms
  job(db, kRunA, "3", "", 4);          // never started: no wait of its own
  job(db, kRunA, "4", "3.9", 5);       // a clock that went backwards: 0, not negative
  finish_run(db, kRunA, "succeeded", "10");
  start_run(db, kRunB);  // only a job still queued: no queue row
  job(db, kRunB, "0", "");
  finish_run(db, kRunB, "canceled", "5");
  start_run(db, kRunC);  // no jobs at all
  finish_run(db, kRunC, "failed", "1");

  CHECK(record(db, {kRunA, kRunB, kRunC}) == 1);
  // 250500 + 500000 + 499 + 0 us = 750.999 ms -> 751; the first job's 250.5 ms -> 251.
  CHECK(rows(db,
             "select run_id, status, finished_at, queued_at, started_at, jobs, queue_wait_ms, "
             "start_wait_ms, source from queue_time_statistics") ==
        std::vector<std::string>{std::string(kRunA) +
                                 "|succeeded|2026-01-01 00:00:10+00|2026-01-01 00:00:00+00|"
                                 "2026-01-01 00:00:00.2505+00|4|751|251|capture|"});
  // Again: nothing more.
  CHECK(record(db, {kRunA, kRunB, kRunC}) == 0);
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 1);
}

TEST_CASE("queue waits of exactly a millisecond and of half a millisecond round like run times",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  job(db, kRunA, "0", "0.001");
  finish_run(db, kRunA, "succeeded", "1");
  start_run(db, kRunB);
  job(db, kRunB, "0", "0.0005");
  job(db, kRunB, "1", "1.0014995");  // microseconds: 1.4995 ms is stored as 1.5 ms
  finish_run(db, kRunB, "succeeded", "2");
  CHECK(record(db, {kRunA, kRunB}) == 2);
  CHECK(rows(db,
             "select run_id, queue_wait_ms, start_wait_ms from queue_time_statistics "
             "order by run_id") ==
        std::vector<std::string>{std::string(kRunA) + "|1|1|", std::string(kRunB) + "|2|1|"});
}

TEST_CASE("a step that failed on every attempt is recorded failed, with its five attempts",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  event(db, kRunA, "1", "step_started", R"({"node": {"id": "charge", "type": "http"}})");
  for (int attempt = 1; attempt <= 5; ++attempt) {
    const double t = 1 + attempt * 0.9;
    event(db, kRunA, std::to_string(t - 0.4), "http_attempted",
          R"({"node": "charge", "status": 503})");
    event(db, kRunA, std::to_string(t), "step_failed",
          R"({"node": {"id": "charge"}, "attempt": )" + std::to_string(attempt) +
              R"(, "error": "HTTP 503"})");
  }
  event(db, kRunA, "6", "run_completed", R"({"status": "failed"})");
  finish_run(db, kRunA, "failed", "6");
  CHECK(record(db, {kRunA}) == 1);
  CHECK(rows(db,
             "select step_id, step_type, status, attempts, started_at, finished_at, duration_ms, "
             "project_id, workflow_id, source from step_time_statistics") ==
        std::vector<std::string>{"charge|http|failed|5|2026-01-01 00:00:01+00|"
                                 "2026-01-01 00:00:05.5+00|4500|" +
                                 std::string(kProject) + "|" + kWorkflow + "|capture|"});
}

TEST_CASE("a step retried and then succeeded took one attempt more than its failures",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  event(db, kRunA, "0.1", "step_started", R"({"node": {"id": "fetch", "type": "http"}})");
  event(db, kRunA, "0.2", "http_attempted", R"({"node": "fetch", "status": 500})");
  event(db, kRunA, "0.3", "step_failed", R"({"node": {"id": "fetch"}, "attempt": 1})");
  event(db, kRunA, "1.2", "http_attempted", R"({"node": "fetch", "status": 502})");
  event(db, kRunA, "1.3", "step_failed", R"({"node": {"id": "fetch"}, "attempt": 2})");
  event(db, kRunA, "2.3", "http_attempted", R"({"node": "fetch", "status": 200})");
  event(db, kRunA, "2.3455", "step_succeeded", R"({"node": {"id": "fetch"}, "next": "notify"})");
  // A node given as a plain id, and a type only on its start.
  event(db, kRunA, "2.4", "step_started", R"({"node": {"id": "notify", "type": "email"}})");
  event(db, kRunA, "2.6", "step_succeeded", R"({"node": "notify"})");
  finish_run(db, kRunA, "succeeded", "3");
  CHECK(record(db, {kRunA}) == 2);
  // 2.3455 - 0.1 s = 2245.5 ms, rounded half up.
  CHECK(rows(db,
             "select step_id, step_type, status, attempts, started_at, finished_at, duration_ms "
             "from step_time_statistics order by started_at") ==
        std::vector<std::string>{
            "fetch|http|succeeded|3|2026-01-01 00:00:00.1+00|2026-01-01 00:00:02.3455+00|2246|",
            "notify|email|succeeded|1|2026-01-01 00:00:02.4+00|2026-01-01 00:00:02.6+00|200|"});
}

TEST_CASE("a step that never ended is not recorded", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  event(db, kRunA, "0.1", "step_started", R"({"node": {"id": "ok", "type": "transform"}})");
  event(db, kRunA, "0.2", "step_succeeded", R"({"node": {"id": "ok"}})");
  // Canceled while its HTTP call was in flight.
  event(db, kRunA, "0.3", "step_started", R"({"node": {"id": "call", "type": "http"}})");
  event(db, kRunA, "0.4", "http_attempted", R"({"node": "call", "status": 200})");
  // Failed once, then canceled during the retry.
  event(db, kRunA, "0.3", "step_started", R"({"node": {"id": "retry", "type": "http"}})");
  event(db, kRunA, "0.5", "step_failed", R"({"node": {"id": "retry"}, "attempt": 1})");
  event(db, kRunA, "0.9", "step_started", R"({"node": {"id": "retry", "type": "http"}})");
  // An end without a start.
  event(db, kRunA, "0.6", "step_succeeded", R"({"node": {"id": "orphan"}})");
  finish_run(db, kRunA, "canceled", "1");
  CHECK(record(db, {kRunA}) == 1);
  CHECK(rows(db, "select step_id, status, attempts from step_time_statistics") ==
        std::vector<std::string>{"ok|succeeded|1|"});
}

TEST_CASE("events of one step in two monthly partitions make one step", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  // Around the start of this month: the last event is in this month's partition, the first in
  // the previous month's.
  db.exec("insert into workflow_runs (id, project_id, workflow_id, started_at) values (" +
          q(kRunA) + ", " + q(kProject) + ", " + q(kWorkflow) +
          ", date_trunc('month', now()) - interval '1 s');"
          "insert into workflow_events (run_id, ts, type, payload) values (" +
          q(kRunA) +
          ", date_trunc('month', now()) - interval '0.5 s', 'step_started', "
          "'{\"node\": {\"id\": \"sync\", \"type\": \"http\"}}'), (" +
          q(kRunA) +
          ", date_trunc('month', now()) + interval '0.7 s', 'step_succeeded', "
          "'{\"node\": {\"id\": \"sync\"}}');"
          "update workflow_runs set status = 'succeeded', "
          "finished_at = date_trunc('month', now()) + interval '1 s';" +
          kMove);
  CHECK(db.scalar("select count(distinct tableoid) from workflow_events") == 2);
  CHECK(record(db, {kRunA}) == 1);
  CHECK(rows(db, "select step_id, status, duration_ms from step_time_statistics") ==
        std::vector<std::string>{"sync|succeeded|1200|"});
}

TEST_CASE("malformed event payloads name no step and never make the call fail", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  const std::string long_id(201, 'x');
  const std::string long_type(150, 't');
  for (const char* payload :
       {R"({})", R"("just text")", R"([1, 2])", R"({"node": null})",
        R"({"node": {"type": "http"}})", R"({"node": ["a"]})", R"({"node": {"id": ""}})"}) {
    event(db, kRunA, "0.1", "step_started", payload);
    event(db, kRunA, "0.2", "step_succeeded", payload);
  }
  event(db, kRunA, "0.1", "step_started", R"({"node": {"id": ")" + long_id + R"("}})");
  event(db, kRunA, "0.2", "step_succeeded", R"({"node": {"id": ")" + long_id + R"("}})");
  // A numeric id is an id; an over-long type is cut to 100 characters.
  event(db, kRunA, "0.1", "step_started",
        R"({"node": {"id": 42, "type": ")" + long_type + R"("}})");
  event(db, kRunA, "0.3", "step_succeeded", R"({"node": 42})");
  finish_run(db, kRunA, "succeeded", "1");
  CHECK(record(db, {kRunA}) == 1);
  CHECK(rows(db, "select step_id, length(step_type), status from step_time_statistics") ==
        std::vector<std::string>{"42|100|succeeded|"});
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 0);
}

TEST_CASE("a run whose rows Postgres refuses is dead-lettered and the rest of the batch recorded",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  start_run(db, kRunA);
  db.exec(
      "insert into job_tracking (msg_id, run_id, queue_name, enqueued_at, started_at) values"
      " (1, " +
      q(kRunA) + ", 'workflow_jobs', " + kT0 + ", 'infinity')");
  finish_run(db, kRunA, "succeeded", "1");
  start_run(db, kRunB);
  job(db, kRunB, "0", "0.25");
  event(db, kRunB, "0.3", "step_started", R"({"node": {"id": "s"}})");
  event(db, kRunB, "0.4", "step_succeeded", R"({"node": {"id": "s"}})");
  finish_run(db, kRunB, "succeeded", "1");

  CHECK(record(db, {kRunA, kRunB}) == 2);
  CHECK(db.scalar("select count(*) from queue_time_statistics where run_id = '" +
                  std::string(kRunB) + "'") == 1);
  CHECK(db.scalar("select count(*) from step_time_statistics") == 1);
  CHECK(rows(db,
             "select run_id, project_id, source, reason like 'queue wait and steps: %' from "
             "execution_time_rejected_runs") ==
        std::vector<std::string>{std::string(kRunA) + "|" + kProject + "|capture|t|"});
}

TEST_CASE(
    "capture adds no trigger to job_tracking or workflow_events and installs the details "
    "function only where both exist",
    "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  {
    TestDatabase db(server);
    make_meshhook(db);
    CHECK(db.scalar("select count(*) from pg_trigger t where not t.tgisinternal and t.tgrelid in"
                    " (select relid from pg_partition_tree('workflow_events')"
                    "  union all select 'job_tracking'::regclass)") == 0);
    // The run capture's two (finishing updates and runs inserted already finished).
    CHECK(db.scalar("select count(*) from pg_trigger where tgrelid = 'workflow_runs'::regclass "
                    "and not tgisinternal") == 2);
    CHECK(db.scalar("select count(*) from pg_proc where proname = "
                    "'meshhook_stats_record_run_details' and not prosecdef") == 1);
    // Whatever MeshHook writes there commits, malformed or not.
    start_run(db, kRunA);
    event(db, kRunA, "0", "step_succeeded", R"("not an object")");
    db.exec("insert into job_tracking (msg_id, run_id, queue_name, started_at) values (1, " +
            q(kRunA) + ", 'q', 'infinity')");
    db.exec_file("sql/integrations/meshhook/uninstall.sql");
    CHECK(db.scalar("select count(*) from pg_proc where proname in ("
                    "'meshhook_stats_record_run_details', 'meshhook_stats_insert_run_details', "
                    "'meshhook_stats_capture_run')") == 0);
  }
  {
    TestDatabase db(server);
    bridge::migrate(db.url());
    db.exec(
        "create table workflow_runs (id uuid primary key, project_id uuid, workflow_id uuid, "
        "status text, started_at timestamptz, finished_at timestamptz)");
    CHECK(bridge::install_meshhook_capture(db.url()));
    // The run capture's two (finishing updates and runs inserted already finished).
    CHECK(db.scalar("select count(*) from pg_trigger where tgrelid = 'workflow_runs'::regclass "
                    "and not tgisinternal") == 2);
    CHECK(db.scalar("select count(*) from pg_proc where proname = "
                    "'meshhook_stats_record_run_details'") == 0);
  }
}

TEST_CASE(
    "tailer records and observes the queue wait and steps of captured runs once, "
    "whatever order they finish in",
    "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url(), 0ms), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));

  for (const auto* run : {kRunA, kRunB, kRunC, kRunD}) start_run(db, run);
  for (const auto* run : {kRunA, kRunB, kRunC}) {
    job(db, run, "0", "0.5");
    event(db, run, "1", "step_started", R"({"node": {"id": "fetch", "type": "http"}})");
    event(db, run, "2", "step_succeeded", R"({"node": {"id": "fetch"}})");
  }
  event(db, kRunB, "3", "step_started", R"({"node": {"id": "charge", "type": "http"}})");
  event(db, kRunB, "4", "step_failed", R"({"node": {"id": "charge"}})");
  // They reach execution_time_statistics in the order C, A, D, B while their finished_at run
  // A, B, C, D; and B's row takes the smallest id but commits last: a compactor's move that is
  // still open (the others' moves skip the row it holds).
  db.exec("update workflow_runs set status = 'failed', finished_at = " + std::string(kT0) +
          " + interval '6 s' where id = " + q(kRunB));
  pqxx::connection b_conn(db.url());
  pqxx::work b(b_conn);
  b.exec("select meshhook_stats_move_captured_runs(100000)");
  finish_run(db, kRunC, "succeeded", "7");
  finish_run(db, kRunA, "succeeded", "5");
  finish_run(db, kRunD, "succeeded", "8");
  const bool observed3 = eventually([&] { return tailer.rows_observed() == 3; });
  INFO("observed " << tailer.rows_observed() << ", rows "
                   << db.scalar("select count(*) from execution_time_statistics"));
  REQUIRE(observed3);
  // The runs are observed at once; their details follow the tailer's cursor, which waits for
  // B's transaction to end.
  std::this_thread::sleep_for(300ms);
  CHECK(tailer.details_observed() == 0);
  b.commit();
  const bool recorded7 = eventually([&] { return tailer.details_observed() == 7; });
  INFO("details " << tailer.details_observed() << " at " << tailer.details_position()
                  << ", runs at " << tailer.position());
  REQUIRE(recorded7);
  CHECK(eventually([&] {
    return tailer.details_position() == db.scalar("select max(id) from execution_time_statistics");
  }));
  std::this_thread::sleep_for(200ms);  // more polls add nothing
  tailer.stop();
  CHECK(tailer.details_observed() == 7);

  CHECK(db.scalar("select count(*) from queue_time_statistics where source = 'capture'") == 3);
  CHECK(db.scalar("select count(*) from step_time_statistics where source = 'capture'") == 4);
  const std::string tw = std::string(kProject) + "," + kWorkflow;
  CHECK(counts(registry, "meshhook_workflow_runs_total") ==
        std::map<std::string, double>{{tw + ",failed", 1}, {tw + ",succeeded", 3}});
  CHECK(counts(registry, "meshhook_workflow_run_queue_seconds") ==
        std::map<std::string, double>{{tw, 3}});
  CHECK(counts(registry, "meshhook_workflow_step_duration_seconds") ==
        std::map<std::string, double>{{tw + ",fetch,succeeded", 3}, {tw + ",charge,failed", 1}});
  CHECK(counts(registry, "meshhook_stats_duplicate_runs_total") ==
        std::map<std::string, double>{{"", 0}});
  // On /metrics, with the run as the exemplar.
  std::string text;
  exporter::serialize(text, registry.collect(), exporter::ExpositionFormat::openmetrics);
  CHECK_THAT(text,
             Catch::Matchers::Contains("meshhook_workflow_run_queue_seconds_bucket{tenant=\"" +
                                       std::string(kProject) + "\",workflow=\"" + kWorkflow +
                                       "\",le=\"0.5\"} 3 # {run_id=\""));
  CHECK_THAT(text,
             Catch::Matchers::Contains("meshhook_workflow_step_duration_seconds_sum{tenant=\"" +
                                       std::string(kProject) + "\",workflow=\"" + kWorkflow +
                                       "\",step=\"charge\",status=\"failed\"} 1"));
}

TEST_CASE("tailer waits the settle delay, so a step that ends just after its run is counted",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url(), 3000ms), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));

  start_run(db, kRunA);
  job(db, kRunA, "0", "0.1");
  event(db, kRunA, "1", "step_started", R"({"node": {"id": "notify", "type": "http"}})");
  event(db, kRunA, "1", "step_started", R"({"node": {"id": "hung", "type": "http"}})");
  finish_run(db, kRunA, "succeeded", "2");
  REQUIRE(eventually([&] { return tailer.rows_observed() == 1; }));
  // The step's end commits after the run's finish (its own transaction), well within the
  // delay; the other step never ends.
  event(db, kRunA, "1.5", "step_succeeded", R"({"node": {"id": "notify"}})");
  CHECK(db.scalar("select count(*) from step_time_statistics") == 0);
  REQUIRE(eventually([&] { return tailer.details_observed() == 2; }));
  tailer.stop();
  CHECK(rows(db, "select step_id, status, duration_ms from step_time_statistics") ==
        std::vector<std::string>{"notify|succeeded|500|"});
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 1);
  CHECK(db.scalar("select last_id from meshhook_stats_cursors where name = 'tailer:details'") ==
        db.scalar("select max(id) from execution_time_statistics"));
}

TEST_CASE(
    "tailer goes on observing runs while the details function is missing, and records "
    "their details once it is installed",
    "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  db.exec("drop function meshhook_stats_record_run_details(uuid[], text)");
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url(), 0ms), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));
  for (const auto* run : {kRunA, kRunB}) {
    start_run(db, run);
    job(db, run, "0", "0.2");
    finish_run(db, run, "succeeded", "1");
  }
  REQUIRE(eventually([&] { return tailer.rows_observed() == 2; }));
  std::this_thread::sleep_for(300ms);  // several polls
  CHECK(tailer.active());
  CHECK(tailer.details_observed() == 0);
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 0);

  REQUIRE(bridge::install_meshhook_capture(db.url()));
  CHECK(eventually([&] { return tailer.details_observed() == 2; }));
  tailer.stop();
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 2);
  CHECK(counts(registry, "meshhook_workflow_runs_total").begin()->second == 2);
}

TEST_CASE("tailer logs a database error while recording details, records nothing, and retries",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url(), 0ms), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));
  // Not the runs' fault: nothing is dead-lettered, nothing skipped.
  db.exec("alter table job_tracking rename to job_tracking_moved");
  start_run(db, kRunA);
  db.exec(
      "insert into job_tracking_moved (msg_id, run_id, queue_name, enqueued_at, started_at) "
      "values (1, " +
      q(kRunA) + ", 'q', " + kT0 + ", " + kT0 + " + interval '0.1 s')");
  finish_run(db, kRunA, "succeeded", "1");
  REQUIRE(eventually([&] { return tailer.rows_observed() == 1; }));
  std::this_thread::sleep_for(300ms);  // several polls, each failing
  CHECK(tailer.active());
  CHECK(tailer.details_observed() == 0);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 0);
  db.exec("alter table job_tracking_moved rename to job_tracking");
  CHECK(eventually([&] { return tailer.details_observed() == 1; }));
  tailer.stop();
  CHECK(db.scalar("select queue_wait_ms from queue_time_statistics") == 100);
}

TEST_CASE(
    "backfill fills queue waits and steps of imported and of captured runs, in batches, "
    "once",
    "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  // 30 runs captured without a tailer to record their details, 20 finished before the trigger.
  db.exec(many_runs_sql(1, 30));
  db.exec("alter table workflow_runs disable trigger meshhook_stats_capture_run");
  db.exec(many_runs_sql(31, 50));
  db.exec("alter table workflow_runs enable trigger meshhook_stats_capture_run");
  // And one that finished just now: its last events may not be in yet.
  db.exec("insert into workflow_runs (id, project_id, workflow_id, started_at) values (" +
          q(kRunA) + ", " + q(kProject) + ", " + q(kWorkflow) +
          ", now() - interval '1 s');"
          "insert into job_tracking (msg_id, run_id, queue_name, enqueued_at, started_at) values"
          " (1, " +
          q(kRunA) +
          ", 'q', now() - interval '1 s', now());"
          "update workflow_runs set status = 'succeeded', finished_at = now() where id = " +
          q(kRunA) + ";" + kMove);
  // Steps with an end and no HTTP attempt after it (the generator's never-ending ones).
  const long long steps_expected = db.scalar(
      "select count(*) from (select run_id, payload -> 'node' ->> 'id' as node from workflow_events"
      " where type in ('step_succeeded', 'step_failed') group by 1, 2) s"
      " where not exists (select 1 from workflow_events h where h.run_id = s.run_id"
      "   and h.type = 'http_attempted' and h.payload ->> 'node' = s.node)");
  REQUIRE(steps_expected > 50);

  constexpr std::int64_t kSince = 1'735'689'600'000'000;  // 2025-01-01
  std::vector<bridge::BackfillProgress> seen;
  bridge::BackfillOptions options;
  options.chunk_rows = 8;
  options.details_chunk_rows = 7;
  options.details_delay = 60s;
  auto progress = [&](const bridge::BackfillProgress& p) { seen.push_back(p); };
  CHECK(bridge::backfill(db.url(), kSince, std::nullopt, progress, options) == 20);
  std::vector<bridge::BackfillProgress> details;
  for (const auto& p : seen) {
    if (p.stage == bridge::BackfillStage::details) details.push_back(p);
  }
  REQUIRE(details.size() >= 8);  // 51 rows in chunks of 7
  CHECK(details.front().rows_total == 50);
  CHECK(details.front().rows_scanned == 0);
  CHECK(details.back().rows_scanned == 50);
  CHECK(details.back().queue_rows_inserted == 50);
  CHECK(static_cast<long long>(details.back().step_rows_inserted) == steps_expected);
  CHECK(static_cast<long long>(details.back().rows_inserted) == 50 + steps_expected);
  for (std::size_t i = 1; i < details.size(); ++i) {
    CHECK(details[i].rows_scanned >= details[i - 1].rows_scanned);
  }
  CHECK(db.scalar("select count(*) from queue_time_statistics where source = 'backfill'") == 50);
  CHECK(db.scalar("select count(*) from step_time_statistics where source = 'backfill'") ==
        steps_expected);
  CHECK(db.scalar("select count(*) from queue_time_statistics where run_id = " + q(kRunA)) == 0);

  // Again: nothing new. Once the last run has settled, only its rows.
  seen.clear();
  CHECK(bridge::backfill(db.url(), kSince, std::nullopt, progress, options) == 0);
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 50);
  options.details_delay = 0ms;
  seen.clear();
  CHECK(bridge::backfill(db.url(), kSince, std::nullopt, progress, options) == 0);
  REQUIRE_FALSE(seen.empty());
  CHECK(seen.back().stage == bridge::BackfillStage::details);
  CHECK(seen.back().rows_scanned == 1);
  CHECK(seen.back().queue_rows_inserted == 1);
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 51);
  CHECK(db.scalar("select count(*) from step_time_statistics") == steps_expected);
}

TEST_CASE("capture and backfill record identical queue and step rows for the same runs",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db);
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url(), 0ms), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));
  db.exec(many_runs_sql(1, 120));
  REQUIRE(eventually([&] {
    return tailer.details_position() == db.scalar("select max(id) from execution_time_statistics");
  }));
  tailer.stop();
  const auto captured_queue = rows(db, kQueueRows);
  const auto captured_steps = rows(db, kStepRows);
  CHECK(captured_queue.size() == 120);
  CHECK(captured_steps.size() > 200);
  CHECK(db.scalar("select count(*) from step_time_statistics where source <> 'capture'") == 0);
  // The three outcomes and retries all occur in the data.
  CHECK(db.scalar("select count(distinct (status, attempts)) from step_time_statistics") >= 4);
  CHECK(db.scalar("select count(*) from step_time_statistics") <
        db.scalar("select count(*) from workflow_events where type = 'step_started'"));

  db.exec("delete from queue_time_statistics; delete from step_time_statistics");
  bridge::BackfillOptions options;
  options.details_delay = 0ms;
  CHECK(bridge::backfill(db.url(), 1'735'689'600'000'000, std::nullopt, {}, options) == 0);
  CHECK(rows(db, kQueueRows) == captured_queue);
  CHECK(rows(db, kStepRows) == captured_steps);
  CHECK(db.scalar("select count(*) from step_time_statistics where source <> 'backfill'") == 0);
}

TEST_CASE("HTTP ingest and MeshHook capture record the same queue and step rows for the same runs",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  // Capture: runs A and B in MeshHook's tables, one job each (started when the run did);
  // A's fetch failed once then succeeded, its notify failed; B's hung step never ended.
  TestDatabase captured(server);
  make_meshhook(captured);
  start_run(captured, kRunA, "1");
  job(captured, kRunA, "0", "1");
  event(captured, kRunA, "1.5", "step_started", R"({"node": {"id": "fetch", "type": "http"}})");
  event(captured, kRunA, "2", "step_failed", R"({"node": {"id": "fetch"}, "attempt": 1})");
  event(captured, kRunA, "3.25", "step_succeeded", R"({"node": {"id": "fetch"}})");
  event(captured, kRunA, "3.5", "step_started", R"({"node": {"id": "notify", "type": "email"}})");
  event(captured, kRunA, "4.0004", "step_failed", R"({"node": {"id": "notify"}, "attempt": 1})");
  finish_run(captured, kRunA, "failed", "5");
  start_run(captured, kRunB, "2");
  job(captured, kRunB, "0.5", "2");
  event(captured, kRunB, "2.1", "step_started", R"({"node": {"id": "fetch", "type": "http"}})");
  event(captured, kRunB, "2.6", "step_succeeded", R"({"node": {"id": "fetch"}})");
  event(captured, kRunB, "2.7", "step_started", R"({"node": {"id": "hung", "type": "http"}})");
  finish_run(captured, kRunB, "succeeded", "3");
  CHECK(record(captured, {kRunA, kRunB}) > 0);

  // HTTP: the same runs as a producer posts them (queued_at, and the steps that ended).
  constexpr std::int64_t kT0Us = 1'767'225'600'000'000;  // kT0
  const auto at = [](double seconds) { return kT0Us + static_cast<std::int64_t>(seconds * 1e6); };
  const auto run = [&](const char* id, bridge::RunStatus status, double queued, double started,
                       double finished, std::vector<bridge::RunStep> steps) {
    bridge::RunEvent e;
    e.run_id = *bridge::Uuid::parse(id);
    e.workflow_id = *bridge::Uuid::parse(kWorkflow);
    e.project_id = *bridge::Uuid::parse(kProject);
    e.status = status;
    e.queued_at_us = at(queued);
    e.started_at_us = at(started);
    e.finished_at_us = at(finished);
    e.steps = std::move(steps);
    return e;
  };
  TestDatabase ingested(server);
  bridge::migrate(ingested.url());
  {
    meshhook::testing::Pipeline pipeline(ingested.url());
    pipeline.write({run(kRunA, bridge::RunStatus::failed, 0, 1, 5,
                        {{"fetch", "http", bridge::StepStatus::succeeded, 2, at(1.5), at(3.25)},
                         {"notify", "email", bridge::StepStatus::failed, 1, at(3.5), at(4.0004)}}),
                    run(kRunB, bridge::RunStatus::succeeded, 0.5, 2, 3,
                        {{"fetch", "http", bridge::StepStatus::succeeded, 1, at(2.1), at(2.6)}})});
  }

  const auto queue = rows(captured, kQueueRows);
  const auto steps = rows(captured, kStepRows);
  CHECK(queue.size() == 2);
  CHECK(steps.size() == 3);
  CHECK(rows(ingested, kQueueRows) == queue);
  CHECK(rows(ingested, kStepRows) == steps);
  CHECK(rows(captured,
             "select run_id, execution_time_ms, status from execution_time_statistics"
             " order by run_id") ==
        rows(ingested,
             "select run_id, execution_time_ms, status from execution_time_statistics"
             " order by run_id"));
}
