// The batch writer appends the rollup deltas of its plain batches itself (migration 0017) and
// the statement-level trigger skips those statements: the sketch index it computes is the SQL
// function's, value for value, and whatever path a batch takes (direct, staged, replay, a run
// refused and isolated) the rollups equal a recount from the rows, pending and compacted.

#include <climits>
#include <random>
#include <sstream>
#include <thread>
#include <vector>

#include "db_support.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/rollup_deltas.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/registry.h"
#include "rollup_support.h"

using meshhook::testing::check_every_level_equals_rows;
using meshhook::testing::TempDir;
using meshhook::testing::TestDatabase;
using meshhook::testing::TestLogin;
namespace bridge = meshhook::bridge;
using namespace std::chrono_literals;

namespace {

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 60s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

std::string bigint_array(const std::vector<std::int64_t>& values) {
  std::ostringstream s;
  s << '{';
  for (std::size_t i = 0; i < values.size(); ++i) s << (i ? "," : "") << values[i];
  s << '}';
  return s.str();
}

// Runs of 12 workflows of 3 tenants, every status, over 30 hours across midnight and a week
// boundary, with durations from negative (stored as 0) and sub-millisecond to hours, and some
// finishing before 1970 (the hour is truncated towards the past there too).
std::vector<bridge::RunEvent> varied_runs(std::uint32_t first, std::uint32_t n) {
  std::mt19937_64 rng(first);
  std::vector<bridge::RunEvent> out;
  for (std::uint32_t k = first; k < first + n; ++k) {
    bridge::RunEvent e;
    e.run_id = *bridge::Uuid::parse("00000000-0000-4000-8000-000000000000");
    for (int b = 0; b < 4; ++b)
      e.run_id.bytes[12 + b] = static_cast<std::uint8_t>(k >> (24 - 8 * b));
    e.workflow_id = *bridge::Uuid::parse("22222222-2222-4222-8222-222222222200");
    e.workflow_id.bytes[15] = static_cast<std::uint8_t>(rng() % 12);
    e.project_id = *bridge::Uuid::parse("11111111-1111-4111-8111-111111111100");
    e.project_id.bytes[15] = static_cast<std::uint8_t>(e.workflow_id.bytes[15] % 3);
    e.status = static_cast<bridge::RunStatus>(1 + rng() % 4);
    const std::int64_t base = rng() % 10 == 0 ? -86'400'000'000 - 1'234'567  // 1969-12-31
                                              : 1'767'391'200'000'000;       // 2026-01-02T22:00Z
    e.finished_at_us = base + static_cast<std::int64_t>(rng() % (30ull * 3'600'000'000ull));
    const std::int64_t durations[] = {-5'000'000,
                                      0,
                                      499,
                                      500,
                                      1'500,
                                      2'499'999,
                                      static_cast<std::int64_t>(rng() % 90'000'000),
                                      static_cast<std::int64_t>(rng() % 10'000'000'000)};
    e.started_at_us = e.finished_at_us - durations[rng() % 8];
    out.push_back(e);
  }
  return out;
}

// The rows and rollups of a scenario through the real writer: plain batches, a replay (a batch
// holding runs already stored), and a batch with a run the table refuses.
void write_scenario(const TestDatabase& db, const std::string& url, bool expect_direct) {
  // Stands in for any row Postgres refuses as data (SQLSTATE 23514) with times the writer's
  // plain path carries exactly.
  db.exec(
      "alter table execution_time_statistics add constraint refuses_one_run"
      " check (run_id <> '00000000-0000-4000-8000-000000004242')");
  TempDir dir;
  bridge::SpoolOptions spool_options;
  spool_options.dir = dir.path;
  spool_options.group_commit_us = 0;
  bridge::Spool spool(spool_options);
  meshhook::exporter::Registry registry;
  bridge::BatchWriterOptions options;
  options.database_url = url;
  options.batch_rows = 1000;
  options.batch_interval = 20ms;
  bridge::BatchWriter writer(spool, options, registry);
  writer.start();

  // Plain batches: the writer appends their deltas.
  auto plain = varied_runs(1, 3000);
  REQUIRE(spool.accept(plain).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  CHECK(writer.rows_written() == 3000);
  CHECK(writer.replay_batches() == 0);
  CHECK((expect_direct ? writer.direct_batches() : writer.staged_batches()) > 0);
  CHECK(writer.client_delta_batches() == writer.direct_batches() + writer.staged_batches());
  const auto client_batches = writer.client_delta_batches();

  // A producer's retry of 100 stored runs with 400 new ones: refused whole on the plain
  // path, stored skipping the stored ones on the replay path, where the trigger appends.
  std::vector<bridge::RunEvent> retry(plain.begin() + 2000, plain.begin() + 2100);
  auto fresh = varied_runs(5001, 400);
  retry.insert(retry.end(), fresh.begin(), fresh.end());
  REQUIRE(spool.accept(retry).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  CHECK(writer.rows_written() == 3400);
  CHECK(writer.replay_batches() > 0);
  CHECK(writer.client_delta_batches() == client_batches);

  // A batch holding a run the table refuses: its plain attempt (deltas included) rolls back,
  // the run goes to the dead letters, its neighbours are stored by replay parts.
  auto refused = varied_runs(0x4200, 600);  // holds run 0x4242
  REQUIRE(spool.accept(refused).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  // The next batch meets no stored run and goes back to the plain path.
  auto after = varied_runs(7001, 500);
  REQUIRE(spool.accept(after).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();
  CHECK(writer.rows_written() == 3400 + 599 + 500);
  CHECK(writer.client_delta_batches() > client_batches);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 1);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 3400 + 599 + 500);
  // The scenario means something: zeros, runs before 1970, several hours and statuses.
  CHECK(db.scalar("select count(*) from execution_time_statistics where execution_time_ms = 0") >
        100);
  CHECK(db.scalar("select count(*) from execution_time_statistics where finished_at < 'epoch'") >
        100);
  CHECK(db.scalar("select count(distinct date_trunc('hour', finished_at)) from "
                  "execution_time_statistics") > 40);
  check_every_level_equals_rows(db, 500);
}

}  // namespace

TEST_CASE("the writer's sketch index is meshhook_stats_sketch_index, value for value",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);

  // Every value from 1 to 2,000,000: the server's buckets as ranges (each index one run of
  // consecutive values), then every value of each range through the writer's function.
  std::int64_t next = 1;
  std::size_t ranges = 0;
  for (const auto& row : tx.exec(
           "select i, min(v), max(v), count(*) from (select v, meshhook_stats_sketch_index(v) as i"
           " from generate_series(1::bigint, 2000000) as v) as x group by i order by min(v)")) {
    const int index = row[0].as<int>();
    const auto lo = row[1].as<std::int64_t>(), hi = row[2].as<std::int64_t>();
    REQUIRE(lo == next);
    REQUIRE(row[3].as<std::int64_t>() == hi - lo + 1);
    for (std::int64_t v = lo; v <= hi; ++v) {
      if (bridge::sketch_index(v) != index) FAIL("value " << v << ": server " << index);
    }
    next = hi + 1;
    ++ranges;
  }
  CHECK(next == 2'000'001);
  CHECK(ranges > 500);

  // The integers next to every bucket boundary up to 2^53, and large and boundary values.
  auto values = bridge::sketch_index_boundary_values(std::int64_t{1} << 53);
  for (std::int64_t v :
       {std::int64_t{INT32_MAX}, std::int64_t{1} << 31, (std::int64_t{1} << 32) + 1,
        std::int64_t{1} << 44, (std::int64_t{1} << 53) - 1, std::int64_t{1} << 53,
        (std::int64_t{1} << 53) + 1, std::int64_t{1} << 62, INT64_MAX - 1, INT64_MAX}) {
    values.push_back(v);
  }
  std::vector<std::int64_t> ours;
  for (auto v : values) ours.push_back(bridge::sketch_index(v));
  CHECK(values.size() > 6000);
  const auto row = tx.exec_params1(
      "select count(*), count(*) filter (where meshhook_stats_sketch_index(v) is distinct from i)"
      " from unnest($1::bigint[], $2::bigint[]) as u(v, i)",
      bigint_array(values), bigint_array(ours));
  CHECK(row[0].as<std::size_t>() == values.size());
  CHECK(row[1].as<long long>() == 0);
  // 0 ms has no bucket: the trigger and the writer count it in zero_count.
  CHECK(tx.exec1("select meshhook_stats_sketch_index(0) is null")[0].as<bool>());
}

TEST_CASE("rollups of batches the writer appended deltas for equal a recount, superuser login",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  write_scenario(db, db.url(), true);
}

TEST_CASE("rollups of batches the writer appended deltas for equal a recount, owner login",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestLogin owner(server, "mhs_owner_", "createrole nosuperuser nobypassrls");
  TestDatabase db(server);
  db.exec("alter database " + db.name() + " owner to " + owner.name);
  // The usual deployment: row level security applies to the owner, the staged path.
  bridge::migrate(owner.url(db.url()));
  write_scenario(db, owner.url(db.url()), false);
}

TEST_CASE("only the owner's sessions can make the trigger skip a statement's deltas",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestLogin producer(server, "mhs_producer_",
                     "nosuperuser nobypassrls in role meshhook_stats_writer");
  TestDatabase db(server);
  bridge::migrate(db.url());
  const std::string insert =
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms, source)"
      " select gen_random_uuid(), '11111111-1111-4111-8111-111111111111',"
      " '22222222-2222-4222-8222-222222222222', 'succeeded', now() - interval '1 second', now(),"
      " 1000 + g, 'ingest' from generate_series(1, $1) as g";
  auto insert_skipping = [&](const std::string& url, int rows) {
    pqxx::connection c(url);
    pqxx::work tx(c);
    tx.exec("select set_config('meshhook_stats.deltas_written', 'on', true)");
    tx.exec_params(insert, rows);
    tx.commit();
  };
  // A producer login (INSERT only) sets it: its rows still get their deltas, one and many.
  insert_skipping(producer.url(db.url()), 1);
  insert_skipping(producer.url(db.url()), 7);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 8);
  CHECK(db.scalar("select coalesce(sum(run_count), 0) from execution_time_rollups") == 8);
  // The owner's session (here a superuser) is trusted to have appended them itself.
  insert_skipping(db.url(), 5);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 13);
  CHECK(db.scalar("select coalesce(sum(run_count), 0) from execution_time_rollups") == 8);
  // The setting lasts the transaction only: the owner's next insert gets its deltas.
  {
    pqxx::connection c(db.url());
    pqxx::work tx(c);
    tx.exec_params(insert, 2);
    tx.commit();
  }
  CHECK(db.scalar("select coalesce(sum(run_count), 0) from execution_time_rollups") == 10);
}
