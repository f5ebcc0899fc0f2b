#pragma once
// GET /api/v1/statistics/execution-times and .../histogram: parses the parameters, runs
// StatisticsQuery as the caller (read-only transaction, request.jwt.claims set, role
// meshhook_stats_reader) and answers JSON. Thread-safe: each request leases
// its own connection from the pool.

#include <cstdint>
#include <pqxx/pqxx>
#include <string>
#include <string_view>

#include "meshhook/bridge/auth/tenant_claims.h"
#include "meshhook/bridge/common/http.h"
#include "meshhook/bridge/statistics/statistics_query.h"
#include "meshhook/bridge/storage/connection_pool.h"

namespace meshhook::bridge {

struct StatisticsApiOptions {
  std::string base_path = "/api/v1/statistics/execution-times";
  std::uint64_t exact_max_rows = StatisticsQuery::kDefaultExactMaxRows;
  int statement_timeout_ms = 10000;
};

class StatisticsApi {
 public:
  StatisticsApi(ConnectionPool& pool, StatisticsApiOptions options = {});

  /// The caller is already authenticated: claims are theirs.
  HttpResponse handle(const HttpRequest& request, const TenantClaims& claims);

  /// Whether the caller may read project_id (a canonical uuid), as the row level security
  /// policies decide it (meshhook_stats_caller_project_ids()). Throws ConnectionPoolTimeout
  /// or pqxx errors when the database cannot answer.
  bool may_read_project(const TenantClaims& claims, std::string_view project_id);

 private:
  // The caller's claims and the reader role, for this transaction only.
  void act_as_caller(pqxx::transaction_base& tx, const TenantClaims& claims) const;
  HttpResponse run(const HttpRequest& request, const TenantClaims& claims, bool histogram);

  ConnectionPool& pool_;
  StatisticsApiOptions options_;
};

}  // namespace meshhook::bridge
