// Rollups equal rows, whatever happens concurrently: writer batches, MeshHook capture
// transactions finishing one and several runs in conflicting orders, backfill, retention
// deletes, updates, and a compactor killed with SIGKILL in the middle of its folds and
// restarted. At quiescence every rollup (pending plus compacted, then compacted alone) equals
// a recomputation from the rows, and the statistics endpoint agrees with the rows.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "db_support.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/backfill.h"
#include "meshhook/bridge/storage/compactor.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/bridge/storage/migrations.h"
#include "rollup_support.h"

extern char** environ;

using meshhook::testing::TestDatabase;
using nlohmann::json;
namespace bridge = meshhook::bridge;
using meshhook::testing::check_every_level_equals_rows;
using meshhook::testing::mismatches;
using meshhook::testing::Statuses;

namespace {

constexpr const char* kOwner = "0b0b0b0b-0000-4000-8000-000000000001";

std::string text(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].c_str();
}

// A psql that folds deltas in a loop, each fold lingering uncommitted for a moment, so that a
// SIGKILL lands mid-fold more often than not.
pid_t spawn_compactor(const std::string& url, const std::string& script) {
  pid_t pid = 0;
  std::vector<std::string> args = {"psql", "-q", "-X", "-v",  "ON_ERROR_STOP=1",
                                   "-d",   url,  "-f", script};
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, "/dev/null", O_WRONLY, 0);
  const int rc = posix_spawnp(&pid, "psql", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  REQUIRE(rc == 0);
  return pid;
}

}  // namespace

