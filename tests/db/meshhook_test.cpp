#include <thread>

#include "db_support.h"
#include "meshhook/bridge/storage/backfill.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/tailer.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;
namespace exporter = meshhook::exporter;
using namespace std::chrono_literals;

namespace {

constexpr const char* kProject = "11111111-1111-4111-8111-111111111111";
constexpr const char* kWorkflow = "22222222-2222-4222-8222-222222222222";

// A MeshHook database: our schema, MeshHook's tables, one project and workflow.
void make_meshhook(const TestDatabase& db, bool capture) {
  bridge::migrate(db.url());
  db.exec_file("tests/fixtures/meshhook_schema.sql");
  pqxx::connection c(db.url());
  pqxx::work tx(c);
  tx.exec_params("insert into projects (id, owner, name) values ($1, gen_random_uuid(), 'demo')",
                 kProject);
  tx.exec_params(
      "insert into workflow_definitions (id, project_id, slug, name) values ($1, $2, 'checkout', "
      "'Checkout')",
      kWorkflow, kProject);
  tx.commit();
  if (capture) REQUIRE(bridge::install_meshhook_capture(db.url()));
}

// Inserts n runs that are still running; returns nothing (ids are random).
void start_runs(const TestDatabase& db, int n, const std::string& started_at = "now()") {
  db.exec("insert into workflow_runs (project_id, workflow_id, started_at) select '" +
          std::string(kProject) + "', '" + kWorkflow + "', " + started_at +
          " from generate_series(1, " + std::to_string(n) + ")");
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

double runs_counted(const exporter::Registry& registry) {
  double total = 0;
  for (const auto& f : registry.collect()) {
    if (f.name != "meshhook_workflow_runs_total") continue;
    for (const auto& s : f.series) total += s.value;
  }
  return total;
}

bridge::TailerOptions tailer_options(const std::string& url) {
  bridge::TailerOptions o;
  o.database_url = url;
  o.interval = 50ms;
  return o;
}

}  // namespace

TEST_CASE("capture records a run once when it reaches a terminal status", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, true);
  db.exec(
      "insert into workflow_runs (id, project_id, workflow_id, started_at) values"
      " ('33333333-3333-4333-8333-333333333333', '" +
      std::string(kProject) + "', '" + kWorkflow + "', '2026-01-01 00:00:00+00')");
  // Runs stored, after a compactor round has moved what the trigger captured.
  auto count = [&] {
    db.exec("select meshhook_stats_compact(1000)");
    return db.scalar("select count(*) from execution_time_statistics");
  };

  db.exec("update workflow_runs set status = 'paused'");
  db.exec("update workflow_runs set status = 'running'");
  CHECK(count() == 0);
  // Terminal without finished_at is not finished yet.
  db.exec("update workflow_runs set status = 'failed'");
  CHECK(count() == 0);
  db.exec(
      "update workflow_runs set status = 'succeeded', finished_at = "
      "'2026-01-01 00:00:01.2345+00'");
  CHECK(count() == 1);
  db.exec("update workflow_runs set status = 'succeeded'");
  db.exec("update workflow_runs set finished_at = '2026-01-01 00:00:09+00'");
  db.exec("update workflow_runs set status = 'canceled'");
  CHECK(count() == 1);
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  auto row = tx.exec1(
      "select run_id::text, project_id::text, workflow_id::text, status, execution_time_ms, "
      "source from execution_time_statistics");
  CHECK(row[0].as<std::string>() == "33333333-3333-4333-8333-333333333333");
  CHECK(row[1].as<std::string>() == kProject);
  CHECK(row[2].as<std::string>() == kWorkflow);
  CHECK(row[3].as<std::string>() == "succeeded");
  CHECK(row[4].as<long long>() == 1235);  // 1234.5 ms rounds half up
  CHECK(row[5].as<std::string>() == "capture");
}

TEST_CASE("capture records runs inserted already finished, and a rolled back finish not at all",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, true);
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)"
      " select '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'failed', now() - interval '2 s', now() from generate_series(1, 5)");
  CHECK(db.scalar("select count(*) from execution_time_captured_runs") == 5);
  db.exec("select meshhook_stats_compact(1000)");
  CHECK(db.scalar("select count(*) from execution_time_statistics where status = 'failed'") == 5);
  start_runs(db, 1);
  db.exec(
      "begin; update workflow_runs set status = 'succeeded', finished_at = now() "
      "where status = 'running'; rollback;");
  db.exec("select meshhook_stats_compact(1000)");
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 5);
  CHECK(db.scalar("select count(*) from execution_time_captured_runs") == 0);
}

TEST_CASE("capture is not installed where MeshHook's tables do not exist", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  CHECK_FALSE(bridge::install_meshhook_capture(db.url()));
  // And the script itself only says so.
  db.exec_file("sql/integrations/meshhook/capture.sql");
}

