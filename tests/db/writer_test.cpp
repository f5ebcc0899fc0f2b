#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>

#include <atomic>
#include <filesystem>
#include <random>
#include <thread>
#include <vector>

#include "db_support.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/bridge/storage/storage.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

using meshhook::testing::TempDir;
using meshhook::testing::TestDatabase;
using meshhook::testing::TestLogin;
namespace bridge = meshhook::bridge;
namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

bridge::RunEvent event(std::uint32_t n, std::int64_t duration_us = 1500) {
  bridge::RunEvent e;
  e.run_id = *bridge::Uuid::parse("00000000-0000-4000-8000-000000000000");
  e.run_id.bytes[12] = static_cast<std::uint8_t>(n >> 24);
  e.run_id.bytes[13] = static_cast<std::uint8_t>(n >> 16);
  e.run_id.bytes[14] = static_cast<std::uint8_t>(n >> 8);
  e.run_id.bytes[15] = static_cast<std::uint8_t>(n);
  e.workflow_id = *bridge::Uuid::parse("22222222-2222-4222-8222-222222222222");
  e.project_id = *bridge::Uuid::parse("11111111-1111-4111-8111-111111111111");
  e.status = bridge::RunStatus::succeeded;
  e.started_at_us = 1'767'225'600'000'000;  // 2026-01-01T00:00:00Z
  e.finished_at_us = e.started_at_us + duration_us;
  return e;
}

bridge::SpoolOptions spool_options(const TempDir& dir) {
  bridge::SpoolOptions o;
  o.dir = dir.path;
  o.group_commit_us = 0;
  return o;
}

bridge::BatchWriterOptions writer_options(const std::string& url) {
  bridge::BatchWriterOptions o;
  o.database_url = url;
  o.batch_rows = 1000;
  o.batch_interval = 20ms;
  o.initial_backoff = 50ms;
  o.max_backoff = 400ms;
  return o;
}

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds timeout = 30s) {
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);
  }
  return pred();
}

int free_port() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  socklen_t len = sizeof addr;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len);
  ::close(fd);
  return ntohs(addr.sin_port);
}

int port_of(const std::string& url) {
  auto at = url.find('@');
  auto colon = url.find(':', at);
  return std::stoi(url.substr(colon + 1));
}

// A loopback TCP relay to Postgres that does not exist until open(): "the database is
// unreachable", then "it is back", at the same address.
class Relay {
 public:
  Relay(int listen_port, int target_port) : listen_port_(listen_port), target_port_(target_port) {}
  ~Relay() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (auto& t : pipes_) t.join();
  }
  void open() {
    int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<std::uint16_t>(listen_port_));
    REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
    REQUIRE(::listen(fd, 16) == 0);
    thread_ = std::thread([this, fd] {
      while (!stop_) {
        pollfd p{fd, POLLIN, 0};
        if (::poll(&p, 1, 50) <= 0) continue;
        int client = ::accept(fd, nullptr, nullptr);
        if (client < 0) continue;
        int server = ::socket(AF_INET, SOCK_STREAM, 0);
        sockaddr_in target{};
        target.sin_family = AF_INET;
        target.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        target.sin_port = htons(static_cast<std::uint16_t>(target_port_));
        if (::connect(server, reinterpret_cast<sockaddr*>(&target), sizeof target) != 0) {
          ::close(client);
          ::close(server);
          continue;
        }
        pipes_.emplace_back([this, client, server] { pump(client, server); });
      }
      ::close(fd);
    });
  }

 private:
  void pump(int a, int b) {
    char buf[65536];
    pollfd p[2] = {{a, POLLIN, 0}, {b, POLLIN, 0}};
    while (!stop_) {
      if (::poll(p, 2, 50) <= 0) continue;
      for (int i = 0; i < 2; ++i) {
        if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t n = ::read(p[i].fd, buf, sizeof buf);
        if (n <= 0 || ::write(p[1 - i].fd, buf, static_cast<std::size_t>(n)) != n) {
          ::close(a);
          ::close(b);
          return;
        }
      }
    }
    ::close(a);
    ::close(b);
  }

  int listen_port_;
  int target_port_;
  std::atomic<bool> stop_{false};
  std::thread thread_;
  std::vector<std::thread> pipes_;
};

}  // namespace

