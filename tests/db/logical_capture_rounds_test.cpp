// The logical capture's rounds: the stream read once a round (capture.interval_ms), a backlog
// stored slice by slice, each run once, the stream kept between rounds however long they are.

#include <thread>

#include "db_support.h"
#include "logical_capture_support.h"
#include "meshhook/bridge/storage/logical_capture.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/exporter/registry.h"

using meshhook::testing::make_meshhook_logical;
using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;
namespace exporter = meshhook::exporter;
using namespace std::chrono_literals;

namespace {

constexpr const char* kProject = meshhook::testing::kCaptureProject;
constexpr const char* kWorkflow = meshhook::testing::kCaptureWorkflow;

// n runs started, then each finished in a transaction of its own.
void finish_one_by_one(const TestDatabase& db, int n) {
  db.exec("insert into workflow_runs (project_id, workflow_id, started_at) select '" +
          std::string(kProject) + "', '" + kWorkflow +
          "', now() - interval '2 s' from generate_series(1, " + std::to_string(n) + ")");
  for (int i = 0; i < n; ++i) {
    db.exec(
        "update workflow_runs set status = 'succeeded', finished_at = now() where id = "
        "(select id from workflow_runs where status = 'running' order by id limit 1)");
  }
}

double family_total(const exporter::Registry& registry, const std::string& name) {
  double total = 0;
  for (const auto& f : registry.collect()) {
    if (f.name != name) continue;
    for (const auto& s : f.series) total += s.value;
  }
  return total;
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

}  // namespace

TEST_CASE("the capture loop stores a backlog slice by slice, each slice confirmed, each run once",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  auto o = make_meshhook_logical(db);
  o.batch_runs = 2;  // a slice: about two runs' messages
  // A backlog before the daemon starts: 12 one-run transactions, then one of 5 runs (a
  // transaction larger than a slice is read whole).
  finish_one_by_one(db, 12);
  db.exec(
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at) "
      "select '" +
      std::string(kProject) + "', '" + kWorkflow +
      "', 'failed', now() - interval '1 s', now() from generate_series(1, 5)");
  const auto lsn = db.scalar("select pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint");

  exporter::Registry registry;
  bridge::LogicalCapture capture(o, registry);
  capture.start();
  REQUIRE(eventually([&] { return capture.runs_stored() == 17; }));
  CHECK(eventually([&] {
    return db.scalar(
               "select pg_wal_lsn_diff(confirmed_flush_lsn, '0/0')::bigint from "
               "pg_replication_slots where slot_name = '" +
               db.name() + "'") >= lsn;
  }));
  capture.stop();
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 17);
  CHECK(db.scalar("select count(distinct run_id) from execution_time_statistics") == 17);
  // Each slice is a store transaction of its own: at most two one-run transactions each.
  CHECK(db.scalar("select count(distinct xmin::text) from execution_time_statistics") >= 7);

  // A new reader starts where the slot was confirmed: nothing comes twice.
  CHECK(bridge::LogicalCapture::capture_once(o).delivered == 0);
}

TEST_CASE("between rounds the capture keeps its stream with status updates, however long",
          "[db][meshhook]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  auto o = make_meshhook_logical(db);
  // The WAL sender ends a stream it hears nothing from for 3 s; a round every 5 s.
  db.exec("alter database " + db.name() + " set wal_sender_timeout = '3s'");
  o.interval = 5000ms;
  exporter::Registry registry;
  bridge::LogicalCapture capture(o, registry);
  capture.start();
  REQUIRE(eventually([&] { return capture.active(); }));
  const auto sender = [&] {
    return db.scalar(
        "select coalesce(max(pid), 0) from pg_stat_replication where application_name = "
        "'meshhook-stats-capture-slot'");
  };
  const auto first = sender();
  REQUIRE(first != 0);
  finish_one_by_one(db, 3);  // after the first round: stored by the next one
  REQUIRE(eventually([&] { return capture.runs_stored() == 3; }));
  CHECK(sender() == first);
  CHECK(family_total(registry, "meshhook_stats_capture_errors_total") == 0);
  capture.stop();
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 3);
}
