#pragma once
// The query parameters of GET /api/v1/statistics/execution-times (and /histogram), parsed
// and checked without a database. Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::bridge {

enum class GroupBy { none, workflow, status, hour, day, week };
std::string_view to_string(GroupBy g) noexcept;

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
  std::vector<std::string> statuses;  // never empty: default every terminal status
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

/// Parses a query string (without '?'). Unknown parameters, repeated single-valued ones,
/// bad values and overlong input are errors, each naming its parameter.
StatisticsParamsResult parse_statistics_params(std::string_view query);

/// The opaque cursor for the page that starts at offset.
std::string encode_statistics_cursor(std::uint64_t offset);

/// "50", "99.9": how a percentile is named in the response.
std::string percentile_key(double p);

}  // namespace meshhook::bridge
