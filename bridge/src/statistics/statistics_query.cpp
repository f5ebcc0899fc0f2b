#include "meshhook/bridge/statistics/statistics_query.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cmath>
#include <limits>
#include <map>
#include <pqxx/pqxx>
#include <tuple>

#include "detail/caller_statement.h"
#include "detail/query_values.h"
#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/statistics/execution_time_sketch.h"

namespace meshhook::bridge {
namespace {

using detail::array_literal;
using detail::c_str;
using detail::ceil_to;
using detail::floor_to;
using detail::kDayUs;
using detail::kHourUs;
using detail::kMondayUs;
using detail::kWeekUs;

std::string number(double v) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, v);
  return ec == std::errc{} ? std::string(buffer, end) : std::to_string(v);
}

// The date_trunc unit of a time grouping (its parameter value is Postgres's unit name).
std::optional<std::string> trunc_unit(GroupBy g) {
  if (g == GroupBy::hour || g == GroupBy::day || g == GroupBy::week) {
    return std::string(to_string(g));
  }
  return std::nullopt;
}

bool is_time_grouping(GroupBy g) { return trunc_unit(g).has_value(); }

bool is_utc_name(const std::string& tz) {
  static constexpr std::array<std::string_view, 18> kUtc = {
      "UTC",       "Etc/UTC",   "Etc/UCT", "UCT",     "Etc/Universal", "Universal",
      "Etc/Zulu",  "Zulu",      "GMT",     "Etc/GMT", "GMT0",          "Etc/GMT0",
      "Etc/GMT+0", "Etc/GMT-0", "GMT+0",   "GMT-0",   "Greenwich",     "Etc/Greenwich"};
  return std::find(kUtc.begin(), kUtc.end(), tz) != kUtc.end();
}

using detail::as_double;
using detail::as_int64;
using detail::parse_float_array;
using detail::round3;
using detail::run_statement;

// 0, 1, 2, 5, 10, 20, 50, ... 5e10, 1e11 (ms): readable log-spaced chart edges.
const std::vector<std::int64_t>& histogram_edges() {
  static const std::vector<std::int64_t> edges = [] {
    std::vector<std::int64_t> e{0};
    for (std::int64_t decade = 1; decade <= 10'000'000'000LL; decade *= 10) {
      e.push_back(decade);
      e.push_back(2 * decade);
      e.push_back(5 * decade);
    }
    e.push_back(100'000'000'000LL);
    return e;
  }();
  return edges;
}

std::string edges_literal() {
  std::string out = "{";
  for (auto e : histogram_edges()) {
    if (out.size() > 1) out += ',';
    out += std::to_string(e);
  }
  return out + "}";
}

// Every statement comes in four shapes, by which filters the request has: $1 workflow ids
// (null: all the caller may see), $2 statuses (null: every status). One SQL text per shape,
// rather than "$1 is null or ...", lets one prepared statement's generic plan use the index
// for every request of that shape, so each connection plans it once. An absent filter's
// parameter is still referenced ("$1 is null", true) so that its type is known.
// The rollup statements have one more: $2 null and no grouping by status reads the hourly,
// daily and weekly levels with the statuses merged (migration 0012), a quarter of the rows,
// and then whole weeks in the range add the weekly level's branches. Every branch costs its
// executor start and its row level security check (a function call) even when it reads
// nothing, so a range without a whole week does without them.
enum Shape : unsigned {
  kAll = 0,
  kWorkflows = 1,
  kStatuses = 2,
  kStatusesMerged = 4,
  kWeeks = 8,
  kShapes = 16
};

std::string row_filter(unsigned shape) {
  return std::string(shape & kWorkflows ? "workflow_id = any($1::uuid[])" : "$1::uuid[] is null") +
         " and " + (shape & kStatuses ? "status = any($2::text[])" : "$2::text[] is null");
}

// A statement in its shapes: make(shape) builds the text; name() is the prepared name.
struct ShapedStatement {
  std::string name;
  std::array<std::string, kShapes> text;

  template <typename Make>
  ShapedStatement(std::string n, Make make) : name(std::move(n)) {
    for (unsigned shape = 0; shape < kShapes; ++shape) text[shape] = make(shape);
  }
  std::string prepared_name(unsigned shape) const { return name + "_" + std::to_string(shape); }
};

std::string resolve_sql() {
  const std::string sql = R"sql(
with bounds as (
  select coalesce(timestamptz 'epoch' + $3::bigint * interval '1 microsecond',
                  ($4::date)::timestamp at time zone $5::text,
                  now()) as e
), resolved as (
  select coalesce(timestamptz 'epoch' + $1::bigint * interval '1 microsecond',
                  ($2::date)::timestamp at time zone $5::text,
                  -- Days in tz, not in the session's zone: across a DST change a day is
                  -- 23 or 25 hours.
                  ((e at time zone $5::text) - $6::int * interval '1 day') at time zone $5::text)
         as s, e
  from bounds
)
select (extract(epoch from s) * 1000000)::bigint,
       (extract(epoch from e) * 1000000)::bigint,
       extract(epoch from (s at time zone $5::text) - (s at time zone 'UTC'))::bigint,
       extract(epoch from (e at time zone $5::text) - (e at time zone 'UTC'))::bigint
from resolved)sql";
  return sql;
}

