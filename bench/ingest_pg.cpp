// Durable ingest into Postgres: runs accepted by the spool (group commit, fdatasync) and
// drained by the batch writer until committed, beside raw COPY into the same table as the
// ceiling. Usage:
//   ingest_pg --url postgresql://user@host:port/db [--runs N] [--threads T] [--batch B]
//             [--writer-batch R] [--spool DIR]
// Creates (and drops) its own databases on that server.
#include <unistd.h>

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

std::vector<bridge::RunEvent> make_events(std::size_t n) {
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
  for (std::size_t i = 0; i < n; ++i) {
    auto& e = out[i];
    e.run_id = random_uuid();
    std::size_t w = rng() % workflows.size();
    e.workflow_id = workflows[w];
    e.project_id = projects[w % projects.size()];
    e.status = static_cast<bridge::RunStatus>(1 + rng() % 4);
    e.finished_at_us = now + static_cast<std::int64_t>(i) * 100;
    e.started_at_us = e.finished_at_us - static_cast<std::int64_t>(rng() % 60'000'000);
    e.workflow_name = "workflow-" + std::to_string(w);  // as producers send it
  }
  return out;
}

double raw_copy(const std::string& server, const std::vector<bridge::RunEvent>& events) {
  Database db(server, "mhs_bench_copy_" + std::to_string(::getpid()));
  bridge::migrate(db.url);
  pqxx::connection c(db.url);
  auto start = Clock::now();
  const std::size_t chunk = 20000;
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

}  // namespace

int main(int argc, char** argv) {
  std::string url;
  std::size_t runs = 1'000'000, threads = 8, batch = 1000, writer_batch = 20000;
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
    else if (flag == "--spool")
      spool_dir = value;
  }
  if (url.empty()) {
    std::fprintf(stderr,
                 "usage: ingest_pg --url URL [--runs N] [--threads T] [--batch B] "
                 "[--writer-batch R] [--spool DIR]\n");
    return 2;
  }
  auto events = make_events(runs);

  double copy_s = raw_copy(url, events);
  std::printf("raw COPY into execution_time_statistics: %zu rows in %.2f s = %.0f rows/s\n", runs,
              copy_s, static_cast<double>(runs) / copy_s);

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
    std::printf("spool accept (durable, %zu threads x %zu-run batches): %.0f runs/s\n", threads,
                batch, static_cast<double>(runs) / accept_s);
    std::printf(
        "end to end (accepted -> committed in Postgres): %zu runs in %.2f s = %.0f runs/s"
        " (%.0f%% of raw COPY)%s\n",
        runs, total_s, static_cast<double>(runs) / total_s, 100.0 * copy_s / total_s,
        refused ? " [some refused: spool full]" : "");
  }
  std::filesystem::remove_all(spool_dir);
  return 0;
}
