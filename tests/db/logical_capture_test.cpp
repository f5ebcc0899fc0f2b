// The logical capture (capture.mode: logical): no trigger on workflow_runs, finished runs read
// from a replication slot (sql/integrations/meshhook/capture_logical.sql) and stored once.

#include "meshhook/bridge/storage/logical_capture.h"

#include <thread>

#include "db_support.h"
#include "logical_capture_support.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/tailer.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

using meshhook::testing::make_meshhook_logical;
using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;
namespace exporter = meshhook::exporter;
using namespace std::chrono_literals;

namespace {

constexpr const char* kProject = meshhook::testing::kCaptureProject;
constexpr const char* kWorkflow = meshhook::testing::kCaptureWorkflow;
constexpr const char* kRun = "33333333-3333-4333-8333-333333333333";

void start_runs(const TestDatabase& db, int n) {
  db.exec("insert into workflow_runs (project_id, workflow_id, started_at) select '" +
          std::string(kProject) + "', '" + kWorkflow + "', now() - interval '2 s'" +
          " from generate_series(1, " + std::to_string(n) + ")");
}

long long stored(const TestDatabase& db) {
  return db.scalar("select count(*) from execution_time_statistics");
}

std::string confirmed_lsn(const TestDatabase& db) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  return tx
      .exec_params1(
          "select confirmed_flush_lsn::text from pg_replication_slots "
          "where slot_name = $1",
          db.name())[0]
      .as<std::string>();
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

double family_total(const exporter::Registry& registry, const std::string& name) {
  double total = 0;
  for (const auto& f : registry.collect()) {
    if (f.name != name) continue;
    for (const auto& s : f.series) total += s.value;
  }
  return total;
}

}  // namespace

TEST_CASE("logical capture stores a run once when it reaches a terminal status", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  const auto o = make_meshhook_logical(db);
  CHECK(db.scalar("select count(*) from pg_trigger where tgrelid = 'workflow_runs'::regclass "
                  "and not tgisinternal") == 0);
  db.exec(std::string("insert into workflow_runs (id, project_id, workflow_id, started_at) "
                      "values ('") +
          kRun + "', '" + kProject + "', '" + kWorkflow + "', '2026-01-01 00:00:00+00')");

  db.exec("update workflow_runs set status = 'paused'");
  db.exec("update workflow_runs set status = 'running'");
  db.exec("update workflow_runs set status = 'failed'");  // terminal without finished_at
  auto round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 0);
  CHECK(stored(db) == 0);

  db.exec(
      "update workflow_runs set status = 'succeeded', finished_at = "
      "'2026-01-01 00:00:01.2345+00'");
  round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 1);
  CHECK(round.stored == 1);
  // Updated again after finishing: delivered again, stored once, the first finish kept.
  db.exec("update workflow_runs set finished_at = '2026-01-01 00:00:09+00'");
  db.exec("update workflow_runs set status = 'canceled'");
  round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 2);
  CHECK(round.stored == 0);
  CHECK(stored(db) == 1);

  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  auto row = tx.exec1(
      "select run_id::text, project_id::text, workflow_id::text, status, execution_time_ms, "
      "source, finished_at = '2026-01-01 00:00:01.2345+00' from execution_time_statistics");
  CHECK(row[0].as<std::string>() == kRun);
  CHECK(row[1].as<std::string>() == kProject);
  CHECK(row[2].as<std::string>() == kWorkflow);
  CHECK(row[3].as<std::string>() == "succeeded");
  CHECK(row[4].as<long long>() == 1235);  // 1234.5 ms rounds half up
  CHECK(row[5].as<std::string>() == "capture");
  CHECK(row[6].as<bool>());
}

TEST_CASE("logical capture stores multi-run transactions and inserts, not rolled back ones",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  const auto o = make_meshhook_logical(db);
  // MeshHook's table has more columns than the six the publication sends.
  db.exec("alter table workflow_runs add column output jsonb");
  start_runs(db, 6);
  // Two runs in one transaction, then four in another with a rolled back one between.
  db.exec(
      "update workflow_runs set status = 'succeeded', finished_at = now() where id in "
      "(select id from workflow_runs order by id limit 2)");
  db.exec(
      "begin; update workflow_runs set status = 'failed', finished_at = now() "
      "where status = 'running'; rollback;");
  db.exec(
      "update workflow_runs set status = 'failed', finished_at = now(), output = '{\"a\": 1}' "
      "where status = 'running'");
  // Inserted already finished: captured too.
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at) "
      "select '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'canceled', now() - interval '1 s', now() from generate_series(1, 3)");
  const auto round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 9);
  CHECK(round.stored == 9);
  CHECK(db.scalar("select count(*) from execution_time_statistics s join workflow_runs r "
                  "on r.id = s.run_id and r.status = s.status and r.finished_at = s.finished_at "
                  "where s.source = 'capture'") == 9);
  CHECK(db.scalar("select count(*) from execution_time_statistics where status = 'failed'") == 4);
}

TEST_CASE("logical capture re-delivers what was stored but not confirmed, and stores it once",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  const auto o = make_meshhook_logical(db);
  start_runs(db, 3);
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  const auto before = confirmed_lsn(db);
  // The daemon dies after its commit and before it confirms the batch to the slot.
  auto round = bridge::LogicalCapture::capture_once(o, false);
  CHECK(round.stored == 3);
  CHECK(confirmed_lsn(db) == before);
  round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 3);
  CHECK(round.stored == 0);
  CHECK(stored(db) == 3);
  CHECK(confirmed_lsn(db) != before);
  round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 0);
  CHECK(stored(db) == 3);
}