// The bucket of a timestamp column in tz: unit (null: no time grouping) and tz parameters.
std::string time_bucket_of(const char* column, const char* unit, const char* tz) {
  return std::string("case when ") + unit +
         "::text is null then null else (extract(epoch from date_trunc(" + unit + "::text, " +
         column + ", " + tz + "::text)) * 1000000)::bigint end";
}
// $9 unit, $10 tz.
std::string time_bucket(const char* column) { return time_bucket_of(column, "$9", "$10"); }

// Pieces of the range [$3, $4): daily rollups for [$7, $8), hourly for [$5, $7) and
// [$8, $6), rows for [$3, $5) and [$6, $4), and the deltas not yet compacted for every hour
// of [$5, $6). One statement, so one snapshot: a delta is either still pending or already in
// the compacted rollups, never both. Every branch is one index range. With the statuses merged
// the hours, days and weeks come from the levels of every status (status null). The last
// column is the days a row stands for in statistics.max_rollup_rows: a weekly row counts as its
// seven, so that the weekly level makes a request faster, never decides whether it is answered.
std::string rollup_branch(unsigned shape, const char* table, const char* from, const char* to,
                          const char* sketch = "sketch_text", const char* status = "status",
                          const char* days = "1") {
  return std::string("select workflow_id::text, ") + status + ", " + time_bucket("bucket_start") +
         ", run_count, sum_ms, min_ms, max_ms, zero_count, " + sketch + ", " + days +
         " as days from " + table + " where " + row_filter(shape) + " and bucket_start >= " + from +
         "::timestamptz and bucket_start < " + to + "::timestamptz";
}
// The runs of a request's filters and range [from, to): the stored rows, and the captured
// runs the compactor has not moved into execution_time_statistics yet (migration 0013). Those
// are few and unindexed, so they are read whole; a run captured twice counts its earliest
// finish, and one already stored is not counted again, as the move decides. One statement, one
// snapshot: a move deletes and inserts in one transaction, so a run is in exactly one place.
std::string captured_runs(unsigned shape, const char* from, const char* to) {
  return "select workflow_id, status, finished_at, execution_time_ms from ("
         "select distinct on (run_id) run_id, workflow_id, status, finished_at,"
         " meshhook_stats_elapsed_ms(started_at, finished_at) as execution_time_ms"
         " from execution_time_captured_runs order by run_id, finished_at, status) as c"
         " where " +
         row_filter(shape) + " and finished_at >= " + from + "::timestamptz and finished_at < " +
         to +
         "::timestamptz and not exists (select 1 from execution_time_statistics s"
         " where s.run_id = c.run_id)";
}
std::string runs_of(unsigned shape, const char* from, const char* to) {
  return "(select workflow_id, status, finished_at, execution_time_ms"
         " from execution_time_statistics where " +
         row_filter(shape) + " and finished_at >= " + from + "::timestamptz and finished_at < " +
         to + "::timestamptz union all " + captured_runs(shape, from, to) + ") as runs";
}
std::string row_branch(unsigned shape, const char* from, const char* to) {
  return "select workflow_id::text, status, " + time_bucket("finished_at") +
         ", 1, execution_time_ms, execution_time_ms, execution_time_ms, 0, null, 1 as days"
         " from execution_time_statistics where " +
         row_filter(shape) + " and finished_at >= " + from + "::timestamptz and finished_at < " +
         to + "::timestamptz";
}
// Captured runs not moved yet are in no rollup and no delta: they count as rows, wherever in
// the range they fall.
std::string captured_branch(unsigned shape, const char* from, const char* to) {
  return "select workflow_id::text, status, " + time_bucket("finished_at") +
         ", 1, execution_time_ms, execution_time_ms, execution_time_ms, 0, null, 1 as days from (" +
         captured_runs(shape, from, to) + ") as captured";
}
// $11: at most this many rows (one more than a request may read, to tell it went over).
// w0, w1: whole UTC weeks inside the days, read from the weekly level when the statuses are
// merged (days [$7, w0) and [w1, $8) around them); w0 = w1 when no week is read.
std::string pieces_union(unsigned shape, const char* w0, const char* w1) {
  // The compacted levels keep each sketch's text beside it (migration 0018): printing the
  // int4[] was a quarter of Postgres's time in a request for a tenant's workflows over a month.
  // The pending deltas are few and printed as they are read.
  const char* sketch = "sketch_text";
  const bool merged = shape & kStatusesMerged;
  const char* status = merged ? "null::text" : "status";
  const char* hourly =
      merged ? "execution_time_rollups_hourly_all_compacted" : "execution_time_rollups_compacted";
  std::string days;
  if (merged && (shape & kWeeks)) {
    days = rollup_branch(shape, "execution_time_rollups_daily_all_compacted", "$7", w0, sketch,
                         status) +
           " union all " +
           rollup_branch(shape, "execution_time_rollups_weekly_all_compacted", w0, w1, sketch,
                         status, "7") +
           " union all " +
           rollup_branch(shape, "execution_time_rollups_daily_all_compacted", w1, "$8", sketch,
                         status);
  } else {
    // The week bounds are referenced (always true) so that their types are known.
    days = rollup_branch(shape,
                         merged ? "execution_time_rollups_daily_all_compacted"
                                : "execution_time_rollups_daily_compacted",
                         "$7", "$8", sketch, status) +
           " and " + w0 + "::timestamptz <= " + w1 + "::timestamptz";
  }
  return "select * from (" + days + " union all " +
         rollup_branch(shape, hourly, "$5", "$7", sketch, status) + " union all " +
         rollup_branch(shape, hourly, "$8", "$6", sketch, status) + " union all " +
         rollup_branch(shape, "execution_time_rollup_deltas", "$5", "$6", "sketch::text") +
         " union all " + row_branch(shape, "$3", "$5") + " union all " +
         row_branch(shape, "$6", "$4") + " union all " + captured_branch(shape, "$3", "$4") +
         ") as pieces limit $11::bigint";
}
// $12, $13: the weeks.
const ShapedStatement kPieces("statistics_sketch_pieces",
                              [](unsigned shape) { return pieces_union(shape, "$12", "$13"); });

