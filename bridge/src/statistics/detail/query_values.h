#pragma once
// What the statistics queries share: reading result fields without locale or exceptions,
// parameters, bucket arithmetic and rounding answers. Private to bridge/statistics.

#include <charconv>
#include <cmath>
#include <cstdint>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::bridge::detail {

inline std::int64_t as_int64(const pqxx::field& f) {
  std::int64_t v = 0;
  const char* s = f.c_str();
  std::from_chars(s, s + f.size(), v);
  return v;
}

inline double as_double(const pqxx::field& f) {
  double v = 0;
  const char* s = f.c_str();
  std::from_chars(s, s + f.size(), v);
  return v;
}

/// A float8[] in Postgres's text form ("{1.5,2}") as numbers.
inline std::vector<double> parse_float_array(std::string_view text) {
  std::vector<double> out;
  const char* p = text.data();
  const char* end = p + text.size();
  while (p < end) {
    if (*p == '{' || *p == '}' || *p == ',') {
      ++p;
      continue;
    }
    double v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc{} || next == p) break;
    out.push_back(v);
    p = next;
  }
  return out;
}

inline double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

/// A nullable statement parameter.
inline const char* c_str(const std::optional<std::string>& s) { return s ? s->c_str() : nullptr; }

/// A Postgres array literal of values that were validated (uuids, statuses) or are numbers;
/// none: null (no filter).
inline std::optional<std::string> array_literal(const std::vector<std::string>& items) {
  if (items.empty()) return std::nullopt;
  std::string out = "{";
  for (std::size_t i = 0; i < items.size(); ++i) {
    if (i) out += ',';
    out += items[i];
  }
  return out + "}";
}

// The rollups' UTC buckets, in Unix microseconds; weeks start on Monday (1970-01-05 was one).
inline constexpr std::int64_t kHourUs = 3600LL * 1000000;
inline constexpr std::int64_t kDayUs = 24 * kHourUs;
inline constexpr std::int64_t kWeekUs = 7 * kDayUs;
inline constexpr std::int64_t kMondayUs = 4 * kDayUs;

/// t rounded down (up) to a multiple of unit, also for times before 1970.
inline std::int64_t floor_to(std::int64_t t, std::int64_t unit) {
  std::int64_t q = t / unit;
  if (t % unit != 0 && t < 0) --q;
  return q * unit;
}
inline std::int64_t ceil_to(std::int64_t t, std::int64_t unit) {
  const std::int64_t f = floor_to(t, unit);
  return f == t ? t : f + unit;
}

/// The column of a sketch bucket row: "{{index,count}}" for the bucket of a positive value,
/// "{}" for zeros (counted apart), as ExecutionTimeSketch::add_pg_text reads it. `index` is
/// meshhook_stats_sketch_index of the value, the same buckets the rollups keep.
inline std::string sketch_bucket_sql(const std::string& index, const std::string& count) {
  return "case when " + index + " is null then '{}' else '{{' || " + index + " || ',' || " + count +
         " || '}}' end";
}

}  // namespace meshhook::bridge::detail