TEST_CASE("writer stores spooled runs with exact times and rounded milliseconds", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(db.url()), registry);

  std::vector<bridge::RunEvent> events{event(1, 1499), event(2, 1500), event(3, 0),
                                       event(4, 86'400'000'001), event(5, -3000)};
  events[1].status = bridge::RunStatus::timeout;
  events[1].started_at_us += 123456;  // odd microseconds survive the trip
  events[1].finished_at_us += 123456;
  REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
  writer.start();
  REQUIRE(eventually([&] { return writer.rows_written() == 5; }));
  CHECK(eventually([&] { return spool.stats().records == 0; }));
  CHECK(writer.database_up());
  writer.stop();

  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  auto rows = tx.exec(
      "select run_id::text, status, execution_time_ms, source,"
      " to_char(started_at at time zone 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.US') "
      "from execution_time_statistics order by run_id");
  REQUIRE(rows.size() == 5);
  CHECK(rows[0][0].as<std::string>() == "00000000-0000-4000-8000-000000000001");
  CHECK(rows[0][2].as<long long>() == 1);  // 1.499 ms
  CHECK(rows[1][2].as<long long>() == 2);  // 1.500 ms rounds half up
  CHECK(rows[1][1].as<std::string>() == "timeout");
  CHECK(rows[1][4].as<std::string>() == "2026-01-01T00:00:00.123456");
  CHECK(rows[2][2].as<long long>() == 0);
  CHECK(rows[3][2].as<long long>() == 86'400'000);
  CHECK(rows[4][2].as<long long>() == 0);  // finished before it started: clamped, not refused
  CHECK(rows[0][3].as<std::string>() == "ingest");
}

TEST_CASE("a run of another project neither renames nor moves a workflow", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(db.url()), registry);
  writer.start();
  auto own = event(1);
  own.workflow_name = "Checkout";
  REQUIRE(spool.accept({&own, 1}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return writer.rows_written() == 1; }));

  // Tenant B reports a run with A's workflow id and a name of its own.
  auto intruder = event(2);
  intruder.project_id = *bridge::Uuid::parse("33333333-3333-4333-8333-333333333333");
  intruder.workflow_name = "Hijacked";
  intruder.finished_at_us += 1000000;  // the latest name would win
  REQUIRE(spool.accept({&intruder, 1}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return writer.rows_written() == 2; }));
  // A's own later runs still rename it.
  auto renamed = event(3);
  renamed.workflow_name = "Checkout v2";
  renamed.finished_at_us += 2000000;
  REQUIRE(spool.accept({&renamed, 1}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return writer.rows_written() == 3; }));
  writer.stop();

  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  auto row = tx.exec1("select project_id::text, name from execution_time_workflows");
  CHECK(row[0].as<std::string>() == "11111111-1111-4111-8111-111111111111");
  CHECK(row[1].as<std::string>() == "Checkout v2");
}

TEST_CASE("writer stores a batch exactly once even when it is replayed", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  std::vector<bridge::RunEvent> events;
  for (std::uint32_t i = 0; i < 2500; ++i) events.push_back(event(i));

  // First daemon: writes everything, but "crashes" before its acknowledgement is durable:
  // simulated by a second spool that holds the same records again.
  for (int attempt = 0; attempt < 2; ++attempt) {
    TempDir dir;
    bridge::Spool spool(spool_options(dir));
    meshhook::exporter::Registry registry;
    bridge::BatchWriter writer(spool, writer_options(db.url()), registry);
    REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
    REQUIRE(spool.accept({events.data(), 10}).outcome == bridge::RunSink::Outcome::accepted);
    writer.start();
    REQUIRE(eventually([&] { return spool.stats().records == 0; }));
    writer.stop();
    CHECK(writer.rows_written() == (attempt == 0 ? 2500u : 0u));
    CHECK(db.scalar("select count(*) from execution_time_statistics") == 2500);
  }
  CHECK(db.scalar("select count(distinct run_id) from execution_time_statistics") == 2500);
}

static double path_batches(meshhook::exporter::Registry& registry, const std::string& path) {
  for (const auto& family : registry.collect()) {
    if (family.name != "meshhook_stats_write_path_batches_total") continue;
    for (const auto& series : family.series) {
      if (series.label_values == std::vector<std::string>{path}) return series.value;
    }
  }
  return -1;
}

