// The statistics endpoint alone, for the wrk benchmark: the daemon's HTTP server and
// StatisticsApi on a database loaded by generate.sql. A bearer token that is a project uuid
// stands for a caller of that tenant (claims {"meshhook_project_ids": [token]}), so every
// request runs under row level security as in production.
//
//   statistics_server --database URL [--listen 127.0.0.1:9480] [--threads 48] [--pool 8]

#include <algorithm>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>

#include "http_server.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/exporter/registry.h"

using namespace meshhook;

namespace {
volatile std::sig_atomic_t stop_requested = 0;
void on_signal(int) { stop_requested = 1; }
}  // namespace

int main(int argc, char** argv) {
  std::string database, listen = "127.0.0.1:9480";
  int threads = 48, pool_size = 8;
  for (int i = 1; i + 1 < argc; i += 2) {
    if (!std::strcmp(argv[i], "--database"))
      database = argv[i + 1];
    else if (!std::strcmp(argv[i], "--listen"))
      listen = argv[i + 1];
    else if (!std::strcmp(argv[i], "--threads"))
      threads = std::stoi(argv[i + 1]);
    else if (!std::strcmp(argv[i], "--pool"))
      pool_size = std::stoi(argv[i + 1]);
  }
  if (database.empty()) {
    std::fprintf(stderr,
                 "usage: statistics_server --database URL [--listen HOST:PORT] "
                 "[--threads N] [--pool N]\n");
    return 2;
  }
  exporter::Registry registry;
  auto& durations = registry.add_histogram({.name = "bench_request_duration_seconds",
                                            .help = "Requests.",
                                            .unit = "seconds",
                                            .label_names = {"route", "code"}},
                                           {0.001, 0.01, 0.1, 1});
  bridge::ConnectionPool pool(database, static_cast<std::size_t>(pool_size));
  bridge::StatisticsApi api(pool);
  app::ListenerConfig config{listen, threads, 10000, std::max(1, threads / 2), ""};
  app::HttpServer server("bench", config, durations);
  server.add(
      {"/api/v1/statistics/execution-times", "statistics", [&](const bridge::HttpRequest& r) {
         auto token = std::string(bridge::bearer_token(r.header("Authorization")));
         if (token.size() != 36) return bridge::json_error(401, "unauthorized", "token");
         return api.handle(r, {token, R"({"sub":")" + token + R"(","meshhook_project_ids":[")" +
                                          token + R"("]})"});
       }});
  server.start();
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
  std::printf("listening on %s\n", listen.c_str());
  std::fflush(stdout);
  while (!stop_requested) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  server.stop();
  return 0;
}
