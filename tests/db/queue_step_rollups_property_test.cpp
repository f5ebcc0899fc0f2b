// Queue and step rollups (migration 0014) equal their rows, whatever happens concurrently:
// batches and single-row inserts of both tables, retention deletes, random deletes, updates,
// and a compactor killed with SIGKILL in the middle of its folds and restarted. At quiescence
// every level (pending plus compacted, then compacted alone) equals a recomputation from the
// rows, and queue-times and step-times agree with the rows both ways.

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>

#include "meshhook/bridge/storage/compactor.h"
#include "statistics_support.h"

extern char** environ;

using meshhook::testing::check_close;
using meshhook::testing::kProject;
using meshhook::testing::sql_double;
using meshhook::testing::StatsDb;
using meshhook::testing::TestDatabase;
using nlohmann::json;

namespace {

constexpr const char* kOtherProject = "22222222-2222-2222-2222-222222222222";

// Every (level, measure, key, bucket) of the rows, as the rollups keep it: count, sum, min,
// max, zeros, attempts, latest finished_at and its step type, sketch.
constexpr const char* kFromRows = R"sql(
select l.level, r.measure, r.project_id, r.workflow_id, r.step_id, r.status,
       date_trunc(l.level, r.finished_at, 'UTC') as b, count(*)::bigint, sum(v)::numeric,
       min(v), max(v), (count(*) filter (where v = 0))::bigint, sum(attempts)::bigint,
       max(finished_at), (array_agg(step_type order by finished_at desc, step_type desc))[1],
       (select coalesce(array_agg(array[i, c::int4] order by i), '{}')
        from (select meshhook_stats_sketch_index(x) as i, count(*) as c
              from unnest(array_agg(v)) as x where x > 0 group by 1) as q)::text
from (select 'queue_wait' as measure, project_id, workflow_id, '' as step_id, status,
             finished_at, queue_wait_ms as v, 0 as attempts, '' as step_type
      from queue_time_statistics
      union all
      select 'start_wait', project_id, workflow_id, '', status, finished_at, start_wait_ms, 0, ''
      from queue_time_statistics
      union all
      select 'step_duration', project_id, workflow_id, step_id, status, finished_at,
             duration_ms, attempts, step_type
      from step_time_statistics) as r
cross join (values ('hour'), ('day'), ('week')) as l(level)
group by 1, 2, 3, 4, 5, 6, 7)sql";

std::string text(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].c_str();
}

long long mismatches(const TestDatabase& db, const std::string& table) {
  const std::string rollups =
      "select level, measure, project_id, workflow_id, step_id, status, bucket_start, run_count,"
      " sum_ms::numeric, min_ms, max_ms, zero_count, attempts, latest_finished_at,"
      " latest_step_type, sketch::text from " +
      table;
  return db.scalar("select (select count(*) from (" + std::string(kFromRows) + " except " +
                   rollups + ") a) + (select count(*) from (" + rollups + " except " + kFromRows +
                   ") b)");
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

// n queue rows of the project's three workflows over the last 20 days (a tenth of them 0 ms).
std::string queue_rows(const std::string& project, int n) {
  return "insert into queue_time_statistics (run_id, project_id, workflow_id, status,"
         " finished_at, queued_at, started_at, jobs, queue_wait_ms, start_wait_ms)"
         " select gen_random_uuid(), '" +
         project +
         "', ('aaaaaaaa-0000-0000-0000-00000000000' || (1 + i % 3))::uuid,"
         " (array['succeeded','failed','canceled','timeout'])[1 + floor(random() * 4)::int], f,"
         " f - interval '1 minute', f - interval '30 seconds', 1, w + (random() * 50)::bigint, w"
         " from (select i, now() - random() * interval '20 days' as f,"
         "       case when random() < 0.1 then 0 else (exp(random() * 12))::bigint end as w"
         "       from generate_series(1, " +
         std::to_string(n) + ") as i) as g";
}

// n step rows of workflow 1's four steps; the type of a step changes now and then.
std::string step_rows(const std::string& project, int n) {
  return "insert into step_time_statistics (run_id, step_id, step_type, project_id, workflow_id,"
         " status, attempts, started_at, finished_at, duration_ms)"
         " select gen_random_uuid(), 's' || (i % 4), (array['http','code','wait'])[1 + "
         "floor(random()"
         " * 3)::int], '" +
         project +
         "', 'aaaaaaaa-0000-0000-0000-000000000001',"
         " case when random() < 0.2 then 'failed' else 'succeeded' end, 1 + (random() * 4)::int,"
         " f - d * interval '1 millisecond', f, d"
         " from (select i, now() - random() * interval '20 days' as f,"
         "       case when random() < 0.05 then 0 else (exp(random() * 11))::bigint end as d"
         "       from generate_series(1, " +
         std::to_string(n) + ") as i) as g";
}

}  // namespace

