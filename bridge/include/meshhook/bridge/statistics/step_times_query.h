#pragma once
// The SQL of GET /api/v1/statistics/step-times: one group per step of one workflow over a
// range: exact percentile_cont over step_time_statistics, or the rollups of
// migration 0014 (ExecutionTimeSketch within 1 %, the rest exact). Runs inside the caller's
// transaction, after StatisticsQuery::resolve made it theirs. One object per request; not
// thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "meshhook/bridge/statistics/statistics_query.h"

namespace pqxx {
class transaction_base;
}

namespace meshhook::bridge {

/// One step of the workflow: milliseconds; share and median_share are null when the total
/// they divide by is 0.
struct StepTimes {
  std::string step_id;
  std::string step_type;  // of the step's latest row (by finished_at, then the type)
  std::uint64_t count = 0;
  std::uint64_t failed = 0;    // rows whose last attempt failed
  double sum_ms = 0;           // exact either way
  std::uint64_t attempts = 0;  // summed over the rows
  double avg = 0;
  double median = 0;
  double p95 = 0;
  double p99 = 0;
  double failure_ratio = 0;            // failed / count
  double mean_attempts = 0;            // attempts / count
  std::optional<double> share;         // sum_ms / the sum over every step
  std::optional<double> median_share;  // median / the sum of every step's median
};

class StepTimesQuery {
 public:
  /// params from parse_statistics_params(..., StatisticsEndpoint::step_times): one workflow.
  StepTimesQuery(pqxx::transaction_base& tx, const StatisticsParams& params,
                 StatisticsQueryLimits limits = {},
                 std::uint64_t exact_max_rows = StatisticsQuery::kDefaultExactMaxRows);

  /// The steps finished in [range.start_us, range.end_us), by share descending (then step_id).
  /// exact=true: from the rows; exact=false: from the rollups; neither: exact when the rollups
  /// count at most exact_max_rows rows in the range, else from the rollups. Throws
  /// StatisticsTooMuchData when the sketch path would read more than limits.max_rollup_rows bucket
  /// rows.
  std::vector<StepTimes> steps(const ResolvedRange& range);

  StatisticsMethod method() const noexcept { return method_; }
  const char* statement() const noexcept { return statement_; }

 private:
  std::vector<StepTimes> exact_steps(const ResolvedRange& range);
  std::vector<StepTimes> sketch_steps(const ResolvedRange& range);

  pqxx::transaction_base& tx_;
  const StatisticsParams& params_;
  StatisticsQueryLimits limits_;
  std::uint64_t exact_max_rows_;
  StatisticsMethod method_ = StatisticsMethod::exact;
  const char* statement_ = "";
};

}  // namespace meshhook::bridge
