// The batch writer stores an ingested run's queue time and steps beside the run, in the same
// transaction and exactly once.

#include <thread>
#include <vector>

#include "db_support.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/registry.h"
#include "pipeline.h"

using meshhook::testing::Pipeline;
using meshhook::testing::TempDir;
using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;
using namespace std::chrono_literals;

namespace {

constexpr std::int64_t kStart = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z

bridge::RunEvent run(std::uint8_t n) {
  bridge::RunEvent e;
  e.run_id = *bridge::Uuid::parse("00000000-0000-4000-8000-000000000000");
  e.run_id.bytes[15] = n;
  e.workflow_id = *bridge::Uuid::parse("22222222-2222-4222-8222-222222222222");
  e.project_id = *bridge::Uuid::parse("11111111-1111-4111-8111-111111111111");
  e.status = bridge::RunStatus::failed;
  e.started_at_us = kStart;
  e.finished_at_us = kStart + 10'000'000;
  return e;
}

bridge::RunStep step(std::string id, std::int64_t from_us, std::int64_t to_us,
                     bridge::StepStatus status = bridge::StepStatus::succeeded,
                     std::uint32_t attempts = 1, std::string type = "http") {
  return {std::move(id), std::move(type), status, attempts, kStart + from_us, kStart + to_us};
}

// Every row of both tables as text, to compare the whole content before and after.
std::vector<std::string> contents(const TestDatabase& db) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  std::vector<std::string> out;
  for (const auto& row :
       tx.exec("select format('queue %s %s %s %s %s %s %s', run_id, status, queued_at, "
               "started_at, finished_at, queue_wait_ms, start_wait_ms) "
               "from queue_time_statistics order by run_id")) {
    out.push_back(row[0].as<std::string>());
  }
  for (const auto& row :
       tx.exec("select format('step %s %s %s %s %s %s', run_id, step_id, step_type, status, "
               "attempts, duration_ms) from step_time_statistics order by run_id, step_id")) {
    out.push_back(row[0].as<std::string>());
  }
  return out;
}

}  // namespace

TEST_CASE("writer stores a run's queue time and steps with exact times", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  Pipeline pipeline(db.url());

  auto queued = run(1);
  queued.queued_at_us = kStart - 1'234'500;  // 1234.5 ms rounds half up
  auto stepped = run(2);
  stepped.steps = {step("fetch", 0, 1'499, bridge::StepStatus::succeeded, 1, "http"),
                   step("notify", 2'000, 3'500, bridge::StepStatus::failed, 5, "")};
  auto neither = run(3);
  pipeline.write({queued, stepped, neither});

  CHECK(db.scalar("select count(*) from execution_time_statistics") == 3);
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  auto q = tx.exec1(
      "select run_id::text, project_id::text, workflow_id::text, status, jobs, queue_wait_ms, "
      "start_wait_ms, source, extract(epoch from started_at - queued_at)::text, "
      "finished_at = timestamptz '2026-01-01T00:00:10Z', "
      "started_at = timestamptz '2026-01-01T00:00:00Z' from queue_time_statistics");
  CHECK(q[0].as<std::string>() == "00000000-0000-4000-8000-000000000001");
  CHECK(q[1].as<std::string>() == "11111111-1111-4111-8111-111111111111");
  CHECK(q[2].as<std::string>() == "22222222-2222-4222-8222-222222222222");
  CHECK(q[3].as<std::string>() == "failed");
  CHECK(q[4].as<int>() == 1);
  CHECK(q[5].as<long long>() == 1235);
  CHECK(q[6].as<long long>() == 1235);
  CHECK(q[7].as<std::string>() == "ingest");
  CHECK(q[8].as<std::string>() == "1.234500");
  CHECK(q[9].as<bool>());
  CHECK(q[10].as<bool>());

  auto steps = tx.exec(
      "select run_id::text, step_id, step_type, status, attempts, duration_ms, source, "
      "extract(epoch from finished_at - started_at)::text, project_id::text, workflow_id::text "
      "from step_time_statistics order by step_id");
  REQUIRE(steps.size() == 2);
  CHECK(steps[0][0].as<std::string>() == "00000000-0000-4000-8000-000000000002");
  CHECK(steps[0][1].as<std::string>() == "fetch");
  CHECK(steps[0][2].as<std::string>() == "http");
  CHECK(steps[0][3].as<std::string>() == "succeeded");
  CHECK(steps[0][4].as<int>() == 1);
  CHECK(steps[0][5].as<long long>() == 1);  // 1.499 ms
  CHECK(steps[0][6].as<std::string>() == "ingest");
  CHECK(steps[0][7].as<std::string>() == "0.001499");
  CHECK(steps[0][8].as<std::string>() == "11111111-1111-4111-8111-111111111111");
  CHECK(steps[0][9].as<std::string>() == "22222222-2222-4222-8222-222222222222");
  CHECK(steps[1][1].as<std::string>() == "notify");
  CHECK(steps[1][2].as<std::string>() == "");
  CHECK(steps[1][3].as<std::string>() == "failed");
  CHECK(steps[1][4].as<int>() == 5);
  CHECK(steps[1][5].as<long long>() == 2);  // 1.5 ms rounds half up
}

TEST_CASE("a re-posted or replayed run adds no queue or step rows", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());

  auto first = run(1);
  first.queued_at_us = kStart - 500'000;
  first.steps = {step("a", 0, 1'000'000), step("b", 1'000'000, 2'000'000)};
  // The same run again, differently: another wait, a step more, a step changed.
  auto again = first;
  again.queued_at_us = kStart - 900'000;
  again.steps = {step("a", 0, 5'000'000, bridge::StepStatus::failed, 3),
                 step("c", 1'000'000, 2'000'000)};
  // A run stored before without details, then sent with them.
  auto bare = run(2);
  auto bare_later = bare;
  bare_later.queued_at_us = kStart - 1'000;
  bare_later.steps = {step("late", 0, 1'000)};

  {
    Pipeline pipeline(db.url());
    // Given twice in one batch: the first counts.
    pipeline.write({first, again, bare});
  }
  const auto stored = contents(db);
  REQUIRE(stored.size() == 3);  // one queue row, steps a and b
  CHECK(stored[1].find(" a http succeeded 1 1000") != std::string::npos);

  {
    Pipeline pipeline(db.url());  // a later post, through another spool
    pipeline.write({again, bare_later});
    pipeline.write({first});
  }
  CHECK(contents(db) == stored);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 2);
}

TEST_CASE("a batch without details writes no queue or step rows", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  Pipeline pipeline(db.url());
  std::vector<bridge::RunEvent> events;
  for (std::uint8_t i = 0; i < 50; ++i) events.push_back(run(i));
  pipeline.write(events);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 50);
  CHECK(db.scalar("select count(*) from queue_time_statistics") == 0);
  CHECK(db.scalar("select count(*) from step_time_statistics") == 0);
}
