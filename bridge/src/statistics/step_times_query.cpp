#include "meshhook/bridge/statistics/step_times_query.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <utility>

#include "detail/caller_statement.h"
#include "detail/query_values.h"
#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/statistics/execution_time_sketch.h"

namespace meshhook::bridge {
namespace {

using detail::array_literal;
using detail::as_double;
using detail::as_int64;
using detail::c_str;
using detail::ceil_to;
using detail::floor_to;
using detail::kDayUs;
using detail::kHourUs;
using detail::kMondayUs;
using detail::kWeekUs;
using detail::round3;
using detail::run_statement;

// $1 the workflow, $2 the step statuses (null: both); the range [$3, $4). Two shapes, so each
// prepared statement's generic plan uses the (workflow_id, finished_at) index, whose included
// columns are all a statement reads (an index-only scan once the table is vacuumed).
std::string step_filter(bool by_status, const char* from = "$3", const char* to = "$4") {
  return std::string(" from step_time_statistics where workflow_id = $1::uuid and ") +
         (by_status ? "status = any($2::text[])" : "$2::text[] is null") +
         " and finished_at >= " + from + "::timestamptz and finished_at < " + to + "::timestamptz";
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

// The pieces of one workflow's steps over [$3, $4) from the rollups (migration 0014): weekly
// rows for [$9, $10), daily for [$7, $9) and [$10, $8), hourly for [$5, $7) and [$8, $6), the
// deltas not yet compacted for every hour of [$5, $6), and the rows of the partial hours
// [$3, $5) and [$6, $4). One statement, so one snapshot: a delta is pending or folded, never
// both. Columns: step, status, count, sum, min, max, zeros, sketch (null for a row: its value is
// min), attempts, the latest finished_at (Unix microseconds) and its step type, and the days a
// row stands for in statistics.max_rollup_rows (a week counts its seven). At most $11 rows.
std::string rollup_sql(bool by_status) {
  const std::string where = std::string(" where workflow_id = $1::uuid and ") +
                            (by_status ? "status = any($2::text[])" : "$2::text[] is null") +
                            " and measure = 'step_duration'";
  const std::string totals =
      "select step_id, status, run_count, sum_ms, min_ms, max_ms, zero_count, sketch::text,"
      " attempts, (extract(epoch from latest_finished_at) * 1000000)::bigint, latest_step_type, ";
  auto level = [&](const char* name, const char* from, const char* to, const char* days = "1") {
    return totals + days + " from queue_step_rollups_compacted" + where + " and level = '" + name +
           "' and bucket_start >= " + from + "::timestamptz and bucket_start < " + to +
           "::timestamptz";
  };
  auto rows = [&](const char* from, const char* to) {
    return std::string(
               "select step_id, status, 1, duration_ms, duration_ms, duration_ms, 0, null,"
               " attempts, (extract(epoch from finished_at) * 1000000)::bigint,"
               " step_type, 1") +
           step_filter(by_status, from, to);
  };
  return "select * from (" + level("week", "$9", "$10", "7") + " union all " +
         level("day", "$7", "$9") + " union all " + level("day", "$10", "$8") + " union all " +
         level("hour", "$5", "$7") + " union all " + level("hour", "$8", "$6") + " union all " +
         totals + "1 from queue_step_rollup_deltas" + where +
         " and bucket_start >= $5::timestamptz and bucket_start < $6::timestamptz union all " +
         rows("$3", "$5") + " union all " + rows("$6", "$4") + ") as pieces limit $11::bigint";
}

// The bounds of the pieces of [start, end): whole UTC hours [h0, h1), days [d0, d1) inside
// them and weeks [w0, w1) inside those; each collapses to an empty range when there is none.
struct StepPieces {
  std::int64_t h0, h1, d0, d1, w0, w1;
};
StepPieces plan_step_pieces(std::int64_t start_us, std::int64_t end_us) {
  StepPieces p;
  p.h0 = ceil_to(start_us, kHourUs);
  p.h1 = floor_to(end_us, kHourUs);
  if (p.h0 > p.h1) p.h0 = p.h1 = start_us;  // within one hour: rows only
  p.d0 = ceil_to(p.h0, kDayUs);
  p.d1 = floor_to(p.h1, kDayUs);
  if (p.d0 >= p.d1) p.d0 = p.d1 = p.h0;
  p.w0 = ceil_to(p.d0 - kMondayUs, kWeekUs) + kMondayUs;
  p.w1 = floor_to(p.d1 - kMondayUs, kWeekUs) + kMondayUs;
  if (p.w0 >= p.w1) p.w0 = p.w1 = p.d0;
  return p;
}

std::optional<std::string> statuses_literal(const StatisticsParams& p) {
  return all_statuses(p) ? std::nullopt : array_literal(p.statuses);  // validated names
}

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
                               StatisticsQueryLimits limits, std::uint64_t exact_max_rows)
    : tx_(tx), params_(params), limits_(limits), exact_max_rows_(exact_max_rows) {}

std::vector<StepTimes> StepTimesQuery::steps(const ResolvedRange& range) {
  // As execution-times: exact=true reads the rows, exact=false the rollups, and without it
  // the rollups count the range's rows and a range of at most exact_max_rows is read exactly.
  std::vector<StepTimes> out;
  if (params_.exact.value_or(false)) {
    out = exact_steps(range);
  } else {
    out = sketch_steps(range);
    std::uint64_t total = 0;
    for (const auto& s : out) total += s.count;
    if (!params_.exact.has_value() && total <= exact_max_rows_) out = exact_steps(range);
  }
  finish(out);
  return out;
}

std::vector<StepTimes> StepTimesQuery::exact_steps(const ResolvedRange& range) {
  method_ = StatisticsMethod::exact;
  const auto statuses = statuses_literal(params_);
  static const std::string kSql[2] = {exact_sql(false), exact_sql(true)};
  statement_ = statuses ? "statistics_steps_exact_1" : "statistics_steps_exact_0";
  auto result = run_statement(tx_, limits_, statement_, kSql[statuses ? 1 : 0],
                              params_.workflow_ids.front(), c_str(statuses),
                              format_rfc3339_utc(range.start_us), format_rfc3339_utc(range.end_us));
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
  static const std::string kSql[2] = {rollup_sql(false), rollup_sql(true)};
  statement_ = statuses ? "statistics_steps_rollups_1" : "statistics_steps_rollups_0";
  const auto p = plan_step_pieces(range.start_us, range.end_us);
  auto result = run_statement(
      tx_, limits_, statement_, kSql[statuses ? 1 : 0], params_.workflow_ids.front(),
      c_str(statuses), format_rfc3339_utc(range.start_us), format_rfc3339_utc(range.end_us),
      format_rfc3339_utc(p.h0), format_rfc3339_utc(p.h1), format_rfc3339_utc(p.d0),
      format_rfc3339_utc(p.d1), format_rfc3339_utc(p.w0), format_rfc3339_utc(p.w1),
      std::to_string(limits_.max_rollup_rows + 1));
  std::uint64_t rollup_rows = 0;
  for (const auto& row : result) rollup_rows += static_cast<std::uint64_t>(as_int64(row[11]));
  if (rollup_rows > limits_.max_rollup_rows) {
    throw StatisticsTooMuchData("more than " + std::to_string(limits_.max_rollup_rows) +
                                " rollup rows");
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
    auto& t = step.times;
    const auto n = static_cast<std::uint64_t>(as_int64(row[2]));
    t.step_id = row[0].c_str();
    t.count += n;
    t.sum_ms += as_double(row[3]);
    if (std::string_view(row[1].c_str()) == "failed") t.failed += n;
    t.attempts += static_cast<std::uint64_t>(as_int64(row[8]));
    // The type of the latest row over every piece, as the exact statement picks it.
    std::pair<std::int64_t, std::string> latest{as_int64(row[9]), row[10].c_str()};
    if (latest > step.latest) step.latest = std::move(latest);
    t.step_type = step.latest.second;
    step.min = std::min(step.min, as_int64(row[4]));
    step.max = std::max(step.max, as_int64(row[5]));
    if (row[7].is_null()) {
      step.sketch.add(as_int64(row[4]), n);  // a row: its value
    } else {
      step.sketch.add_zeros(static_cast<std::uint64_t>(as_int64(row[6])));
      step.sketch.add_pg_text(std::string_view(row[7].c_str(), row[7].size()));
    }
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
