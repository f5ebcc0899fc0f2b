// Durable ingest into Postgres: runs accepted by the spool (group commit, fdatasync) and
// drained by the batch writer until committed, with the rollup compactor folding as the daemon
// runs it, beside the ceiling in the same run: the same rows COPYed into the same table with
// the same indexes and no triggers. Runs are dense in time, as real traffic is: N runs of 1,000
// workflows of 100 tenants finishing evenly over --span-hours. Also prints the compaction lag
// under that load (the age of the oldest pending delta, sampled every 100 ms: an upper bound
// of every delta's commit-to-compacted time) and the rollup tables' size and dead tuples.
// Usage:
//   ingest_pg --url postgresql://user@host:port/db [--runs N] [--span-hours H] [--threads T]
//             [--batch B] [--writer-batch R] [--compactor-interval-ms M]
//             [--compactor-batch D] [--spool DIR]
// Creates (and drops) its own databases on that server.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <pqxx/pqxx>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/compactor.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/registry.h"

namespace bridge = meshhook::bridge;
using Clock = std::chrono::steady_clock;

namespace {

std::string with_database(const std::string& url, const std::string& name) {
  auto slash = url.find('/', url.find("://") + 3);
  auto query = url.find('?');
  return url.substr(0, slash) + "/" + name + (query == std::string::npos ? "" : url.substr(query));
}

struct Database {
  std::string server, name, url;
  Database(std::string s, std::string n) : server(std::move(s)), name(std::move(n)) {
    pqxx::connection c(server);
    pqxx::nontransaction tx(c);
    tx.exec("drop database if exists " + tx.quote_name(name) + " with (force)");
    tx.exec("create database " + tx.quote_name(name) + " template template0");
    url = with_database(server, name);
  }
  ~Database() {
    try {
      pqxx::connection c(server);
      pqxx::nontransaction tx(c);
      tx.exec("drop database if exists " + tx.quote_name(name) + " with (force)");
    } catch (...) {
    }
  }
};

std::vector<bridge::RunEvent> make_events(std::size_t n, double span_hours) {
  std::mt19937_64 rng(42);
  std::vector<bridge::Uuid> workflows(1000), projects(100);
  auto random_uuid = [&] {
    bridge::Uuid u;
    for (auto& b : u.bytes) b = static_cast<std::uint8_t>(rng());
    u.bytes[6] = (u.bytes[6] & 0x0f) | 0x40;
    u.bytes[8] = (u.bytes[8] & 0x3f) | 0x80;
    return u;
  };
  for (auto& w : workflows) w = random_uuid();
  for (auto& p : projects) p = random_uuid();
  std::vector<bridge::RunEvent> out(n);
  std::int64_t now = 1'767'225'600'000'000;
  const double step_us = span_hours * 3600e6 / static_cast<double>(std::max<std::size_t>(n, 1));
  for (std::size_t i = 0; i < n; ++i) {
    auto& e = out[i];
    e.run_id = random_uuid();
    std::size_t w = rng() % workflows.size();
    e.workflow_id = workflows[w];
    e.project_id = projects[w % projects.size()];
    e.status = static_cast<bridge::RunStatus>(1 + rng() % 4);
    e.finished_at_us = now + static_cast<std::int64_t>(static_cast<double>(i) * step_us);
    e.started_at_us = e.finished_at_us - static_cast<std::int64_t>(rng() % 60'000'000);
    e.workflow_name = "workflow-" + std::to_string(w);  // as producers send it
  }
  return out;
}

// The ceiling: the rows COPYed in the writer's batch size into the migrated table, its
// triggers disabled (same table, same indexes, same constraints).
double raw_copy(const std::string& server, const std::vector<bridge::RunEvent>& events,
                std::size_t chunk) {
  Database db(server, "mhs_bench_copy_" + std::to_string(::getpid()));
  bridge::migrate(db.url);
  pqxx::connection c(db.url);
  {
    pqxx::nontransaction tx(c);
    tx.exec("alter table execution_time_statistics disable trigger user");
  }
  auto start = Clock::now();
  std::string run(36, '\0'), project(36, '\0'), workflow(36, '\0');
  for (std::size_t i = 0; i < events.size(); i += chunk) {
    pqxx::work tx(c);
    pqxx::stream_to copy(
        tx, "execution_time_statistics",
        std::vector<std::string>{"run_id", "project_id", "workflow_id", "status", "started_at",
                                 "finished_at", "execution_time_ms"});
    for (std::size_t j = i; j < std::min(events.size(), i + chunk); ++j) {
      const auto& e = events[j];
      e.run_id.write(run.data());
      e.project_id.write(project.data());
      e.workflow_id.write(workflow.data());
      copy << std::make_tuple(run, project, workflow, std::string(bridge::to_string(e.status)),
                              bridge::format_rfc3339_us(e.started_at_us),
                              bridge::format_rfc3339_us(e.finished_at_us),
                              static_cast<long long>(e.execution_time_ms()));
    }
    copy.complete();
    tx.commit();
  }
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<std::size_t>(q * static_cast<double>(v.size())))];
}