// Where a measure's rows are: the table and the column of milliseconds. Every measure has
// rollups (queue waits since migration 0014).
struct MeasureSource {
  const char* table;
  const char* value;
  bool captured = false;  // captured runs not moved yet count too (execution times only)
};
MeasureSource source_of(Measure m) {
  switch (m) {
    case Measure::queue_wait:
      return {"queue_time_statistics", "queue_wait_ms"};
    case Measure::start_wait:
      return {"queue_time_statistics", "start_wait_ms"};
    case Measure::step_duration:
      return {"step_time_statistics", "duration_ms"};
    case Measure::execution_time:
      break;
  }
  return {"execution_time_statistics", "execution_time_ms", true};
}
// Without `exact`, execution times answer small ranges from the rows and large ones from the
// rollups; queue-times is documented to answer from the rows unless exact=false.

// A measure's rows for a request's filters and range [$3, $4), as a from-item with the
// columns workflow_id, status, finished_at and m.value. Execution times include the captured
// runs the compactor has not moved yet (runs_of).
std::string rows_of(unsigned shape, MeasureSource m) {
  if (m.captured) return runs_of(shape, "$3", "$4");
  return std::string("(select workflow_id, status, finished_at, ") + m.value + " from " + m.table +
         " where " + row_filter(shape) +
         " and finished_at >= $3::timestamptz and finished_at < $4::timestamptz) as runs";
}

// The exact aggregates of the rows: group key columns (workflow, status, bucket), count, sum,
// min, max, percentiles. $U unit, $Z tz, $G group_by, $F fractions.
std::string exact_select(unsigned shape, MeasureSource m, const std::string& u,
                         const std::string& z, const std::string& g, const std::string& f,
                         const std::string& before_percentiles = "") {
  return "case when " + g + "::text = 'workflow' then workflow_id::text end," + " case when " + g +
         "::text = 'status' then status end," + " case when " + u +
         "::text is null then null else (extract(epoch from date_trunc(" + u +
         "::text, finished_at, " + z + "::text)) * 1000000)::bigint end, count(*), sum(" + m.value +
         "), min(" + m.value + "), max(" + m.value + "), " + before_percentiles +
         "percentile_cont(" + f + "::float8[]) within group (order by " + m.value + ") from " +
         rows_of(shape, m) + " where true";  // callers append conditions
}

// Pieces and rows in one statement, one snapshot: when the pieces count at most $12 runs (and
// stand for at most $13 rollup rows) the exact answer from the rows ('e' rows), else the pieces
// ('p' rows). The condition is a one-time filter: the branch not taken reads nothing. $14 group_by,
// $15 fractions, $16 and $17 the weeks; the rest as kPieces.
const ShapedStatement kAuto("statistics_auto", [](unsigned shape) {
  return "with pieces as materialized (" + pieces_union(shape, "$16", "$17") +
         "), total as (select coalesce(sum(run_count), 0) <= $12::bigint and "
         "coalesce(sum(days), 0) <= $13::bigint as exact from pieces)"
         " select 'p'::text, *, null::float8[] from pieces where not (select exact from total)"
         " union all select 'e'::text, " +
         exact_select(shape, source_of(Measure::execution_time), "$9", "$10", "$14", "$15",
                      "null::bigint, null::text, null::int, ") +
         " and (select exact from total) group by 2, 3, 4";
});

// Exact: percentile_cont over the rows. $5 unit, $6 tz, $7 group_by, $8 fractions.
std::string exact_sql(unsigned shape, MeasureSource m) {
  return "select " + exact_select(shape, m, "$5", "$6", "$7", "$8") + " group by 1, 2, 3";
}

