#pragma once
// GET /api/v1/statistics/execution-times, queue-times (each with .../histogram) and
// step-times: parses the parameters, runs StatisticsQuery (or StepTimesQuery) as the caller
// (read-only transaction, request.jwt.claims set, role meshhook_stats_reader) and answers JSON.
// Thread-safe: each request leases its own connection from the pool.

#include <cstdint>
#include <pqxx/pqxx>
#include <string>
#include <string_view>

#include "meshhook/bridge/auth/tenant_claims.h"
#include "meshhook/bridge/common/http.h"
#include "meshhook/bridge/statistics/caller_concurrency_limit.h"
#include "meshhook/bridge/statistics/request_deadline.h"
#include "meshhook/bridge/statistics/statistics_query.h"
#include "meshhook/bridge/storage/connection_pool.h"

namespace meshhook::bridge {

struct StatisticsApiOptions {
  /// The resources are root + /execution-times[/histogram], /queue-times[/histogram] and
  /// /step-times.
  std::string root = "/api/v1/statistics";
  std::uint64_t exact_max_rows = StatisticsQuery::kDefaultExactMaxRows;
  /// One deadline for all the statements of a request; past it the request answers 504.
  int request_timeout_ms = 5000;
  std::uint64_t max_buckets = StatisticsQueryLimits{}.max_buckets;
  std::uint64_t max_rollup_rows = StatisticsQueryLimits{}.max_rollup_rows;
  /// Requests one caller (JWT subject) may have in flight; more answer 429.
  std::size_t max_in_flight_per_caller = 4;
};

class StatisticsApi {
 public:
  StatisticsApi(ConnectionPool& pool, StatisticsApiOptions options = {});

  /// The caller is already authenticated: claims are theirs. Answers 429 when the caller
  /// has options.max_in_flight_per_caller requests running, 504 past the request deadline.
  HttpResponse handle(const HttpRequest& request, const TenantClaims& claims);

  /// Requests in flight per caller.
  const CallerConcurrencyLimit& caller_limit() const noexcept { return caller_limit_; }

  /// Whether the caller may read project_id (a canonical uuid), as the row level security
  /// policies decide it (meshhook_stats_caller_project_ids()). Throws ConnectionPoolTimeout
  /// or pqxx errors when the database cannot answer.
  bool may_read_project(const TenantClaims& claims, std::string_view project_id);

 private:
  HttpResponse run(const HttpRequest& request, const TenantClaims& claims,
                   StatisticsEndpoint endpoint, bool histogram, const RequestDeadline& deadline);

  ConnectionPool& pool_;
  StatisticsApiOptions options_;
  CallerConcurrencyLimit caller_limit_;
};

}  // namespace meshhook::bridge