// Samples the age of the oldest pending delta every 100 ms until stopped.
struct LagSampler {
  std::atomic<bool> stop{false};
  std::vector<double> samples;
  std::thread thread;
  explicit LagSampler(const std::string& url)
      : thread([this, url] {
          pqxx::connection c(url);
          c.prepare("lag",
                    "select coalesce(extract(epoch from clock_timestamp() - min(created_at)), 0)"
                    "::float8 from execution_time_rollup_deltas");
          while (!stop) {
            pqxx::read_transaction tx(c);
            samples.push_back(tx.exec_prepared1("lag")[0].as<double>());
            tx.commit();
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
        }) {}
  std::vector<double> finish() {
    stop = true;
    thread.join();
    return samples;
  }
};

void print_rollup_tables(const std::string& url) {
  pqxx::connection c(url);
  pqxx::nontransaction tx(c);
  // Table statistics reach the cumulative stats system within a second of each transaction.
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  tx.exec("select pg_stat_clear_snapshot()");
  for (const auto& row :
       tx.exec("select relname, n_live_tup, n_dead_tup, n_tup_ins, n_tup_upd, n_tup_hot_upd,"
               " n_tup_del, autovacuum_count, pg_size_pretty(pg_total_relation_size(relid))"
               " from pg_stat_user_tables where relname in ('execution_time_rollups_compacted',"
               " 'execution_time_rollups_daily_compacted', 'execution_time_rollup_deltas')"
               " order by relname")) {
    std::printf(
        "  %-40s live %8lld  dead %8lld  inserted %8lld  updated %8lld (hot %lld)  deleted %8lld"
        "  autovacuums %lld  size %s\n",
        row[0].c_str(), row[1].as<long long>(), row[2].as<long long>(), row[3].as<long long>(),
        row[4].as<long long>(), row[5].as<long long>(), row[6].as<long long>(),
        row[7].as<long long>(), row[8].c_str());
  }
}

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  std::size_t runs = 1'000'000, threads = 8, batch = 1000, writer_batch = 20000;
  double span_hours = 1;
  int compactor_interval_ms = 1000, compactor_batch = 20000;
  std::string spool_dir = std::filesystem::temp_directory_path() /
                          ("meshhook-bench-spool-" + std::to_string(::getpid()));
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--url")
      url = value;
    else if (flag == "--runs")
      runs = std::stoul(value);
    else if (flag == "--threads")
      threads = std::stoul(value);
    else if (flag == "--batch")
      batch = std::stoul(value);
    else if (flag == "--writer-batch")
      writer_batch = std::stoul(value);
    else if (flag == "--span-hours")
      span_hours = std::stod(value);
    else if (flag == "--compactor-interval-ms")
      compactor_interval_ms = std::stoi(value);
    else if (flag == "--compactor-batch")
      compactor_batch = std::stoi(value);
    else if (flag == "--spool")
      spool_dir = value;
  }
  if (url.empty()) {
    std::fprintf(stderr,
                 "usage: ingest_pg --url URL [--runs N] [--span-hours H] [--threads T] "
                 "[--batch B] [--writer-batch R] [--compactor-interval-ms M] "
                 "[--compactor-batch D] [--spool DIR]\n");
    return 2;
  }
  auto events = make_events(runs, span_hours);
  std::printf("%zu runs of 1000 workflows, 100 tenants, finishing over %.2f h\n", runs, span_hours);

  double copy_s = raw_copy(url, events, writer_batch);
  std::printf(
      "ceiling: COPY into execution_time_statistics, same indexes, no triggers, %zu-row"
      " transactions: %zu rows in %.2f s = %.0f rows/s\n",
      writer_batch, runs, copy_s, static_cast<double>(runs) / copy_s);

  Database db(url, "mhs_bench_ingest_" + std::to_string(::getpid()));
  bridge::migrate(db.url);
  std::filesystem::remove_all(spool_dir);
  {
    bridge::SpoolOptions spool_options;
    spool_options.dir = spool_dir;
    spool_options.max_bytes = 4ull << 30;
    bridge::Spool spool(spool_options);
    meshhook::exporter::Registry registry;
    bridge::BatchWriterOptions writer_options;
    writer_options.database_url = db.url;
    writer_options.batch_rows = writer_batch;
    bridge::BatchWriter writer(spool, writer_options, registry);
    bridge::CompactorOptions compactor_options;
    compactor_options.database_url = db.url;
    compactor_options.interval = std::chrono::milliseconds(compactor_interval_ms);
    compactor_options.batch_deltas = compactor_batch;
    bridge::Compactor compactor(compactor_options, registry);
    LagSampler lag(db.url);
    compactor.start();
    writer.start();

    std::atomic<std::size_t> next{0};
    std::atomic<std::size_t> refused{0};
    auto start = Clock::now();
    std::vector<std::thread> producers;
    for (std::size_t t = 0; t < threads; ++t) {
      producers.emplace_back([&] {
        for (;;) {
          std::size_t i = next.fetch_add(batch);
          if (i >= events.size()) return;
          std::span<const bridge::RunEvent> slice(events.data() + i,
                                                  std::min(batch, events.size() - i));
          if (spool.accept(slice).outcome != bridge::RunSink::Outcome::accepted) {
            refused += slice.size();
          }
        }
      });
    }
    for (auto& p : producers) p.join();
    double accept_s = std::chrono::duration<double>(Clock::now() - start).count();
    while (writer.rows_written() + refused < runs) {
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    double total_s = std::chrono::duration<double>(Clock::now() - start).count();
    writer.stop();
    {  // until the compactor has folded every delta
      pqxx::connection c(db.url);
      for (;;) {
        pqxx::read_transaction tx(c);
        if (tx.exec1("select count(*) from execution_time_rollup_deltas")[0].as<long long>() == 0)
          break;
        tx.commit();
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    }
    double compacted_s = std::chrono::duration<double>(Clock::now() - start).count();
    auto lag_samples = lag.finish();
    compactor.stop();
    std::printf("spool accept (durable, %zu threads x %zu-run batches): %.0f runs/s\n", threads,
                batch, static_cast<double>(runs) / accept_s);
    std::printf(
        "end to end (accepted -> committed in Postgres): %zu runs in %.2f s = %.0f runs/s"
        " (%.0f%% of the ceiling)%s\n",
        runs, total_s, static_cast<double>(runs) / total_s, 100.0 * copy_s / total_s,
        refused ? " [some refused: spool full]" : "");
    std::printf(
        "compactor (interval %d ms, up to %d deltas a round): %llu deltas folded, all compacted"
        " %.2f s after the start; oldest pending delta, sampled every 100 ms: p50 %.2f s, p99"
        " %.2f s, max %.2f s (%zu samples)\n",
        compactor_interval_ms, compactor_batch,
        static_cast<unsigned long long>(compactor.deltas_folded()), compacted_s,
        percentile(lag_samples, 0.5), percentile(lag_samples, 0.99),
        lag_samples.empty() ? 0.0 : *std::max_element(lag_samples.begin(), lag_samples.end()),
        lag_samples.size());
    std::printf("writer batches: %llu direct (binary COPY into the table), %llu staged\n",
                static_cast<unsigned long long>(writer.direct_batches()),
                static_cast<unsigned long long>(writer.staged_batches()));
    std::printf("rollup tables after the load:\n");
    print_rollup_tables(db.url);
  }
  std::filesystem::remove_all(spool_dir);
  return 0;
}
