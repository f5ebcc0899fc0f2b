// Runs Postgres refuses are kept, with the reason, in execution_time_rejected_runs: the
// writer isolates them from their batch and writes every neighbour; the capture trigger
// catches any error and lets MeshHook's transaction commit.

#include <filesystem>
#include <random>
#include <thread>

#include "db_support.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/exposition.h"
#include "meshhook/exporter/registry.h"

using meshhook::testing::TempDir;
using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bridge::RunEvent event(std::uint32_t n) {
  bridge::RunEvent e;
  e.run_id = *bridge::Uuid::parse("00000000-0000-4000-8000-000000000000");
  e.run_id.bytes[14] = static_cast<std::uint8_t>(n >> 8);
  e.run_id.bytes[15] = static_cast<std::uint8_t>(n);
  e.workflow_id = *bridge::Uuid::parse("22222222-2222-4222-8222-222222222222");
  e.project_id = *bridge::Uuid::parse("11111111-1111-4111-8111-111111111111");
  e.status = bridge::RunStatus::succeeded;
  e.started_at_us = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
  e.finished_at_us = e.started_at_us + 1500 * n;
  return e;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

}  // namespace

TEST_CASE("writer keeps runs Postgres refuses in the dead-letter table and writes their neighbours",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  bridge::SpoolOptions spool_options;
  spool_options.dir = dir.path;
  spool_options.group_commit_us = 0;
  bridge::Spool spool(spool_options);
  meshhook::exporter::Registry registry;
  bridge::BatchWriterOptions options;
  options.database_url = db.url();
  options.batch_rows = 1000;
  options.batch_interval = 20ms;
  bridge::BatchWriter writer(spool, options, registry);

  std::vector<bridge::RunEvent> events;
  for (std::uint32_t n = 1; n <= 200; ++n) events.push_back(event(n));
  // Started and finished 285,000 years BC: before timestamptz begins (22008), mid-batch.
  for (auto i : {57, 140}) {
    events[static_cast<std::size_t>(i)].started_at_us = -9'000'000'000'000'000'000LL;
    events[static_cast<std::size_t>(i)].finished_at_us = -9'000'000'000'000'000'000LL;
  }
  REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
  writer.start();
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();

  CHECK(writer.rows_written() == 198);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 198);
  CHECK(db.scalar("select count(*) from execution_time_rollups where run_count = 198") == 1);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 2);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs where source = 'ingest'"
                  " and sqlstate = '22008' and reason <> ''"
                  " and run_id in ('00000000-0000-4000-8000-00000000003a',"
                  "                '00000000-0000-4000-8000-00000000008d')"
                  " and payload ->> 'run_id' = run_id::text"
                  " and (payload ->> 'finished_at_us')::bigint = -9000000000000000000"
                  " and project_id = '11111111-1111-4111-8111-111111111111'") == 2);
  std::string text;
  meshhook::exporter::serialize(text, registry.collect(),
                                meshhook::exporter::ExpositionFormat::prometheus_text);
  CHECK(text.find("meshhook_stats_write_rejected_runs_total{reason=\"22008\"} 2\n") !=
        std::string::npos);
}

TEST_CASE(
    "capture keeps a run it cannot record as a dead letter and MeshHook's transaction commits",
    "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  db.exec_file("tests/fixtures/meshhook_schema.sql");
  db.exec_file("sql/integrations/meshhook/capture.sql");
  db.exec(
      "insert into projects (id, owner, name) values"
      " ('11111111-1111-4111-8111-111111111111', gen_random_uuid(), 'p');"
      "insert into workflow_definitions (id, project_id, slug, name) values"
      " ('22222222-2222-4222-8222-222222222222', '11111111-1111-4111-8111-111111111111', 'w', 'w');"
      "insert into workflow_runs (project_id, workflow_id, started_at)"
      " select '11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',"
      " now() - i * interval '1 second' from generate_series(1, 4) i;"
      // A constraint the runs break: what an overflow or a schema change would look like.
      "alter table execution_time_statistics add constraint test_short"
      " check (execution_time_ms < 2500)");
  // One transaction finishing all four runs: all four finish and are captured; moving them
  // on, two are refused and kept as dead letters, the other two stored.
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  CHECK(db.scalar("select count(*) from workflow_runs where status = 'succeeded'") == 4);
  CHECK(db.scalar("select count(*) from execution_time_captured_runs") == 4);
  db.exec("select meshhook_stats_move_captured_runs(1000)");
  CHECK(db.scalar("select count(*) from execution_time_captured_runs") == 0);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 2);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs where source = 'capture'"
                  " and sqlstate = '23514' and reason like '%test_short%'"
                  " and payload ->> 'status' = 'succeeded'"
                  " and run_id in (select id from workflow_runs)") == 2);

  // The trigger's table gone altogether (42P01): MeshHook still commits, the run is a dead
  // letter.
  db.exec("alter table execution_time_captured_runs rename to moved_away");
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)"
      " values ('11111111-1111-4111-8111-111111111111', '22222222-2222-4222-8222-222222222222',"
      " 'failed', now(), now())");
  CHECK(db.scalar("select count(*) from workflow_runs") == 5);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs where sqlstate = '42P01'") ==
        1);
  // Running and paused runs never reach the function (the trigger's WHEN clause).
  db.exec("update workflow_runs set status = 'paused', finished_at = null where status = 'failed'");
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 3);
}
