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
//             [--compactor-batch D] [--spool DIR] [--login superuser|owner]
// --login owner: the daemon's usual login (owns the tables, not a superuser, so row level
// security applies to it and the writer takes its staged path); default: the URL's login.
// Creates (and drops) its own databases on that server.
#include <sys/resource.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "detail/run_copy.h"
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

// The daemon's usual login: not a superuser, owner of the tables it migrated, with their row
// level security forced on it too (the writer then takes its staged path). Dropped at exit.
struct OwnerLogin {
  std::string server, name;
  explicit OwnerLogin(std::string s) : server(std::move(s)) {
    name = "mhs_bench_owner_" + std::to_string(::getpid());
    pqxx::connection c(server);
    pqxx::nontransaction tx(c);
    tx.exec("create role " + tx.quote_name(name) + " login createrole nosuperuser nobypassrls");
  }
  ~OwnerLogin() {
    try {
      pqxx::connection c(server);
      pqxx::nontransaction tx(c);
      tx.exec("drop role if exists " + tx.quote_name(name));
    } catch (...) {
    }
  }
  void own(const Database& db) const {
    pqxx::connection c(db.server);
    pqxx::nontransaction tx(c);
    tx.exec("alter database " + tx.quote_name(db.name) + " owner to " + tx.quote_name(name));
  }
  std::string url(const std::string& database_url) const {
    auto start = database_url.find("://") + 3;
    auto at = database_url.find('@', start);
    return database_url.substr(0, start) + name + database_url.substr(at);
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

// CPU seconds (user + system) of the whole Postgres server on this machine: the postmaster,
// its live children, and the children it has reaped (backends that ended). Loopback only.
struct ServerCpu {
  int postmaster = 0;
  static double ticks_of(const std::string& stat_path, bool children) {
    std::ifstream in(stat_path);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    auto close = text.rfind(')');
    if (close == std::string::npos) return 0;
    std::istringstream fields(text.substr(close + 2));
    std::vector<std::string> f((std::istream_iterator<std::string>(fields)),
                               std::istream_iterator<std::string>());
    // After "(comm) ": state is field 3, utime 14, stime 15, cutime 16, cstime 17.
    if (f.size() < 15) return 0;
    double t = std::stod(f[11]) + std::stod(f[12]);
    if (children) t += std::stod(f[13]) + std::stod(f[14]);
    return t;
  }
  explicit ServerCpu(const std::string& url) {
    pqxx::connection c(url);
    pqxx::nontransaction tx(c);
    int backend = tx.exec1("select pg_backend_pid()")[0].as<int>();
    std::ifstream status("/proc/" + std::to_string(backend) + "/status");
    for (std::string line; std::getline(status, line);) {
      if (line.starts_with("PPid:")) postmaster = std::stoi(line.substr(5));
    }
  }
  double seconds() const {
    if (postmaster == 0) return 0;
    double ticks = ticks_of("/proc/" + std::to_string(postmaster) + "/stat", true);
    std::ifstream children("/proc/" + std::to_string(postmaster) + "/task/" +
                           std::to_string(postmaster) + "/children");
    for (int pid; children >> pid;)
      ticks += ticks_of("/proc/" + std::to_string(pid) + "/stat", false);
    return ticks / static_cast<double>(::sysconf(_SC_CLK_TCK));
  }
};

double client_cpu_seconds() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

struct Cost {
  double wall_s = 0, server_cpu_s = 0, client_cpu_s = 0;
};

// The ceiling: the rows COPYed in the writer's batch size into the migrated table, its
// triggers disabled (same table, same indexes, same constraints); in text (as libpqxx streams)
// or in the binary format the writer sends.
Cost raw_copy(const std::string& server, const std::vector<bridge::RunEvent>& events,
              std::size_t chunk, bool binary) {
  Database db(server, "mhs_bench_copy_" + std::to_string(::getpid()));
  bridge::migrate(db.url);
  bridge::detail::CopyConnection c(db.url);
  {
    pqxx::nontransaction tx(c);
    tx.exec("alter table execution_time_statistics disable trigger user");
  }
  ServerCpu server_cpu(db.url);
  double server0 = server_cpu.seconds(), client0 = client_cpu_seconds();
  auto start = Clock::now();
  if (binary) {
    std::string data;
    for (std::size_t i = 0; i < events.size(); i += chunk) {
      pqxx::work tx(c);
      data.clear();
      bridge::detail::encode_runs(events, i, std::min(events.size(), i + chunk), data);
      bridge::detail::copy_binary(tx, c, bridge::detail::kCopyRunsBinary, data);
      tx.commit();
    }
    return {std::chrono::duration<double>(Clock::now() - start).count(),
            server_cpu.seconds() - server0, client_cpu_seconds() - client0};
  }
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
  return {std::chrono::duration<double>(Clock::now() - start).count(),
          server_cpu.seconds() - server0, client_cpu_seconds() - client0};
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
  bool as_owner = false;
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
    else if (flag == "--login")
      as_owner = value == "owner";
  }
  if (url.empty()) {
    std::fprintf(stderr,
                 "usage: ingest_pg --url URL [--runs N] [--span-hours H] [--threads T] "
                 "[--batch B] [--writer-batch R] [--compactor-interval-ms M] "
                 "[--compactor-batch D] [--spool DIR] [--login superuser|owner]\n");
    return 2;
  }
  auto events = make_events(runs, span_hours);
  std::printf("%zu runs of 1000 workflows, 100 tenants, finishing over %.2f h\n", runs, span_hours);

  // Both ceilings, and the CPU they cost: on a shared machine the rates move with the load,
  // the CPU seconds much less.
  Cost text = raw_copy(url, events, writer_batch, false);
  Cost binary = raw_copy(url, events, writer_batch, true);
  for (const auto& [what, c] : {std::pair{"text", text}, std::pair{"binary", binary}}) {
    std::printf(
        "ceiling (%s): COPY into execution_time_statistics, same indexes, no triggers, %zu-row"
        " transactions: %zu rows in %.2f s = %.0f rows/s; CPU: server %.2f s, client %.2f s\n",
        what, writer_batch, runs, c.wall_s, static_cast<double>(runs) / c.wall_s, c.server_cpu_s,
        c.client_cpu_s);
  }
  const double copy_s = text.wall_s;
  ServerCpu server_cpu(url);

  std::optional<OwnerLogin> owner;
  if (as_owner) owner.emplace(url);
  Database db(url, "mhs_bench_ingest_" + std::to_string(::getpid()));
  if (owner) {
    owner->own(db);
    db.url = owner->url(db.url);
    std::printf("writer, compactor and migrations as %s: owner, not a superuser, RLS forced\n",
                owner->name.c_str());
  }
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
    double server0 = server_cpu.seconds(), client0 = client_cpu_seconds();
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
    Cost committed{total_s, server_cpu.seconds() - server0, client_cpu_seconds() - client0};
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
    Cost compacted{compacted_s, server_cpu.seconds() - server0, client_cpu_seconds() - client0};
    auto lag_samples = lag.finish();
    compactor.stop();
    std::printf("spool accept (durable, %zu threads x %zu-run batches): %.0f runs/s\n", threads,
                batch, static_cast<double>(runs) / accept_s);
    std::printf(
        "end to end (accepted -> committed in Postgres): %zu runs in %.2f s = %.0f runs/s"
        " (%.0f%% of the ceiling)%s\n",
        runs, total_s, static_cast<double>(runs) / total_s, 100.0 * copy_s / total_s,
        refused ? " [some refused: spool full]" : "");
    std::printf("  = %.0f%% of the binary ceiling's rate\n", 100.0 * binary.wall_s / total_s);
    std::printf(
        "CPU until all committed: server %.2f s, client %.2f s (binary ceiling: %.0f%% of it);"
        " until all compacted: server %.2f s, client %.2f s (binary ceiling: %.0f%% of it)\n",
        committed.server_cpu_s, committed.client_cpu_s,
        100.0 * (binary.server_cpu_s + binary.client_cpu_s) /
            (committed.server_cpu_s + committed.client_cpu_s),
        compacted.server_cpu_s, compacted.client_cpu_s,
        100.0 * (binary.server_cpu_s + binary.client_cpu_s) /
            (compacted.server_cpu_s + compacted.client_cpu_s));
    std::printf(
        "compactor (interval %d ms, up to %d deltas a round): %llu deltas folded, all compacted"
        " %.2f s after the start; oldest pending delta, sampled every 100 ms: p50 %.2f s, p99"
        " %.2f s, max %.2f s (%zu samples)\n",
        compactor_interval_ms, compactor_batch,
        static_cast<unsigned long long>(compactor.deltas_folded()), compacted_s,
        percentile(lag_samples, 0.5), percentile(lag_samples, 0.99),
        lag_samples.empty() ? 0.0 : *std::max_element(lag_samples.begin(), lag_samples.end()),
        lag_samples.size());
    std::printf(
        "writer batches: %llu direct (binary COPY into the table), %llu staged; %llu with the "
        "rollup deltas appended by the writer (the others' by the trigger)\n",
        static_cast<unsigned long long>(writer.direct_batches()),
        static_cast<unsigned long long>(writer.staged_batches()),
        static_cast<unsigned long long>(writer.client_delta_batches()));
    std::printf("rollup tables after the load:\n");
    print_rollup_tables(db.url);
  }
  std::filesystem::remove_all(spool_dir);
  return 0;
}