TEST_CASE("tailer observes captured runs in the histograms, and not ingested ones",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, true);
  // Runs finished before the first start are history, not live metrics.
  start_runs(db, 3);
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  db.exec("select meshhook_stats_compact(1000)");  // what the daemon's compactor does

  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url()), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));

  start_runs(db, 40);
  db.exec(
      "update workflow_runs set status = 'failed', finished_at = now() + interval '1.5 s'"
      " where status = 'running'");
  db.exec("select meshhook_stats_compact(1000)");
  db.exec(
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms, source) values (gen_random_uuid(), '" +
      std::string(kProject) + "', '" + kWorkflow + "', 'succeeded', now(), now(), 0, 'ingest')");
  REQUIRE(eventually([&] { return tailer.rows_observed() == 40; }));
  CHECK(eventually([&] {
    return tailer.position() == db.scalar("select max(id) from execution_time_statistics");
  }));
  tailer.stop();
  CHECK(tailer.rows_observed() == 40);
  CHECK(runs_counted(registry) == 40);
  CHECK(db.scalar("select last_id from meshhook_stats_cursors where name = 'tailer'") ==
        db.scalar("select max(id) from execution_time_statistics"));
}

TEST_CASE("tailer observes a run whose smaller id commits after a larger one", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, true);
  // Two workflows, so that the two transactions share no rollup row (one would wait on the
  // other's lock before the aggregates moved off the write path).
  db.exec(
      "insert into workflow_definitions (id, project_id, slug, name) values "
      "('44444444-4444-4444-8444-444444444444', '" +
      std::string(kProject) + "', 'refund', 'Refund')");
  start_runs(db, 1);
  db.exec("insert into workflow_runs (project_id, workflow_id, started_at) values ('" +
          std::string(kProject) + "', '44444444-4444-4444-8444-444444444444', now())");
  const auto ids = [&] {
    pqxx::connection c(db.url());
    pqxx::read_transaction tx(c);
    std::vector<std::string> out;
    for (const auto& r : tx.exec("select id::text from workflow_runs order by id")) {
      out.push_back(r[0].as<std::string>());
    }
    return out;
  }();
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url()), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));

  // A takes its transaction id first; B records a captured run (its row gets the smaller id)
  // and stays open; A records the other run (the larger id) and commits; only then does B
  // commit. Captured rows reach execution_time_statistics through the compactor's move (one
  // transaction a round), but backfill, or anyone inserting capture rows by hand, can
  // interleave like this.
  pqxx::connection a_conn(db.url()), b_conn(db.url());
  pqxx::work a(a_conn), b(b_conn);
  a.exec("select pg_current_xact_id()");
  const auto record = [&](pqxx::work& tx, const std::string& run) {
    // As the compactor's move does (its delete comes first), the transaction holds its xid
    // before it takes an id: see the tailer's rule in tailer.cpp.
    tx.exec("select pg_current_xact_id()");
    tx.exec(
        "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
        " started_at, finished_at, execution_time_ms, source)"
        " select id, project_id, workflow_id, 'succeeded', started_at, now(), 1, 'capture'"
        " from workflow_runs where id = " +
        tx.quote(run));
  };
  record(b, ids[0]);
  record(a, ids[1]);
  a.commit();
  REQUIRE(eventually([&] { return tailer.rows_observed() == 1; }));
  std::this_thread::sleep_for(300ms);  // several polls while B is still open
  b.commit();
  CHECK(eventually([&] { return tailer.rows_observed() == 2; }));
  CHECK(eventually([&] {
    return tailer.position() == db.scalar("select max(id) from execution_time_statistics");
  }));
  tailer.stop();
  CHECK(tailer.rows_observed() == 2);
  CHECK(runs_counted(registry) == 2);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 2);
}

TEST_CASE("tailer observes a run finished in a transaction still open while nothing else runs",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, true);
  start_runs(db, 1);
  exporter::Registry registry;
  exporter::RunMetrics metrics(registry, {});
  bridge::Tailer tailer(tailer_options(db.url()), metrics);
  tailer.start();
  REQUIRE(eventually([&] { return tailer.active(); }));
  // The open transaction (a compactor's move of the run just captured) holds the newest
  // transaction id: a snapshot lists it in no in-progress list (it is at the snapshot's xmax),
  // yet its row's id is already handed out.
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  pqxx::connection conn(db.url());
  pqxx::work tx(conn);
  tx.exec("select meshhook_stats_move_captured_runs(1000)");
  std::this_thread::sleep_for(400ms);  // several polls while it is open
  tx.commit();
  CHECK(eventually([&] { return tailer.rows_observed() == 1; }));
  CHECK(eventually([&] {
    return tailer.position() == db.scalar("select max(id) from execution_time_statistics");
  }));
  tailer.stop();
  CHECK(runs_counted(registry) == 1);
}