TEST_CASE("writer copies a batch straight into the table when none of its runs is stored",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(db.url()), registry);
  std::vector<bridge::RunEvent> events;
  for (std::uint32_t i = 0; i < 300; ++i) {
    events.push_back(event(i, 1000 + i));
    events.back().workflow_name = "Checkout " + std::to_string(i);
  }
  REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
  writer.start();
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();

  CHECK(writer.rows_written() == 300);
  CHECK(writer.direct_batches() == 1);
  CHECK(writer.staged_batches() == 0);
  CHECK(writer.replay_batches() == 0);
  CHECK(path_batches(registry, "direct") == 1);
  CHECK(path_batches(registry, "staged") == 0);
  CHECK(db.scalar("select count(*) from execution_time_statistics where source = 'ingest'") == 300);
  // Durations 1.000 .. 1.299 ms round half up to 1; the rollups count each run once.
  CHECK(db.scalar("select sum(execution_time_ms) from execution_time_statistics") == 300);
  CHECK(db.scalar("select sum(run_count) from execution_time_rollups") == 300);
  // The latest name of the batch wins, as on the staged path (the runs finish in order).
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  CHECK(tx.exec1("select name from execution_time_workflows")[0].as<std::string>() ==
        "Checkout 299");
}

TEST_CASE("a batch with a run already stored stores every other run exactly once", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(db.url()), registry);
  writer.start();
  auto stored = event(7);
  REQUIRE(spool.accept({&stored, 1}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return writer.rows_written() == 1; }));
  CHECK(writer.direct_batches() == 1);

  // A producer's retry of run 7 inside a batch of new runs: the direct COPY is refused
  // whole, the replay path skips run 7 and stores the 199 others.
  std::vector<bridge::RunEvent> events;
  for (std::uint32_t i = 0; i < 200; ++i) events.push_back(event(i));
  REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  CHECK(writer.rows_written() == 200);
  CHECK(writer.direct_batches() == 1);
  CHECK(writer.replay_batches() == 1);

  // That batch met a stored run, so the next one is written as a replay too; it meets none,
  // and the one after goes straight in again.
  std::vector<bridge::RunEvent> later;
  for (std::uint32_t i = 200; i < 300; ++i) later.push_back(event(i));
  REQUIRE(spool.accept({later.data(), 50}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  CHECK(writer.replay_batches() == 2);
  REQUIRE(spool.accept({later.data() + 50, 50}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();
  CHECK(writer.direct_batches() == 2);
  CHECK(writer.replay_batches() == 2);
  CHECK(writer.staged_batches() == 0);
  CHECK(path_batches(registry, "replay") == 2);

  CHECK(writer.rows_written() == 300);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 300);
  CHECK(db.scalar("select count(distinct run_id) from execution_time_statistics") == 300);
  CHECK(db.scalar("select sum(run_count) from execution_time_rollups") == 300);
  CHECK(db.scalar("select count(*) from execution_time_rejected_runs") == 0);
}

TEST_CASE("a run whose times the fast path cannot carry exactly goes the staged path",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(db.url()), registry);
  std::vector<bridge::RunEvent> events{event(1), event(2)};
  // 2300-01-01T00:00:00Z: a valid timestamptz, beyond 2^53 microseconds from 1970.
  events[1].started_at_us = 10'413'792'000'000'000;
  events[1].finished_at_us = events[1].started_at_us + 2500;
  REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
  writer.start();
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();
  CHECK(writer.direct_batches() == 0);
  CHECK(writer.staged_batches() == 1);
  CHECK(writer.replay_batches() == 0);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 2);
  CHECK(db.scalar("select count(*) from execution_time_statistics"
                  " where finished_at >= '2300-01-01T00:00:00Z'") == 1);
}

TEST_CASE("an owner under its own row level security writes through the staged path",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestLogin owner(server, "mhs_owner_", "createrole nosuperuser nobypassrls");
  TestDatabase db(server);
  db.exec("alter database " + db.name() + " owner to " + owner.name);
  // The usual deployment: the daemon's login migrated and owns the tables, and row level
  // security is forced on the owner too, so COPY into the table would be refused.
  bridge::migrate(owner.url(db.url()));
  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(owner.url(db.url())), registry);
  std::vector<bridge::RunEvent> events;
  for (std::uint32_t i = 0; i < 100; ++i) {
    events.push_back(event(i));
    events.back().workflow_name = "Checkout";
  }
  REQUIRE(spool.accept({events.data(), 90}).outcome == bridge::RunSink::Outcome::accepted);
  writer.start();
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  // A retry of runs 80-89 with 10 new ones: refused whole, then written skipping the stored.
  REQUIRE(spool.accept({events.data() + 80, 20}).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();

  CHECK(writer.direct_batches() == 0);
  CHECK(writer.staged_batches() == 1);
  CHECK(writer.replay_batches() == 1);
  CHECK(writer.rows_written() == 100);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 100);
  CHECK(db.scalar("select count(distinct run_id) from execution_time_statistics") == 100);
  CHECK(db.scalar("select sum(run_count) from execution_time_rollups") == 100);
  CHECK(db.scalar("select count(*) from execution_time_workflows") == 1);
}

