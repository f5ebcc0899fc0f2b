#pragma once
// The statistics API on a migrated test database, called as a tenant, and the checks the
// statistics tests share.

#include <cmath>
#include <nlohmann/json.hpp>

#include "db_support.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/bridge/storage/migrations.h"

namespace meshhook::testing {

namespace bridge = meshhook::bridge;
using nlohmann::json;

inline constexpr const char* kProject = "11111111-1111-1111-1111-111111111111";
inline constexpr const char* kBase = "/api/v1/statistics/execution-times";

// A migrated database with a pool and the API on it.
struct StatsDb {
  TestDatabase db;
  bridge::ConnectionPool pool;
  bridge::StatisticsApi api;
  explicit StatsDb(const std::string& server, std::uint64_t exact_max_rows = 20000)
      : db(server), pool(migrated(db), 2), api(pool, {.exact_max_rows = exact_max_rows}) {}

  static std::string migrated(const TestDatabase& db) {
    bridge::migrate(db.url());
    return db.url();
  }

  // As a caller whose token lists kProject (how a standalone deployment names the tenant).
  bridge::HttpResponse raw(const std::string& path, const std::string& query,
                           const std::string& project = kProject) {
    bridge::HttpRequest r;
    r.method = "GET";
    r.path = path;
    r.query = query;
    r.header = [](std::string_view) { return std::string_view(); };
    return api.handle(r, {"user-1", R"({"sub":"user-1","role":"authenticated",)"
                                    R"("meshhook_project_ids":[")" +
                                        project + R"("]})"});
  }
  json get(const std::string& query, const std::string& path = kBase) {
    auto r = raw(path, query);
    INFO(query << " -> " << r.status << " " << r.body);
    REQUIRE(r.status == 200);
    return json::parse(r.body);
  }
};

inline double sql_double(const TestDatabase& db, const std::string& sql) {
  pqxx::connection c(db.url());
  pqxx::read_transaction tx(c);
  return tx.exec1(sql)[0].as<double>();
}

inline void check_close(double got, double exact, double relative) {
  INFO("got " << got << ", exact " << exact);
  CHECK(std::abs(got - exact) <= relative * std::abs(exact) + 1e-3);
}

}  // namespace meshhook::testing