std::string exact_histogram_sql(unsigned shape, MeasureSource m) {
  return std::string("select width_bucket(") + m.value + ", $5::bigint[]), count(*) from " +
         rows_of(shape, m) + " group by 1";
}

// A measure's statements, each in its four shapes and with its own prepared names.
struct MeasureStatements {
  ShapedStatement exact, exact_histogram;
  explicit MeasureStatements(Measure measure)
      : exact("statistics_exact_" + std::string(to_string(measure)),
              [&](unsigned shape) { return exact_sql(shape, source_of(measure)); }),
        exact_histogram(
            "statistics_exact_histogram_" + std::string(to_string(measure)),
            [&](unsigned shape) { return exact_histogram_sql(shape, source_of(measure)); }) {}
};
const MeasureStatements& statements_of(Measure m) {
  static const std::array<MeasureStatements, 3> kStatements = {
      MeasureStatements(Measure::execution_time), MeasureStatements(Measure::queue_wait),
      MeasureStatements(Measure::start_wait)};
  switch (m) {
    case Measure::queue_wait:
      return kStatements[1];
    case Measure::start_wait:
      return kStatements[2];
    default:
      return kStatements[0];
  }
}

// Queue waits and start waits (migration 0014): the pieces of kPieces, in its columns and
// parameters, from queue_step_rollups_compacted (its hour, day and week levels), the pending
// deltas and the rows of queue_time_statistics at the edges. Every level keeps the run's
// status, so one text serves every filter and grouping; the weekly branch reads nothing when
// $12 = $13.
std::string queue_pieces_sql(unsigned shape, Measure measure) {
  const auto m = source_of(measure);
  const std::string where =
      " where " + row_filter(shape) + " and measure = '" + std::string(to_string(measure)) + "'";
  const std::string totals = ", run_count, sum_ms, min_ms, max_ms, zero_count, sketch::text, ";
  auto level = [&](const char* name, const char* from, const char* to, const char* days = "1") {
    return "select workflow_id::text, status, " + time_bucket("bucket_start") + totals + days +
           " as days from queue_step_rollups_compacted" + where + " and level = '" + name +
           "' and bucket_start >= " + from + "::timestamptz and bucket_start < " + to +
           "::timestamptz";
  };
  const std::string deltas =
      "select workflow_id::text, status, " + time_bucket("bucket_start") + totals +
      "1 from queue_step_rollup_deltas" + where +
      " and bucket_start >= $5::timestamptz and bucket_start < $6::timestamptz";
  auto rows = [&](const char* from, const char* to) {
    return "select workflow_id::text, status, " + time_bucket("finished_at") + ", 1, " + m.value +
           ", " + m.value + ", " + m.value + ", 0, null, 1 from " + m.table + " where " +
           row_filter(shape) + " and finished_at >= " + from + "::timestamptz and finished_at < " +
           to + "::timestamptz";
  };
  return "select * from (" + level("day", "$7", "$12") + " union all " +
         level("week", "$12", "$13", "7") + " union all " + level("day", "$13", "$8") +
         " union all " + level("hour", "$5", "$7") + " union all " + level("hour", "$8", "$6") +
         " union all " + deltas + " union all " + rows("$3", "$5") + " union all " +
         rows("$6", "$4") + ") as pieces limit $11::bigint";
}
const ShapedStatement& queue_pieces(Measure m) {
  static const ShapedStatement kQueueWait("statistics_queue_wait_pieces", [](unsigned shape) {
    return queue_pieces_sql(shape, Measure::queue_wait);
  });
  static const ShapedStatement kStartWait("statistics_start_wait_pieces", [](unsigned shape) {
    return queue_pieces_sql(shape, Measure::start_wait);
  });
  return m == Measure::start_wait ? kStartWait : kQueueWait;
}

// The filters of a request as statement parameters, and the shape they make.
struct Filters {
  std::optional<std::string> workflows;
  std::optional<std::string> statuses;
  unsigned shape = kAll;
};
Filters filters_of(const StatisticsParams& p) {
  Filters f{array_literal(p.workflow_ids),
            all_statuses(p) ? std::nullopt : array_literal(p.statuses)};
  f.shape = (f.workflows ? kWorkflows : 0u) | (f.statuses ? kStatuses : 0u);
  return f;
}

// The shape of a rollup statement: the statuses merged when every status is asked for and
// none is a group of its own, and then the weekly level when the range holds a whole week.
unsigned rollup_shape(const Filters& f, GroupBy g, std::int64_t w0, std::int64_t w1) {
  if ((f.shape & kStatuses) || g == GroupBy::status) return f.shape;
  return f.shape | kStatusesMerged | (w0 < w1 ? kWeeks : 0u);
}

// Runs a statement in one of its shapes (detail::run_statement: as the caller, if any).
template <typename... Args>
pqxx::result run(pqxx::transaction_base& tx, const StatisticsQueryLimits& limits,
                 const ShapedStatement& statement, unsigned shape, const Args&... args) {
  return run_statement(tx, limits, statement.prepared_name(shape), statement.text[shape], args...);
}

}  // namespace