TEST_CASE("writer replays from the spool checkpoint after a restart", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  {
    bridge::Spool spool(spool_options(dir));
    std::vector<bridge::RunEvent> events;
    for (std::uint32_t i = 0; i < 300; ++i) events.push_back(event(i));
    REQUIRE(spool.accept(events).outcome == bridge::RunSink::Outcome::accepted);
  }  // the daemon stops before the writer ran
  bridge::Spool spool(spool_options(dir));
  CHECK(spool.stats().records == 300);
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(db.url()), registry);
  writer.start();
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 300);
}

TEST_CASE("writer keeps spooling while Postgres is unreachable and catches up after",
          "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  int port = free_port();
  Relay relay(port, port_of(server));
  auto url = meshhook::testing::with_host_port(db.url(), "127.0.0.1:" + std::to_string(port));

  TempDir dir;
  bridge::Spool spool(spool_options(dir));
  meshhook::exporter::Registry registry;
  bridge::BatchWriter writer(spool, writer_options(url), registry);
  writer.start();
  std::uint32_t next = 0;
  auto ingest = [&](int n) {
    for (int i = 0; i < n; ++i) {
      auto e = event(next++);
      REQUIRE(spool.accept({&e, 1}).outcome == bridge::RunSink::Outcome::accepted);
    }
  };
  ingest(200);
  std::this_thread::sleep_for(1s);  // several failed attempts with backoff
  ingest(200);
  CHECK_FALSE(writer.database_up());
  CHECK_FALSE(writer.last_error().empty());
  CHECK(spool.stats().records == 400);

  relay.open();  // Postgres is back at the same address
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  CHECK(writer.database_up());
  ingest(100);
  REQUIRE(eventually([&] { return spool.stats().records == 0; }));
  writer.stop();
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 500);

  // The outage is visible in the self-metrics.
  bool saw_error = false;
  for (const auto& family : registry.collect()) {
    if (family.name != "meshhook_stats_write_batches_total") continue;
    for (const auto& series : family.series) {
      if (series.label_values == std::vector<std::string>{"error"}) saw_error = series.value > 0;
    }
  }
  CHECK(saw_error);
}

TEST_CASE("storage wires spool and writer and reports readiness", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  TempDir dir;
  meshhook::exporter::Registry registry;
  meshhook::exporter::RunMetrics metrics(registry, {});
  bridge::StorageOptions options;
  options.database_url = db.url();
  options.spool_dir = dir.path.string();
  options.writer_batch_interval_ms = 20;
  bridge::Storage storage(options, registry, metrics);
  storage.start();
  std::vector<bridge::RunEvent> events{event(1), event(2)};
  CHECK(storage.sink().accept(events).outcome == bridge::RunSink::Outcome::accepted);
  REQUIRE(
      eventually([&] { return db.scalar("select count(*) from execution_time_statistics") == 2; }));
  CHECK(eventually([&] { return storage.ready(); }));
  // The rows are visible a moment before the writer acknowledges them in the spool.
  CHECK(eventually(
      [&] { return storage.readiness_detail().starts_with("database up; spool 0 runs"); }));
  storage.stop();
  std::vector<std::string> names;
  for (const auto& f : registry.collect()) names.push_back(f.name);
  for (const char* expected :
       {"meshhook_stats_spool_bytes", "meshhook_stats_spool_records",
        "meshhook_stats_spool_oldest_record_age_seconds", "meshhook_stats_write_batches_total",
        "meshhook_stats_write_rows_total", "meshhook_stats_write_duration_seconds",
        "meshhook_stats_database_up"}) {
    CHECK(std::find(names.begin(), names.end(), expected) != names.end());
  }
}

TEST_CASE("retention deletes expired runs in bounded batches", "[db][writer]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::migrate(db.url());
  db.exec(
      "insert into execution_time_statistics (run_id, project_id, workflow_id, status,"
      " started_at, finished_at, execution_time_ms)"
      " select gen_random_uuid(), gen_random_uuid(), gen_random_uuid(), 'succeeded',"
      "  now() - make_interval(days => g % 20), now() - make_interval(days => g % 20), 0"
      " from generate_series(1, 1000) g");
  // Ages 0..19 days, 50 rows each; older than 10 days: ages 11..19 (and 10 days minus a bit).
  auto expected = db.scalar(
      "select count(*) from execution_time_statistics where finished_at < now() - interval '10 "
      "days'");
  CHECK(bridge::delete_expired(db.url(), 10, 70) == static_cast<std::uint64_t>(expected));
  CHECK(db.scalar("select count(*) from execution_time_statistics where finished_at < now() - "
                  "interval '10 days'") == 0);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 1000 - expected);
}