TEST_CASE("logical capture keeps a run Postgres refuses as a dead letter, its neighbours stored",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  const auto o = make_meshhook_logical(db);
  db.exec("insert into workflow_runs (project_id, workflow_id, started_at) select '" +
          std::string(kProject) + "', '" + kWorkflow +
          "', now() - i * interval '1 second' from generate_series(1, 4) i;"
          // A constraint the runs break: what an overflow or a schema change would look like.
          "alter table execution_time_statistics add constraint test_short"
          " check (execution_time_ms < 2500)");
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  auto round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 4);
  CHECK(round.stored == 2);
  CHECK(round.rejected == 2);
  CHECK(stored(db) == 2);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs where source = 'capture'"
                  " and sqlstate = '23514' and reason like '%test_short%'"
                  " and payload ->> 'status' = 'succeeded' and payload ->> 'via' = 'logical'"
                  " and run_id in (select id from workflow_runs)") == 2);
  // Confirmed: not refused again.
  round = bridge::LogicalCapture::capture_once(o);
  CHECK(round.delivered == 0);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 2);
}

TEST_CASE("trigger and logical capture installed at once count each run once", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  const auto o = make_meshhook_logical(db);
  REQUIRE(bridge::install_meshhook_capture(db.url()));  // the trigger too
  start_runs(db, 5);
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  CHECK(db.scalar("select count(*) from execution_time_captured_runs") == 5);
  // Counted once while only the trigger's inbox holds them, and once the slot's copy is in.
  const char* counted =
      "select (select count(*) from execution_time_statistics) + (select count(*) from "
      "execution_time_captured_runs c where not exists (select 1 from execution_time_statistics "
      "s where s.run_id = c.run_id))";
  CHECK(db.scalar(counted) == 5);
  CHECK(bridge::LogicalCapture::capture_once(o).stored == 5);
  CHECK(db.scalar(counted) == 5);
  db.exec("select meshhook_stats_compact(1000)");
  CHECK(db.scalar("select count(*) from execution_time_captured_runs") == 0);
  CHECK(stored(db) == 5);
}

TEST_CASE("logical capture names the fix when its slot is missing, and uninstall drops it",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  auto o = make_meshhook_logical(db);
  o.slot = db.name() + "_other";
  REQUIRE_THROWS_WITH(bridge::LogicalCapture::capture_once(o),
                      Catch::Contains("does not exist") && Catch::Contains("capture_logical.sql"));
  // Installing again keeps the slot where it was.
  const auto before = confirmed_lsn(db);
  REQUIRE(bridge::install_meshhook_logical_capture(db.url(), db.name()));
  CHECK(confirmed_lsn(db) == before);
  db.exec("set meshhook_stats.slot = '" + db.name() + "';" +
          meshhook::testing::read_file(std::string(MESHHOOK_SOURCE_DIR) +
                                       "/sql/integrations/meshhook/uninstall.sql"));
  CHECK(db.scalar("select count(*) from pg_replication_slots where slot_name = '" + db.name() +
                  "'") == 0);
  CHECK(db.scalar("select count(*) from pg_publication") == 0);
}

TEST_CASE("the daemon's capture loop stores finished runs and the tailer observes them",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  const auto o = make_meshhook_logical(db);
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, exporter::RunMetricsOptions{});
  bridge::LogicalCapture capture(o, registry);
  bridge::TailerOptions t;
  t.database_url = db.url();
  t.interval = 50ms;
  bridge::Tailer tailer(t, metrics);
  capture.start();
  tailer.start();
  REQUIRE(eventually([&] { return capture.active(); }));
  // A second replica stands by: the lock is taken.
  exporter::Registry other_registry;
  bridge::LogicalCapture other(o, other_registry);
  other.start();

  start_runs(db, 20);
  db.exec(
      "update workflow_runs set status = 'succeeded', finished_at = now() where id in "
      "(select id from workflow_runs order by id limit 10)");
  db.exec(
      "update workflow_runs set status = 'failed', finished_at = now() "
      "where status = 'running'");
  REQUIRE(eventually([&] { return stored(db) == 20; }));
  CHECK(eventually([&] { return family_total(registry, "meshhook_workflow_runs_total") == 20; }));
  CHECK(family_total(registry, "meshhook_stats_capture_runs_total") == 20);
  CHECK(family_total(registry, "meshhook_stats_capture_active") == 1);
  CHECK_FALSE(other.active());
  CHECK(family_total(other_registry, "meshhook_stats_capture_runs_total") == 0);
  // The slot is confirmed as the batches are stored (and past WAL that holds no run).
  const auto lsn = db.scalar("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint");
  CHECK(eventually([&] {
    return db.scalar(
               "select pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint from "
               "pg_replication_slots where slot_name = '" +
               db.name() + "'") >= lsn;
  }));

  // Stopped, the other replica takes over where the slot was confirmed.
  capture.stop();
  REQUIRE(eventually([&] { return other.active(); }));
  db.exec(
      "update workflow_runs set status = 'canceled', finished_at = now(), id = "
      "gen_random_uuid() where status = 'failed' and id in (select id from workflow_runs "
      "where status = 'failed' order by id limit 1)");
  start_runs(db, 1);
  db.exec(
      "update workflow_runs set status = 'succeeded', finished_at = now() "
      "where status = 'running'");
  CHECK(eventually([&] { return stored(db) == 22; }));
  other.stop();
  tailer.stop();
  CHECK(stored(db) == 22);
}
