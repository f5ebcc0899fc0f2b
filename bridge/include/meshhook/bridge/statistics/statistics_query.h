#pragma once
// The SQL of the statistics endpoint. Answers from the rows (exact percentile_cont) or from
// the rollups (count, sum, min and max exact; percentiles from merged log-bucket sketches,
// within 1 %), chosen by StatisticsParams::exact and by the size of the work. Runs inside a
// transaction the caller owns (read-only, as the caller), or statement by statement as
// StatisticsQueryLimits::caller. Every value is a parameter.
// One object per request; not thread-safe.

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "meshhook/bridge/statistics/request_deadline.h"
#include "meshhook/bridge/statistics/statistics_params.h"

namespace pqxx {
class transaction_base;
}

namespace meshhook::bridge {

enum class StatisticsMethod { exact, sketch };

/// The absolute bounds of the range and what the time zone allows.
struct ResolvedRange {
  std::int64_t start_us = 0;
  std::int64_t end_us = 0;
  /// The tz offset is a whole number of hours at both ends, so UTC hours nest in tz hours,
  /// days and weeks and the hourly rollups can serve time groupings.
  bool tz_whole_hours = true;
  /// tz is UTC itself, so the daily (UTC) rollups can serve day and week groupings.
  bool tz_is_utc = true;
};

struct StatisticsGroup {
  std::optional<std::string> workflow_id;       // group_by=workflow
  std::optional<std::string> status;            // group_by=status
  std::optional<std::int64_t> bucket_start_us;  // group_by=hour|day|week (start in tz)
  std::uint64_t count = 0;
  std::optional<double> avg;
  std::optional<double> min;
  std::optional<double> max;
  /// Aligned with StatisticsQuery::fractions(): null when count is 0.
  std::vector<std::optional<double>> percentiles;
};

struct HistogramBucket {
  double lower = 0;
  std::optional<double> upper;  // null: the open last bucket
  std::uint64_t count = 0;
};

/// Who a request reads as: their claims (request.jwt.claims, read by the row level security
/// policies) and subject (request.jwt.claim.sub), under the reader role.
struct StatisticsCaller {
  std::string claims_json;
  std::string subject;
};

/// The most work one request may ask for, and its deadline.
struct StatisticsQueryLimits {
  /// Time buckets (group_by=hour, day or week) one period may have; more answer a
  /// ParameterError on group_by.
  std::uint64_t max_buckets = 2500;
  /// Rollup and edge rows one period may read on the sketch path (they are all in memory
  /// at once); more throw StatisticsTooMuchData.
  std::uint64_t max_rollup_rows = 200000;
  /// Every statement gets the time it leaves; null: no deadline.
  const RequestDeadline* deadline = nullptr;
  /// Set: every statement runs as this caller in one message of its own that first sets the
  /// caller's claims, the reader role, read-only and the deadline (for that statement's
  /// implicit transaction only), so the transaction given may be a pqxx::nontransaction and
  /// each statement is one round trip. Null: statements run in the transaction as it is.
  const StatisticsCaller* caller = nullptr;
};

/// The sketch path would read more than StatisticsQueryLimits::max_rollup_rows rows.
class StatisticsTooMuchData : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class StatisticsQuery {
 public:
  /// With exact unset, at most this many rows are answered exactly; more from the rollups.
  static constexpr std::uint64_t kDefaultExactMaxRows = 2000;

  StatisticsQuery(pqxx::transaction_base& tx, const StatisticsParams& params,
                  std::uint64_t exact_max_rows = kDefaultExactMaxRows,
                  StatisticsQueryLimits limits = {});

  /// Resolves the date range in tz. Returns errors naming start_date, end_date or tz when
  /// the range is empty, too long, or tz is unknown to Postgres, and group_by when the range
  /// has more time buckets than limits.max_buckets. Statements throw RequestTimeout or
  /// pqxx::sql_error 57014 once the deadline passes.
  /// A range of two UTC instants is resolved without a statement; dates or another tz ask
  /// Postgres (as limits.caller, if set).
  std::optional<ResolvedRange> resolve(std::vector<ParameterError>& errors);

  /// The groups of [start_us, end_us), sorted by key, every group (no paging). The first
  /// call decides the method (exact, sketch) when params.exact is unset; later calls (the
  /// previous period) keep it.
  std::vector<StatisticsGroup> groups(const ResolvedRange& range, std::int64_t start_us,
                                      std::int64_t end_us);
  /// Counts in log-spaced buckets (1-2-5 edges from 0 ms), from the first to the last
  /// non-empty bucket; empty when there are no runs. Ignores group_by.
  std::vector<HistogramBucket> histogram(const ResolvedRange& range);

  /// The percentiles computed, as fractions: the requested ones plus 0.5, 0.95 and 0.99.
  const std::vector<double>& fractions() const noexcept { return fractions_; }
  /// The method used by the calls so far (exact until a call used the rollups).
  StatisticsMethod method() const noexcept { return method_.value_or(StatisticsMethod::exact); }
  /// The name of the statement running or last run, for error logs.
  const char* statement() const noexcept { return statement_; }

 private:
  struct Accumulated;
  std::vector<StatisticsGroup> exact_groups(std::int64_t start_us, std::int64_t end_us);
  bool sketch_allowed(const ResolvedRange& range) const;
  std::uint64_t bucket_count(const ResolvedRange& range) const;
  struct PiecesPlan;
  PiecesPlan plan_pieces(const ResolvedRange& range, std::int64_t start_us, std::int64_t end_us,
                         bool group) const;
  std::vector<Accumulated> sketch_pieces(const ResolvedRange& range, std::int64_t start_us,
                                         std::int64_t end_us, bool group);
  std::vector<StatisticsGroup> sketch_groups(std::vector<Accumulated> pieces) const;
  // Rollups and rows in one statement: the exact answer when the rollups count few enough
  // runs, else the pieces (the method decided without asking twice).
  std::vector<StatisticsGroup> auto_groups(const ResolvedRange& range, std::int64_t start_us,
                                           std::int64_t end_us);
  std::string fractions_literal() const;

  pqxx::transaction_base& tx_;
  const StatisticsParams& params_;
  std::uint64_t exact_max_rows_;
  StatisticsQueryLimits limits_;
  std::vector<double> fractions_;
  std::optional<StatisticsMethod> method_;
  const char* statement_ = "";
};

}  // namespace meshhook::bridge