struct StatisticsQuery::Accumulated {
  std::optional<std::string> workflow_id;
  std::optional<std::string> status;
  std::optional<std::int64_t> bucket_start_us;
  std::uint64_t count = 0;
  double sum = 0;  // numeric in the rollups: no overflow however many runs are summed
  std::int64_t min = std::numeric_limits<std::int64_t>::max();
  std::int64_t max = std::numeric_limits<std::int64_t>::min();
  ExecutionTimeSketch sketch;
};

StatisticsQuery::StatisticsQuery(pqxx::transaction_base& tx, const StatisticsParams& params,
                                 std::uint64_t exact_max_rows, StatisticsQueryLimits limits)
    : tx_(tx), params_(params), exact_max_rows_(exact_max_rows), limits_(limits) {
  for (double p : params.percentiles) fractions_.push_back(p / 100.0);
  for (double f : {0.5, 0.95, 0.99}) fractions_.push_back(f);
  std::sort(fractions_.begin(), fractions_.end());
  fractions_.erase(std::unique(fractions_.begin(), fractions_.end()), fractions_.end());
}

std::optional<ResolvedRange> StatisticsQuery::resolve(std::vector<ParameterError>& errors) {
  auto instant = [](const DateBound& b) -> std::optional<std::string> {
    if (!b.instant_us) return std::nullopt;
    return std::to_string(*b.instant_us);
  };
  const auto start_us = instant(params_.start);
  const auto end_us = instant(params_.end);
  ResolvedRange r;
  try {
    if (start_us && end_us && is_utc_name(params_.tz)) {
      // Two instants in UTC: nothing to ask Postgres (RFC 3339 years fit a timestamptz).
      r.start_us = *params_.start.instant_us;
      r.end_us = *params_.end.instant_us;
      r.tz_whole_hours = true;
    } else {
      // An error here aborts the transaction; the request ends with it.
      statement_ = "statistics_resolve_range";
      static const std::string kSql = resolve_sql();
      const auto result = run_statement(
          tx_, limits_, statement_, kSql, c_str(start_us), c_str(params_.start.date), c_str(end_us),
          c_str(params_.end.date), params_.tz, StatisticsParams::kDefaultRangeDays);
      const auto row = result.at(0);
      r.start_us = as_int64(row[0]);
      r.end_us = as_int64(row[1]);
      r.tz_whole_hours = as_int64(row[2]) % 3600 == 0 && as_int64(row[3]) % 3600 == 0;
    }
  } catch (const pqxx::sql_error& e) {
    // 22023: time zone not recognized; other class 22: a date out of range in that zone.
    if (e.sqlstate() == "22023") {
      errors.push_back({"tz", "not a time zone Postgres knows"});
      return std::nullopt;
    }
    if (e.sqlstate().starts_with("22")) {
      errors.push_back({params_.start.date ? "start_date" : "end_date", "out of range"});
      return std::nullopt;
    }
    throw;
  }
  r.tz_is_utc = is_utc_name(params_.tz);
  if (r.end_us <= r.start_us) {
    errors.push_back({params_.end.given() ? "end_date" : "start_date",
                      params_.end.given() ? "must be later than start_date"
                                          : "must be earlier than now (the default end_date)"});
    return std::nullopt;
  }
  if (r.end_us - r.start_us > std::int64_t{StatisticsParams::kMaxRangeDays} * kDayUs) {
    errors.push_back({"end_date", "the range is longer than " +
                                      std::to_string(StatisticsParams::kMaxRangeDays) + " days"});
    return std::nullopt;
  }
  if (const auto buckets = bucket_count(r); buckets > limits_.max_buckets) {
    errors.push_back({"group_by", "group_by=" + std::string(to_string(params_.group_by)) +
                                      " over this range makes up to " + std::to_string(buckets) +
                                      " buckets; at most " + std::to_string(limits_.max_buckets) +
                                      " per request: shorten the range or use longer buckets"});
    return std::nullopt;
  }
  return r;
}

std::uint64_t StatisticsQuery::bucket_count(const ResolvedRange& range) const {
  std::int64_t unit = 0;
  if (params_.group_by == GroupBy::hour) unit = kHourUs;
  if (params_.group_by == GroupBy::day) unit = kDayUs;
  if (params_.group_by == GroupBy::week) unit = 7 * kDayUs;
  if (unit == 0) return 0;
  // Up to one more for a range that starts inside a bucket (and a 25-hour day).
  return static_cast<std::uint64_t>(ceil_to(range.end_us - range.start_us, unit) / unit) + 1;
}

bool StatisticsQuery::sketch_allowed(const ResolvedRange& range) const {
  // Hourly pieces nest in tz hours, days and weeks only when tz is a whole number of hours
  // from UTC; otherwise only the rows can say which bucket a run belongs to.
  return !is_time_grouping(params_.group_by) || range.tz_whole_hours;
}

// The bounds of the pieces of [start_us, end_us) and the time unit, as statement parameters.
struct StatisticsQuery::PiecesPlan {
  std::int64_t h0, h1, d0, d1, w0, w1;
  std::optional<std::string> unit;
  bool time_group;
};

