#include "meshhook/bridge/statistics/step_times_query.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <utility>

#include "detail/query_values.h"
#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/statistics/execution_time_sketch.h"

namespace meshhook::bridge {
namespace {

using detail::as_double;
using detail::as_int64;
using detail::prepared;
using detail::round3;

// $1 the workflow, $2 the step statuses (null: both); the range [$3, $4). Two shapes, so each
// prepared statement's generic plan uses the (workflow_id, finished_at) index, whose included
// columns are all a statement reads (an index-only scan once the table is vacuumed).
std::string step_filter(bool by_status) {
  return std::string(" from step_time_statistics where workflow_id = $1::uuid and ") +
         (by_status ? "status = any($2::text[])" : "$2::text[] is null") +
         " and finished_at >= $3::timestamptz and finished_at < $4::timestamptz";
}

// step, type, count, sum, failed, attempts. A step's type is that of its latest row (by
// finished_at, then the type itself), so a step whose type changed is one group.
constexpr const char* kTotals =
    "select step_id, (array_agg(step_type order by finished_at desc, step_type desc))[1],"
    " count(*), sum(duration_ms), count(*) filter (where status = 'failed'), sum(attempts)";

// The totals, then the percentiles 0.5, 0.95, 0.99.
std::string exact_sql(bool by_status) {
  return std::string(kTotals) +
         ", percentile_cont(array[0.5, 0.95, 0.99]::float8[]) within group (order by duration_ms)" +
         step_filter(by_status) + " group by step_id";
}

// The totals, then min, max, zeros, the sketch bucket and the latest finished_at (Unix
// microseconds): one row per step and bucket of ExecutionTimeSketch
// (meshhook_stats_sketch_index), at most $5 rows.
std::string sketch_sql(bool by_status) {
  return std::string(kTotals) +
         ", min(duration_ms), max(duration_ms), count(*) filter (where duration_ms = 0), " +
         detail::sketch_bucket_sql("meshhook_stats_sketch_index(duration_ms)", "count(*)") +
         ", (extract(epoch from max(finished_at)) * 1000000)::bigint" + step_filter(by_status) +
         " group by step_id, meshhook_stats_sketch_index(duration_ms) limit $5::bigint";
}

std::optional<std::string> statuses_literal(const StatisticsParams& p) {
  if (all_statuses(p)) return std::nullopt;
  std::string out = "{";
  for (const auto& s : p.statuses) out += (out.size() > 1 ? "," : "") + s;  // validated names
  return out + "}";
}

const char* c_str(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

// The figures every step has whichever way its percentiles were found.
void add_totals(StepTimes& s, const pqxx::row& row) {
  s.step_id = row[0].c_str();
  s.step_type = row[1].c_str();
  s.count += static_cast<std::uint64_t>(as_int64(row[2]));
  s.sum_ms += as_double(row[3]);
  s.failed += static_cast<std::uint64_t>(as_int64(row[4]));
  s.attempts += static_cast<std::uint64_t>(as_int64(row[5]));
}

double round6(double v) { return std::round(v * 1e6) / 1e6; }

// Ratios, shares and the order, once every step's totals and percentiles are known.
void finish(std::vector<StepTimes>& steps) {
  double total = 0;
  double medians = 0;
  for (const auto& s : steps) {
    total += s.sum_ms;
    medians += s.median;
  }
  for (auto& s : steps) {
    const auto n = static_cast<double>(s.count);
    s.avg = round3(s.sum_ms / n);
    s.failure_ratio = round6(static_cast<double>(s.failed) / n);
    s.mean_attempts = round3(static_cast<double>(s.attempts) / n);
    if (total > 0) s.share = round6(s.sum_ms / total);
    if (medians > 0) s.median_share = round6(s.median / medians);
  }
  std::sort(steps.begin(), steps.end(), [](const StepTimes& a, const StepTimes& b) {
    if (a.sum_ms != b.sum_ms) return a.sum_ms > b.sum_ms;  // the share's order, unrounded
    return a.step_id < b.step_id;
  });
}

}  // namespace

StepTimesQuery::StepTimesQuery(pqxx::transaction_base& tx, const StatisticsParams& params,
                               StatisticsQueryLimits limits)
    : tx_(tx), params_(params), limits_(limits) {}

std::vector<StepTimes> StepTimesQuery::steps(const ResolvedRange& range) {
  // No rollups: the rows are the cheapest answer, so only exact=false asks for the sketch.
  auto out = params_.exact.value_or(true) ? exact_steps(range) : sketch_steps(range);
  finish(out);
  return out;
}

std::vector<StepTimes> StepTimesQuery::exact_steps(const ResolvedRange& range) {
  method_ = StatisticsMethod::exact;
  const auto statuses = statuses_literal(params_);
  static const std::string kSql[2] = {exact_sql(false), exact_sql(true)};
  statement_ = statuses ? "statistics_steps_exact_1" : "statistics_steps_exact_0";
  if (limits_.deadline) limits_.deadline->limit(tx_);
  auto result = tx_.exec_prepared(
      prepared(tx_, statement_, kSql[statuses ? 1 : 0]), params_.workflow_ids.front(),
      c_str(statuses), format_rfc3339_utc(range.start_us), format_rfc3339_utc(range.end_us));
  std::vector<StepTimes> out;
  for (const auto& row : result) {
    StepTimes s;
    add_totals(s, row);
    const auto p = detail::parse_float_array(std::string_view(row[6].c_str(), row[6].size()));
    if (p.size() == 3) {
      s.median = round3(p[0]);
      s.p95 = round3(p[1]);
      s.p99 = round3(p[2]);
    }
    out.push_back(std::move(s));
  }
  return out;
}

std::vector<StepTimes> StepTimesQuery::sketch_steps(const ResolvedRange& range) {
  method_ = StatisticsMethod::sketch;
  const auto statuses = statuses_literal(params_);
  static const std::string kSql[2] = {sketch_sql(false), sketch_sql(true)};
  statement_ = statuses ? "statistics_steps_sketch_1" : "statistics_steps_sketch_0";
  if (limits_.deadline) limits_.deadline->limit(tx_);
  auto result = tx_.exec_prepared(
      prepared(tx_, statement_, kSql[statuses ? 1 : 0]), params_.workflow_ids.front(),
      c_str(statuses), format_rfc3339_utc(range.start_us), format_rfc3339_utc(range.end_us),
      std::to_string(limits_.max_rollup_rows + 1));
  if (result.size() > limits_.max_rollup_rows) {
    throw StatisticsTooMuchData("more than " + std::to_string(limits_.max_rollup_rows) +
                                " sketch bucket rows");
  }
  struct Step {
    StepTimes times;
    ExecutionTimeSketch sketch;
    std::int64_t min = std::numeric_limits<std::int64_t>::max();
    std::int64_t max = std::numeric_limits<std::int64_t>::min();
    std::pair<std::int64_t, std::string> latest{std::numeric_limits<std::int64_t>::min(), ""};
  };
  std::map<std::string, Step> by_step;
  for (const auto& row : result) {
    auto& step = by_step[row[0].c_str()];
    add_totals(step.times, row);
    // The type of the latest row over every bucket, as the exact statement picks it.
    std::pair<std::int64_t, std::string> latest{as_int64(row[10]), row[1].c_str()};
    if (latest > step.latest) step.latest = std::move(latest);
    step.times.step_type = step.latest.second;
    step.min = std::min(step.min, as_int64(row[6]));
    step.max = std::max(step.max, as_int64(row[7]));
    step.sketch.add_zeros(static_cast<std::uint64_t>(as_int64(row[8])));
    step.sketch.add_pg_text(std::string_view(row[9].c_str(), row[9].size()));
  }
  std::vector<StepTimes> out;
  for (auto& entry : by_step) {
    auto& step = entry.second;  // a plain reference: lambdas may not capture bindings (C++17)
    // Clamped to the exact min and max, which only moves the answer closer.
    auto at = [&](double f) {
      return round3(std::clamp(step.sketch.percentile_cont(f), static_cast<double>(step.min),
                               static_cast<double>(step.max)));
    };
    step.times.median = at(0.5);
    step.times.p95 = at(0.95);
    step.times.p99 = at(0.99);
    out.push_back(std::move(step.times));
  }
  return out;
}

}  // namespace meshhook::bridge