TEST_CASE("one tailer is active at a time and another takes over when it stops", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, true);
  exporter::Registry registry_a, registry_b;
  exporter::RunMetrics metrics_a(registry_a, {}), metrics_b(registry_b, {});
  auto a = std::make_unique<bridge::Tailer>(tailer_options(db.url()), metrics_a);
  bridge::Tailer b(tailer_options(db.url()), metrics_b);
  a->start();
  REQUIRE(eventually([&] { return a->active(); }));
  b.start();
  std::this_thread::sleep_for(300ms);
  CHECK_FALSE(b.active());

  start_runs(db, 10);
  db.exec("update workflow_runs set status = 'succeeded', finished_at = now()");
  db.exec("select meshhook_stats_compact(1000)");  // the compactor moves captured runs on
  REQUIRE(eventually([&] { return a->rows_observed() == 10; }));
  a->stop();  // its session ends, and the lock with it
  a.reset();
  REQUIRE(eventually([&] { return b.active(); }, 10s));

  start_runs(db, 7);
  db.exec(
      "update workflow_runs set status = 'canceled', finished_at = now() "
      "where status = 'running'");
  db.exec("select meshhook_stats_compact(1000)");
  REQUIRE(eventually([&] { return b.rows_observed() == 7; }));
  std::this_thread::sleep_for(200ms);
  CHECK(b.rows_observed() == 7);  // resumed at the shared cursor: nothing observed twice
  CHECK(runs_counted(registry_b) == 7);
}

TEST_CASE("backfill imports finished runs in the range once, resumably", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, false);
  // 250 finished runs on 2026-01-01..02, 10 in December, 5 still running.
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)"
      " select '" +
      std::string(kProject) + "', '" + kWorkflow +
      "',"
      " (array['succeeded','failed','canceled'])[1 + g % 3],"
      " timestamptz '2026-01-01 00:00:00+00' + g * interval '10 minutes',"
      " timestamptz '2026-01-01 00:00:00+00' + g * interval '10 minutes' + g * interval '1.0005 ms'"
      " from generate_series(0, 249) g");
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)"
      " select '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'succeeded',"
      " timestamptz '2025-12-20 00:00:00+00', timestamptz '2025-12-20 00:00:01+00'"
      " from generate_series(1, 10)");
  start_runs(db, 5, "timestamptz '2026-01-01 05:00:00+00'");

  constexpr std::int64_t kJan1 = 1'767'225'600'000'000;
  std::vector<bridge::BackfillProgress> seen;
  bridge::BackfillOptions options;
  options.chunk_rows = 40;
  auto inserted = bridge::backfill(
      db.url(), kJan1, std::nullopt, [&](const bridge::BackfillProgress& p) { seen.push_back(p); },
      options);
  CHECK(inserted == 250);
  REQUIRE(seen.size() >= 7);
  CHECK(seen.front().rows_total == 250);
  CHECK(seen.back().rows_scanned == 250);
  CHECK(db.scalar("select count(*) from execution_time_statistics where source = 'backfill'") ==
        250);
  // g * 1.0005 ms, rounded half up: g = 1 -> 1 ms, g = 249 -> 249.1245 -> 249 ms.
  CHECK(db.scalar("select sum(execution_time_ms) from execution_time_statistics") ==
        db.scalar("select sum(round(g * 1.0005)) from generate_series(0, 249) g"));

  // Running again continues from the saved position: nothing new.
  CHECK(bridge::backfill(db.url(), kJan1, std::nullopt, {}, options) == 0);
  // A different range over the same runs only adds what is missing.
  CHECK(bridge::backfill(db.url(), kJan1 - 30LL * 86'400'000'000, kJan1 + 86'400'000'000, {},
                         options) == 10);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 260);
}

TEST_CASE("backfill resumes after an interruption without importing twice", "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  make_meshhook(db, false);
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)"
      " select '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'succeeded',"
      " timestamptz '2026-01-01 00:00:00+00', timestamptz '2026-01-01 00:00:00+00' + g * interval "
      "'1 s'"
      " from generate_series(1, 100) g");
  constexpr std::int64_t kJan1 = 1'767'225'600'000'000;
  constexpr std::int64_t kJan2 = kJan1 + 86'400'000'000;
  bridge::BackfillOptions options;
  options.chunk_rows = 30;
  struct Interrupted {};
  try {
    bridge::backfill(
        db.url(), kJan1, kJan2,
        [&](const bridge::BackfillProgress& p) {
          if (p.rows_scanned >= 60) throw Interrupted{};
        },
        options);
    FAIL("not interrupted");
  } catch (const Interrupted&) {
  }
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 60);
  bool resumed = false;
  CHECK(bridge::backfill(
            db.url(), kJan1, kJan2, [&](const bridge::BackfillProgress& p) { resumed = p.resumed; },
            options) == 40);
  CHECK(resumed);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 100);
}