StatisticsQuery::PiecesPlan StatisticsQuery::plan_pieces(const ResolvedRange& range,
                                                         std::int64_t start_us, std::int64_t end_us,
                                                         bool group) const {
  PiecesPlan p;
  p.h0 = ceil_to(start_us, kHourUs);
  p.h1 = floor_to(end_us, kHourUs);
  if (p.h0 > p.h1) p.h0 = p.h1 = start_us;  // within one hour: rows only
  p.time_group = group && is_time_grouping(params_.group_by);
  // Daily (UTC) rollups serve ungrouped sums, and UTC days and weeks; never hours.
  const bool daily = !p.time_group || (range.tz_is_utc && params_.group_by != GroupBy::hour);
  p.d0 = ceil_to(p.h0, kDayUs);
  p.d1 = floor_to(p.h1, kDayUs);
  if (!daily || p.d0 >= p.d1) p.d0 = p.d1 = p.h0;
  // Weeks (UTC, from Monday) serve sums that no time grouping cuts.
  p.w0 = ceil_to(p.d0 - kMondayUs, kWeekUs) + kMondayUs;
  p.w1 = floor_to(p.d1 - kMondayUs, kWeekUs) + kMondayUs;
  if (p.time_group || p.w0 >= p.w1) p.w0 = p.w1 = p.d0;
  p.unit = p.time_group ? trunc_unit(params_.group_by) : std::nullopt;
  return p;
}

namespace {

using PieceKey = std::tuple<std::string, std::string, std::int64_t>;

// Adds one piece row (columns from `at` on: workflow, status, bucket, count, sum, min, max,
// zeros, sketch) to the group its key falls in.
template <typename Accumulated>
void add_piece(std::map<PieceKey, Accumulated>& by_key, const pqxx::row& row, int at, GroupBy g,
               bool time_group) {
  PieceKey key;
  if (g == GroupBy::workflow) std::get<0>(key) = row[at].c_str();
  if (g == GroupBy::status) std::get<1>(key) = row[at + 1].c_str();
  if (time_group) std::get<2>(key) = as_int64(row[at + 2]);
  auto [it, inserted] = by_key.try_emplace(key);
  auto& acc = it->second;
  if (inserted) {
    if (g == GroupBy::workflow) acc.workflow_id = std::get<0>(key);
    if (g == GroupBy::status) acc.status = std::get<1>(key);
    if (time_group) acc.bucket_start_us = std::get<2>(key);
  }
  const auto n = static_cast<std::uint64_t>(as_int64(row[at + 3]));
  acc.count += n;
  acc.sum += as_double(row[at + 4]);
  acc.min = std::min(acc.min, as_int64(row[at + 5]));
  acc.max = std::max(acc.max, as_int64(row[at + 6]));
  if (row[at + 8].is_null()) {
    acc.sketch.add(as_int64(row[at + 5]), n);
  } else {
    acc.sketch.add_zeros(static_cast<std::uint64_t>(as_int64(row[at + 7])));
    acc.sketch.add_pg_text(std::string_view(row[at + 8].c_str(), row[at + 8].size()));
  }
}

// The rollup rows the pieces stand for (their last column, from `at` on: a weekly row counts
// its seven days) against statistics.max_rollup_rows.
void check_rollup_rows(const pqxx::result& pieces, int at, std::uint64_t max_rollup_rows) {
  std::uint64_t rows = 0;
  for (const auto& row : pieces) rows += static_cast<std::uint64_t>(as_int64(row[at + 9]));
  if (rows > max_rollup_rows) {
    throw StatisticsTooMuchData("more than " + std::to_string(max_rollup_rows) + " rollup rows");
  }
}

// One exact group (columns from `at` on: workflow, status, bucket, count, sum, min, max; the
// percentiles in column `percentiles`).
StatisticsGroup exact_group(const pqxx::row& row, int at, int percentiles) {
  StatisticsGroup g;
  if (!row[at].is_null()) g.workflow_id = row[at].c_str();
  if (!row[at + 1].is_null()) g.status = row[at + 1].c_str();
  if (!row[at + 2].is_null()) g.bucket_start_us = as_int64(row[at + 2]);
  g.count = static_cast<std::uint64_t>(as_int64(row[at + 3]));
  g.avg = round3(as_double(row[at + 4]) / static_cast<double>(g.count));
  g.min = static_cast<double>(as_int64(row[at + 5]));
  g.max = static_cast<double>(as_int64(row[at + 6]));
  const auto& p = row[percentiles];
  for (double v : parse_float_array(std::string_view(p.c_str(), p.size()))) {
    g.percentiles.emplace_back(round3(v));
  }
  return g;
}

void sort_groups(std::vector<StatisticsGroup>& out) {
  std::sort(out.begin(), out.end(), [](const StatisticsGroup& a, const StatisticsGroup& b) {
    return std::tie(a.workflow_id, a.status, a.bucket_start_us) <
           std::tie(b.workflow_id, b.status, b.bucket_start_us);
  });
}

}  // namespace

