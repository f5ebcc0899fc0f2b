#pragma once
// The query parameters of the statistics endpoints (execution-times and its /histogram,
// queue-times and its /histogram, step-times), parsed and checked without a database. Pure
// functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::bridge {

enum class GroupBy { none, workflow, status, hour, day, week };
std::string_view to_string(GroupBy g) noexcept;

/// Which endpoint the parameters are for; each knows its own parameters.
enum class StatisticsEndpoint { execution_times, queue_times, step_times };

/// What is measured, in milliseconds: a run's execution time, the sum of its jobs' queue waits,
/// its first job's wait (the time to start), or a step's duration.
enum class Measure { execution_time, queue_wait, start_wait, step_duration };
std::string_view to_string(Measure m) noexcept;

/// A bound of the date range as given: an instant (RFC 3339), a calendar date (midnight in
/// tz, resolved by Postgres) or absent (end: now; start: end - 7 days).
struct DateBound {
  std::optional<std::int64_t> instant_us;  // Unix microseconds
  std::optional<std::string> date;         // "YYYY-MM-DD"
  bool given() const noexcept { return instant_us.has_value() || date.has_value(); }
};

struct StatisticsParams {
  static constexpr std::size_t kMaxWorkflowIds = 100;
  static constexpr std::size_t kMaxPercentiles = 10;
  static constexpr int kMaxLimit = 1000;
  static constexpr int kDefaultRangeDays = 7;
  static constexpr int kMaxRangeDays = 400;

  std::vector<std::string> workflow_ids;  // lower-case canonical uuids; empty = all visible
  DateBound start;
  DateBound end;
  std::string tz = "UTC";
  Measure measure = Measure::execution_time;
  std::vector<std::string> statuses;  // never empty: default every terminal status (of a step:
                                      // succeeded, failed)
  std::vector<double> percentiles;    // as given (deduplicated, ascending); default 50,95,99
  GroupBy group_by = GroupBy::none;
  bool compare_previous = false;
  std::optional<bool> exact;  // unset: chosen by the size of the work
  int limit = 100;            // groups per page
  std::uint64_t offset = 0;   // from the cursor
};

struct ParameterError {
  std::string parameter;
  std::string reason;
};

struct StatisticsParamsResult {
  StatisticsParams params;
  std::vector<ParameterError> errors;  // one per bad parameter; params are valid when empty
  bool ok() const noexcept { return errors.empty(); }
};

/// Parses a query string (without '?') for endpoint. Unknown parameters (for that endpoint),
/// repeated single-valued ones, bad values and overlong input are errors, each naming its
/// parameter. queue-times adds measure (queue_wait, the default, or start_wait); step-times
/// takes exactly one workflow_id, start_date, end_date, tz, status (of the step: succeeded,
/// failed) and exact.
StatisticsParamsResult parse_statistics_params(
    std::string_view query, StatisticsEndpoint endpoint = StatisticsEndpoint::execution_times);

/// Whether every status the endpoint knows is chosen (no status filter).
bool all_statuses(const StatisticsParams& params) noexcept;

/// The opaque cursor for the page that starts at offset.
std::string encode_statistics_cursor(std::uint64_t offset);

/// "50", "99.9": how a percentile is named in the response.
std::string percentile_key(double p);

}  // namespace meshhook::bridge
