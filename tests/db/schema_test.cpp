#include <cstdio>
#include <thread>

#include "db_support.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/storage.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;

namespace {

std::string pg_dump_binary() {
  if (const char* dir = std::getenv("MESHHOOK_PG_BINDIR")) return std::string(dir) + "/pg_dump";
  for (const char* candidate :
       {"/usr/lib/postgresql/15/bin/pg_dump", "/usr/lib/postgresql/16/bin/pg_dump",
        "/usr/lib/postgresql/17/bin/pg_dump"}) {
    if (::access(candidate, X_OK) == 0) return candidate;
  }
  return "pg_dump";
}

// The schema as pg_dump prints it, without the lines that differ between any two dumps.
std::string schema_dump(const std::string& url) {
  std::string command =
      pg_dump_binary() + " --schema-only --no-owner --no-privileges '" + url + "'";
  FILE* pipe = ::popen(command.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string out;
  char line[4096];
  while (std::fgets(line, sizeof line, pipe) != nullptr) {
    std::string_view l(line);
    if (l.starts_with("\\restrict") || l.starts_with("\\unrestrict") ||
        l.starts_with("-- Dumped")) {
      continue;
    }
    out += l;
  }
  REQUIRE(::pclose(pipe) == 0);
  return out;
}

std::string recorded(const TestDatabase& db) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  std::string out;
  for (const auto& row :
       tx.exec("select version, name, checksum from meshhook_stats_migrations order by version")) {
    out += row[0].as<std::string>() + " " + row[1].as<std::string>() + " " +
           row[2].as<std::string>() + "\n";
  }
  return out;
}

}  // namespace

TEST_CASE("migrations apply in order and are a no-op the second time", "[db][schema]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);

  auto before = bridge::check_schema(db.url());
  CHECK(before.current_version == 0);
  CHECK_FALSE(before.current());
  CHECK(before.message().find("run `meshhook-stats migrate`") != std::string::npos);

  int n = static_cast<int>(bridge::migrations().size());
  REQUIRE(n >= 2);
  CHECK(bridge::migrate(db.url()) == n);
  CHECK(bridge::migrate(db.url()) == 0);
  CHECK(db.scalar("select count(*) from meshhook_stats_migrations") == n);
  CHECK(db.scalar("select count(*) from execution_time_statistics") == 0);

  auto after = bridge::check_schema(db.url());
  CHECK(after.current());
  CHECK(after.current_version == bridge::required_schema_version());
  CHECK(after.message().empty());
}

TEST_CASE("two daemons migrating at once apply each migration once", "[db][schema]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  int a = -1, b = -1;
  std::thread t1([&] { a = bridge::migrate(db.url()); });
  std::thread t2([&] { b = bridge::migrate(db.url()); });
  t1.join();
  t2.join();
  CHECK(a + b == static_cast<int>(bridge::migrations().size()));
  CHECK(db.scalar("select count(*) from meshhook_stats_migrations") ==
        static_cast<long long>(bridge::migrations().size()));
}

TEST_CASE("schema.sql equals the migrations applied in order", "[db][schema]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase migrated(server);
  TestDatabase from_file(server);
  bridge::migrate(migrated.url());
  from_file.exec_file("sql/schema.sql");

  auto dump = schema_dump(migrated.url());
  CHECK(dump.find("CREATE TABLE public.execution_time_statistics") != std::string::npos);
  CHECK(schema_dump(from_file.url()) == dump);
  // Recorded the same way, so `migrate` on a database made from schema.sql does nothing.
  CHECK(recorded(from_file) == recorded(migrated));
  CHECK(bridge::migrate(from_file.url()) == 0);
}

TEST_CASE("the embedded migrations are the files in sql/migrations", "[db][schema]") {
  for (const auto& m : bridge::migrations()) {
    char prefix[8];
    std::snprintf(prefix, sizeof prefix, "%04d_", m.version);
    auto text = meshhook::testing::read_file(std::string(MESHHOOK_SOURCE_DIR) + "/sql/migrations/" +
                                             prefix + m.name + ".sql");
    CHECK(text == m.sql);
  }
}

TEST_CASE("storage refuses to start on an older schema and says to migrate", "[db][schema]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  meshhook::exporter::Registry registry;
  meshhook::exporter::RunMetrics metrics(registry, {});
  bridge::StorageOptions options;
  options.database_url = db.url();
  options.spool_dir = "/nonexistent-never-created";
  bridge::Storage storage(options, registry, metrics);
  try {
    storage.start();
    FAIL("start() accepted an unmigrated database");
  } catch (const std::runtime_error& e) {
    CHECK(std::string(e.what()) == "database schema is at version 0, this build needs " +
                                       std::to_string(bridge::required_schema_version()) +
                                       ": run `meshhook-stats migrate`");
  }
}