std::vector<StatisticsQuery::Accumulated> StatisticsQuery::sketch_pieces(const ResolvedRange& range,
                                                                         std::int64_t start_us,
                                                                         std::int64_t end_us,
                                                                         bool group) {
  const auto p = plan_pieces(range, start_us, end_us, group);
  const auto f = filters_of(params_);
  // Execution times read 0008-0013's levels (kPieces), the queue measures 0014's; both take
  // the same parameters.
  const bool runs = params_.measure == Measure::execution_time;
  const auto& statement = runs ? kPieces : queue_pieces(params_.measure);
  const unsigned shape =
      runs ? rollup_shape(f, group ? params_.group_by : GroupBy::none, p.w0, p.w1) : f.shape;
  statement_ = statement.name.c_str();
  const auto result =
      run(tx_, limits_, statement, shape, c_str(f.workflows), c_str(f.statuses),
          format_rfc3339_utc(start_us), format_rfc3339_utc(end_us), format_rfc3339_utc(p.h0),
          format_rfc3339_utc(p.h1), format_rfc3339_utc(p.d0), format_rfc3339_utc(p.d1),
          c_str(p.unit), params_.tz, std::to_string(limits_.max_rollup_rows + 1),
          format_rfc3339_utc(p.w0), format_rfc3339_utc(p.w1));
  check_rollup_rows(result, 0, limits_.max_rollup_rows);

  // Keyed by what the grouping needs: workflow, status or bucket.
  std::map<PieceKey, Accumulated> by_key;
  const auto g = group ? params_.group_by : GroupBy::none;
  for (const auto& row : result) add_piece(by_key, row, 0, g, p.time_group);
  std::vector<Accumulated> out;
  out.reserve(by_key.size());
  for (auto& [key, acc] : by_key) out.push_back(std::move(acc));
  return out;
}

std::string StatisticsQuery::fractions_literal() const {
  std::string fractions = "{";
  for (std::size_t i = 0; i < fractions_.size(); ++i) {
    if (i) fractions += ',';
    fractions += number(fractions_[i]);
  }
  return fractions + '}';
}

std::vector<StatisticsGroup> StatisticsQuery::exact_groups(std::int64_t start_us,
                                                           std::int64_t end_us) {
  const auto unit = trunc_unit(params_.group_by);
  const auto& statement = statements_of(params_.measure).exact;
  statement_ = statement.name.c_str();
  const auto f = filters_of(params_);
  auto result = run(tx_, limits_, statement, f.shape, c_str(f.workflows), c_str(f.statuses),
                    format_rfc3339_utc(start_us), format_rfc3339_utc(end_us), c_str(unit),
                    params_.tz, std::string(to_string(params_.group_by)), fractions_literal());
  std::vector<StatisticsGroup> out;
  for (const auto& row : result) {
    out.push_back(exact_group(row, 0, 7));
    out.back().percentiles.resize(fractions_.size());
  }
  sort_groups(out);
  return out;
}

std::vector<StatisticsGroup> StatisticsQuery::auto_groups(const ResolvedRange& range,
                                                          std::int64_t start_us,
                                                          std::int64_t end_us) {
  const auto p = plan_pieces(range, start_us, end_us, true);
  statement_ = kAuto.name.c_str();
  const auto f = filters_of(params_);
  auto result =
      run(tx_, limits_, kAuto, rollup_shape(f, params_.group_by, p.w0, p.w1), c_str(f.workflows),
          c_str(f.statuses), format_rfc3339_utc(start_us), format_rfc3339_utc(end_us),
          format_rfc3339_utc(p.h0), format_rfc3339_utc(p.h1), format_rfc3339_utc(p.d0),
          format_rfc3339_utc(p.d1), c_str(p.unit), params_.tz,
          std::to_string(limits_.max_rollup_rows + 1), std::to_string(exact_max_rows_),
          std::to_string(limits_.max_rollup_rows), std::string(to_string(params_.group_by)),
          fractions_literal(), format_rfc3339_utc(p.w0), format_rfc3339_utc(p.w1));
  // No rows: the pieces counted no runs, so the (empty) answer is exact.
  if (result.empty() || std::string_view(result[0][0].c_str()) == "e") {
    method_ = StatisticsMethod::exact;
    std::vector<StatisticsGroup> out;
    for (const auto& row : result) {
      out.push_back(exact_group(row, 1, 11));
      out.back().percentiles.resize(fractions_.size());
    }
    sort_groups(out);
    return out;
  }
  check_rollup_rows(result, 1, limits_.max_rollup_rows);
  method_ = StatisticsMethod::sketch;
  std::map<PieceKey, Accumulated> by_key;
  for (const auto& row : result) add_piece(by_key, row, 1, params_.group_by, p.time_group);
  std::vector<Accumulated> pieces;
  pieces.reserve(by_key.size());
  for (auto& [key, acc] : by_key) pieces.push_back(std::move(acc));
  return sketch_groups(std::move(pieces));
}