TEST_CASE(
    "queue and step rollups equal the rows after concurrent inserts, deletes, updates and "
    "killed compactors",
    "[db][statistics][rollups][queue][steps]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  StatsDb s(server);
  const auto& db = s.db;
  db.exec("select setseed(0.23);" + queue_rows(kProject, 3000) + ";" + step_rows(kProject, 3000) +
          ";" + queue_rows(kOtherProject, 500) + ";" + step_rows(kOtherProject, 500));

  const auto script = std::filesystem::temp_directory_path() /
                      ("mhs_qs_compactor_" + std::to_string(::getpid()) + ".sql");
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
  // Batches, as the writer and backfill insert them.
  threads.push_back(worker([&](pqxx::connection& c, std::mt19937& rng) {
    pqxx::work tx(c);
    const int n = 1 + static_cast<int>(rng() % 200);
    tx.exec(rng() % 2 ? queue_rows(kProject, n) : step_rows(kProject, n));
    tx.commit();
  }));
  // One row a statement, as the tailer's details and a person at psql insert them.
  threads.push_back(worker([&](pqxx::connection& c, std::mt19937& rng) {
    pqxx::work tx(c);
    tx.exec(rng() % 2 ? queue_rows(kProject, 1) : step_rows(kProject, 1));
    if (rng() % 3 == 0) tx.exec(step_rows(kOtherProject, 1));
    tx.commit();
  }));
  // Retention-style deletes of the oldest rows in small batches, random deletes, updates.
  threads.push_back(worker([&](pqxx::connection& c, std::mt19937& rng) {
    pqxx::work tx(c);
    const char* table = rng() % 2 ? "queue_time_statistics" : "step_time_statistics";
    switch (rng() % 4) {
      case 0:
        tx.exec_params(std::string("delete from ") + table +
                           " where id = any(array(select id from " + table +
                           " where finished_at < now() - interval '17 days' limit $1))",
                       static_cast<int>(1 + rng() % 100));
        break;
      case 1:
        tx.exec_params(std::string("delete from ") + table + " where id % 97 = $1",
                       static_cast<int>(rng() % 97));
        break;
      case 2:
        tx.exec_params(
            "update step_time_statistics set step_type = 'changed', duration_ms = duration_ms + 1"
            " where id % 211 = $1",
            static_cast<int>(rng() % 211));
        break;
      default:
        tx.exec_params(
            "update queue_time_statistics set finished_at = finished_at + interval '1 hour',"
            " queue_wait_ms = queue_wait_ms * 2 where id % 211 = $1",
            static_cast<int>(rng() % 211));
    }
    tx.commit();
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }));

  // The compactor, killed at random moments and started again.
  std::mt19937 rng(11);
  int kills = 0;
  for (int round = 0; round < 10; ++round) {
    const pid_t pid = spawn_compactor(db.url(), script.string());
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + rng() % 350));
    ::kill(pid, SIGKILL);
    int status = 0;
    ::waitpid(pid, &status, 0);
    if (WIFSIGNALED(status)) ++kills;
    // Midway, before any final compaction: pending plus compacted equals the rows.
    if (round == 5) CHECK(mismatches(db, "queue_step_rollups") == 0);
  }
  stop = true;
  for (auto& t : threads) t.join();
  std::filesystem::remove(script);
  REQUIRE(failures == 0);
  CHECK(kills >= 8);

  // Quiescence, with something of every level and measure.
  CHECK(mismatches(db, "queue_step_rollups") == 0);
  CHECK(db.scalar("select count(*) from queue_step_rollup_deltas") > 0);
  CHECK(db.scalar("select count(distinct (level, measure)) from queue_step_rollups") == 9);
  for (int i = 0; i < 100 && meshhook::bridge::Compactor::compact_once(db.url(), 1000) > 0; ++i) {
  }
  CHECK(db.scalar("select count(*) from queue_step_rollup_deltas") == 0);
  CHECK(mismatches(db, "queue_step_rollups_compacted") == 0);

  // A little more written after the last fold is counted at once, from the deltas.
  db.exec(queue_rows(kProject, 50) + ";" + step_rows(kProject, 50));
  REQUIRE(db.scalar("select count(*) from queue_step_rollup_deltas") > 0);

  // The endpoints, as the tenant: 25 days hold a whole UTC week, so the weekly level is read.
  const std::string range =
      "start_date=" + text(db, "select to_char(now() - interval '22 days', 'YYYY-MM-DD')") +
      "&end_date=" + text(db, "select to_char(now() + interval '3 days', 'YYYY-MM-DD')");
  for (const std::string measure : {"queue_wait", "start_wait"}) {
    INFO(measure);
    const std::string q = range + "&group_by=workflow&percentiles=50,95,99&measure=" + measure;
    const auto sketch = s.get(q + "&exact=false", "/api/v1/statistics/queue-times");
    const auto exact = s.get(q + "&exact=true", "/api/v1/statistics/queue-times");
    CHECK(sketch["accuracy"]["method"] == "sketch");
    CHECK(exact["accuracy"]["method"] == "exact");
    REQUIRE(sketch["groups"].size() == 3);
    REQUIRE(exact["groups"].size() == 3);
    for (std::size_t i = 0; i < 3; ++i) {
      const std::string wf = exact["groups"][i]["workflow_id"];
      const std::string column = measure + "_ms";
      const std::string rows = " from queue_time_statistics where project_id = '" +
                               std::string(kProject) + "' and workflow_id = '" + wf + "'";
      CHECK(sketch["groups"][i]["workflow_id"] == wf);
      for (const auto* key : {"count", "min", "max", "avg"}) {
        CHECK(sketch["groups"][i][key] == exact["groups"][i][key]);
      }
      CHECK(exact["groups"][i]["count"].get<long long>() == db.scalar("select count(*)" + rows));
      for (const auto& [key, value] : exact["groups"][i]["percentiles"].items()) {
        const double pg =
            sql_double(db, "select percentile_cont(" + std::to_string(std::stod(key) / 100) +
                               ") within group (order by " + column + ")" + rows);
        check_close(value.get<double>(), pg, 1e-9);
        check_close(sketch["groups"][i]["percentiles"][key].get<double>(), pg, 0.01);
      }
    }
  }
  const std::string steps_q = range + "&workflow_id=aaaaaaaa-0000-0000-0000-000000000001";
  const auto sketch = s.get(steps_q + "&exact=false", "/api/v1/statistics/step-times");
  const auto exact = s.get(steps_q + "&exact=true", "/api/v1/statistics/step-times");
  CHECK(sketch["accuracy"]["method"] == "sketch");
  REQUIRE(exact["steps"].size() == 4);
  REQUIRE(sketch["steps"].size() == 4);
  CHECK(sketch["count"] == exact["count"]);
  for (std::size_t i = 0; i < 4; ++i) {
    const auto& a = sketch["steps"][i];
    const auto& b = exact["steps"][i];
    INFO(b.dump());
    for (const auto* key : {"step_id", "step_type", "count", "failed", "avg_ms", "total_ms",
                            "failure_ratio", "mean_attempts", "share"}) {
      CHECK(a[key] == b[key]);
    }
    for (const auto* key : {"median_ms", "p95_ms", "p99_ms"}) {
      check_close(a[key].get<double>(), b[key].get<double>(), 0.01);
    }
  }
}