TEST_CASE(
    "rollups equal the rows after concurrent writes, captures, backfill, deletes and killed "
    "compactors",
    "[db][statistics][rollups]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  db.exec_file("tests/fixtures/meshhook_schema.sql");
  // Three projects of one owner, two workflows each; 2,000 runs finished before the capture
  // was installed (for backfill), 4,000 running (for capture transactions).
  db.exec(
      "select setseed(0.17);"
      "insert into projects (id, owner, name) select ('00000000-0000-4000-8000-00000000000' || "
      "p)::uuid,"
      " '" +
      std::string(kOwner) +
      "', 'p' || p from generate_series(1, 3) p;"
      "insert into workflow_definitions (id, project_id, slug, name)"
      " select ('00000000-0000-4000-9000-0000000000' || p || w)::uuid,"
      " ('00000000-0000-4000-8000-00000000000' || p)::uuid, 'w' || w, 'w' || w"
      " from generate_series(1, 3) p, generate_series(1, 2) w;"
      "insert into workflow_runs (project_id, workflow_id, status, started_at, finished_at)"
      " select d.project_id, d.id, (array['succeeded','failed','canceled'])[1 + (i % 3)],"
      " f - random() * interval '20 seconds', f"
      " from (select i, now() - random() * interval '3 days' as f, 1 + i % 6 as k"
      "       from generate_series(1, 2000) i) g"
      " join (select id, project_id, row_number() over (order by id) as k from "
      "workflow_definitions) d"
      "   on d.k = g.k;"
      "insert into workflow_runs (project_id, workflow_id, started_at)"
      " select d.project_id, d.id, now() - random() * interval '10 minutes'"
      " from generate_series(1, 4000) i"
      " join (select id, project_id, row_number() over (order by id) as k from "
      "workflow_definitions) d"
      "   on d.k = 1 + i % 6;");
  db.exec_file("sql/integrations/meshhook/capture.sql");

  const auto script = std::filesystem::temp_directory_path() /
                      ("mhs_compactor_" + std::to_string(::getpid()) + ".sql");
  {
    std::ofstream out(script);
    for (int i = 0; i < 5000; ++i) {
      out << "begin; select meshhook_stats_compact(" << (1 + i % 50)
          << "); select pg_sleep(0.01); commit;\n";
    }
  }

  std::atomic<bool> stop{false};
  std::atomic<long long> failures{0};
  auto worker = [&](auto body) {
    return std::thread([&, body] {
      try {
        pqxx::connection c(db.url());
        std::mt19937 rng(std::random_device{}());
        while (!stop) body(c, rng);
      } catch (const std::exception& e) {
        UNSCOPED_INFO("worker failed: " << e.what());
        ++failures;
      }
    });
  };
  std::vector<std::thread> threads;
  // Writer batches: the writer's statement shape, runs over the last three days, replays too.
  threads.push_back(worker([&](pqxx::connection& c, std::mt19937& rng) {
    pqxx::work tx(c);
    tx.exec_params(
        "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
        " started_at, finished_at, execution_time_ms, source)"
        " select gen_random_uuid(), d.project_id, d.id, (array['succeeded','failed','timeout'])[1 "
        "+ i % 3],"
        " f - v * interval '1 millisecond', f, v, 'ingest'"
        " from (select i, now() - random() * interval '3 days' as f,"
        "        case when i % 9 = 0 then 0 else (random() * 100000)::bigint end as v,"
        "        1 + (i + $1) % 6 as k from generate_series(1, $2) i) g"
        " join (select id, project_id, row_number() over (order by id) as k"
        "       from workflow_definitions) d on d.k = g.k"
        " on conflict (run_id) do nothing",
        static_cast<int>(rng() % 6), static_cast<int>(1 + rng() % 200));
    tx.commit();
  }));
  // Capture: MeshHook transactions finishing one, two or three runs, in random order.
  // (Each thread finishes its own half of the runs: MeshHook's own row locks are not ours to
  // test; the rollups, which once deadlocked such transactions, are.)
  for (int t = 0; t < 2; ++t) {
    threads.push_back(worker([&, t](pqxx::connection& c, std::mt19937& rng) {
      pqxx::work tx(c);
      const int runs = 1 + static_cast<int>(rng() % 3);
      for (int i = 0; i < runs; ++i) {
        tx.exec_params(
            "update workflow_runs set status = $2, finished_at = now()"
            " where id = (select id from workflow_runs where status = 'running'"
            "             and (hashtext(id::text) & 1) = $3 offset $1 limit 1)"
            " and status = 'running'",
            static_cast<int>(rng() % 500), std::string(rng() % 4 == 0 ? "failed" : "succeeded"), t);
      }
      tx.commit();
    }));
  }
  // Retention-style deletes of the oldest rows in small batches, random deletes, updates.
  threads.push_back(worker([&](pqxx::connection& c, std::mt19937& rng) {
    pqxx::work tx(c);
    switch (rng() % 3) {
      case 0:
        tx.exec_params(
            "delete from execution_time_statistics where id = any(array("
            " select id from execution_time_statistics"
            " where finished_at < now() - interval '2 days 12 hours' limit $1))",
            static_cast<int>(1 + rng() % 100));
        break;
      case 1:
        tx.exec_params("delete from execution_time_statistics where id % 97 = $1",
                       static_cast<int>(rng() % 97));
        break;
      default:
        tx.exec_params(
            "update execution_time_statistics set finished_at = finished_at + interval '1 hour'"
            " where id % 211 = $1",
            static_cast<int>(rng() % 211));
    }
    tx.commit();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }));

  // Backfill of the runs finished before the capture, concurrently with the rest.
  std::thread backfill([&] {
    try {
      const auto now_us = std::chrono::duration_cast<std::chrono::microseconds>(
                              std::chrono::system_clock::now().time_since_epoch())
                              .count();
      bridge::BackfillOptions options;
      options.chunk_rows = 200;
      bridge::backfill(db.url(), now_us - 4LL * 86400 * 1000000, std::nullopt, {}, options);
    } catch (const std::exception& e) {
      UNSCOPED_INFO("backfill failed: " << e.what());
      ++failures;
    }
  });

  // The compactor, killed at random moments and started again.
  std::mt19937 rng(7);
  int kills = 0;
  for (int round = 0; round < 12; ++round) {
    const pid_t pid = spawn_compactor(db.url(), script.string());
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 350));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++kills;
    // Midway, before any final compaction: pending plus compacted equals the rows.
    if (round == 6) {
      CHECK(mismatches(db, "execution_time_rollups", "hour") == 0);
      CHECK(mismatches(db, "execution_time_rollups_daily", "day") == 0);
      CHECK(mismatches(db, "execution_time_rollups_hourly_all", "hour", Statuses::kMerged) == 0);
      CHECK(mismatches(db, "execution_time_rollups_daily_all", "day", Statuses::kMerged) == 0);
      CHECK(mismatches(db, "execution_time_rollups_weekly_all", "week", Statuses::kMerged) == 0);
    }
  }
  backfill.join();
  stop = true;
  for (auto& t : threads) t.join();
  std::filesystem::remove(script);
  REQUIRE(failures == 0);
  CHECK(kills >= 10);

  // Quiescence. Enough of everything happened for the test to mean something.
  CHECK(db.scalar("select count(*) from execution_time_statistics where source = 'capture'") > 50);
  CHECK(db.scalar("select count(*) from execution_time_statistics where source = 'backfill'") >
        500);
  CHECK(db.scalar("select count(*) from execution_time_statistics where source = 'ingest'") > 500);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 0);

  check_every_level_equals_rows(db, 1000);

  // The endpoint, as the owner of every project: the sketch path's count, min, max and avg
  // come from the rollups and equal the rows; exact mode equals percentile_cont.
  bridge::ConnectionPool pool(db.url(), 1);
  bridge::StatisticsApi api(pool, {.exact_max_rows = 0});
  auto get = [&](const std::string& query) {
    bridge::HttpRequest r;
    r.method = "GET";
    r.path = "/api/v1/statistics/execution-times";
    r.query = query;
    r.header = [](std::string_view) { return std::string_view(); };
    auto response = api.handle(
        r, {kOwner, std::string(R"({"sub":")") + kOwner + R"(","role":"authenticated"})"});
    INFO(query << " -> " << response.status << " " << response.body);
    REQUIRE(response.status == 200);
    return json::parse(response.body);
  };
  // Fifteen days always hold a whole UTC week, so the sketch reads the weekly level too.
  const std::string range =
      "start_date=" + text(db, "select to_char(now() - interval '12 days', 'YYYY-MM-DD')") +
      "&end_date=" + text(db, "select to_char(now() + interval '3 days', 'YYYY-MM-DD')") +
      "&group_by=workflow";
  const auto sketch = get(range + "&exact=false");
  const auto exact = get(range + "&exact=true");
  REQUIRE(sketch["groups"].size() == 6);
  REQUIRE(exact["groups"].size() == 6);
  for (std::size_t i = 0; i < 6; ++i) {
    const std::string wf = exact["groups"][i]["workflow_id"];
    INFO(wf);
    const std::string rows = " from execution_time_statistics where workflow_id = '" + wf + "'";
    for (const auto& g : {sketch["groups"][i], exact["groups"][i]}) {
      CHECK(g["workflow_id"] == wf);
      CHECK(g["count"].get<long long>() == db.scalar("select count(*)" + rows));
      CHECK(g["min"].get<long long>() == db.scalar("select min(execution_time_ms)" + rows));
      CHECK(g["max"].get<long long>() == db.scalar("select max(execution_time_ms)" + rows));
    }
    pqxx::connection c(db.url());
    pqxx::read_transaction tx(c);
    auto expected = tx.exec1(
        "select round(avg(execution_time_ms), 3)::float8,"
        " percentile_cont(0.5) within group (order by execution_time_ms),"
        " percentile_cont(0.95) within group (order by execution_time_ms),"
        " percentile_cont(0.99) within group (order by execution_time_ms)" +
        rows);
    CHECK(std::abs(sketch["groups"][i]["avg"].get<double>() - expected[0].as<double>()) < 1e-3);
    CHECK(std::abs(exact["groups"][i]["avg"].get<double>() - expected[0].as<double>()) < 1e-3);
    CHECK(std::abs(exact["groups"][i]["median"].get<double>() - expected[1].as<double>()) < 1e-3);
    CHECK(std::abs(exact["groups"][i]["p95"].get<double>() - expected[2].as<double>()) < 1e-3);
    CHECK(std::abs(exact["groups"][i]["p99"].get<double>() - expected[3].as<double>()) < 1e-3);
  }
}