std::vector<StatisticsGroup> StatisticsQuery::sketch_groups(std::vector<Accumulated> pieces) const {
  std::vector<StatisticsGroup> out;
  for (auto& p : pieces) {
    StatisticsGroup g;
    g.workflow_id = std::move(p.workflow_id);
    g.status = std::move(p.status);
    g.bucket_start_us = p.bucket_start_us;
    g.count = p.count;
    if (p.count > 0) {
      g.avg = round3(p.sum / static_cast<double>(p.count));
      g.min = static_cast<double>(p.min);
      g.max = static_cast<double>(p.max);
      for (double f : fractions_) {
        // Clamped to the exact min and max, which only moves the answer closer.
        const double v = std::clamp(p.sketch.percentile_cont(f), *g.min, *g.max);
        g.percentiles.emplace_back(round3(v));
      }
    }
    out.push_back(std::move(g));
  }
  return out;
}

std::vector<StatisticsGroup> StatisticsQuery::groups(const ResolvedRange& range,
                                                     std::int64_t start_us, std::int64_t end_us) {
  std::vector<StatisticsGroup> out;
  const bool want_exact =
      params_.exact.value_or(false) || !sketch_allowed(range) || method_ == StatisticsMethod::exact;
  if (want_exact) {
    method_ = StatisticsMethod::exact;
    out = exact_groups(start_us, end_us);
  } else if (!method_ && !params_.exact.has_value() && params_.measure == Measure::execution_time) {
    out = auto_groups(range, start_us, end_us);
  } else if (!method_ && !params_.exact.has_value()) {
    // Queue waits: the rollups count the range's rows; few enough are answered exactly, as
    // auto_groups does for execution times in one statement.
    auto pieces = sketch_pieces(range, start_us, end_us, true);
    std::uint64_t total = 0;
    for (const auto& p : pieces) total += p.count;
    if (total <= exact_max_rows_) {
      method_ = StatisticsMethod::exact;
      out = exact_groups(start_us, end_us);
    } else {
      method_ = StatisticsMethod::sketch;
      out = sketch_groups(std::move(pieces));
    }
  } else {
    method_ = StatisticsMethod::sketch;
    out = sketch_groups(sketch_pieces(range, start_us, end_us, true));
  }
  if (params_.group_by == GroupBy::none && out.empty()) {
    StatisticsGroup empty;
    empty.percentiles.resize(fractions_.size());
    out.push_back(std::move(empty));
  }
  for (auto& g : out) g.percentiles.resize(fractions_.size());
  return out;
}

std::vector<HistogramBucket> StatisticsQuery::histogram(const ResolvedRange& range) {
  const auto& edges = histogram_edges();
  std::vector<std::uint64_t> counts(edges.size(), 0);  // counts[k]: [edges[k], edges[k+1])
  bool exact = params_.exact.value_or(false);
  std::vector<Accumulated> pieces;
  if (!exact) {
    pieces = sketch_pieces(range, range.start_us, range.end_us, false);
    std::uint64_t total = 0;
    for (const auto& p : pieces) total += p.count;
    exact = !params_.exact.has_value() && total <= exact_max_rows_;
  }
  if (exact) {
    method_ = StatisticsMethod::exact;
    const auto& statement = statements_of(params_.measure).exact_histogram;
    statement_ = statement.name.c_str();
    const auto f = filters_of(params_);
    auto result =
        run(tx_, limits_, statement, f.shape, c_str(f.workflows), c_str(f.statuses),
            format_rfc3339_utc(range.start_us), format_rfc3339_utc(range.end_us), edges_literal());
    for (const auto& row : result) {
      const auto k = as_int64(row[0]);  // 1-based; values are >= edges[0] = 0
      if (k >= 1)
        counts[static_cast<std::size_t>(k - 1)] += static_cast<std::uint64_t>(as_int64(row[1]));
    }
  } else {
    method_ = StatisticsMethod::sketch;
    for (const auto& p : pieces) {
      counts[0] += p.sketch.zeros();
      p.sketch.for_each_bucket([&](int index, std::uint64_t n) {
        const double v = ExecutionTimeSketch::value_of(index);
        auto it = std::upper_bound(edges.begin(), edges.end(), v, [](double x, std::int64_t e) {
          return x < static_cast<double>(e);
        });
        counts[static_cast<std::size_t>(std::max<std::ptrdiff_t>(0, (it - edges.begin()) - 1))] +=
            n;
      });
    }
  }
  std::vector<HistogramBucket> out;
  std::size_t first = counts.size(), last = 0;
  for (std::size_t k = 0; k < counts.size(); ++k) {
    if (counts[k] != 0) {
      first = std::min(first, k);
      last = k;
    }
  }
  for (std::size_t k = first; k <= last && first < counts.size(); ++k) {
    HistogramBucket b;
    b.lower = static_cast<double>(edges[k]);
    if (k + 1 < edges.size()) b.upper = static_cast<double>(edges[k + 1]);
    b.count = counts[k];
    out.push_back(b);
  }
  return out;
}

}  // namespace meshhook::bridge
