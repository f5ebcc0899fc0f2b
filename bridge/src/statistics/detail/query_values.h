#pragma once
// What the statistics queries share: reading result fields without locale or exceptions,
// registering prepared statements, and rounding answers. Private to bridge/statistics.

#include <charconv>
#include <cmath>
#include <cstdint>
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

/// Registers the statement on this connection (a no-op once it is; Postgres prepares it on
/// first use) and returns the name to execute.
inline std::string prepared(pqxx::transaction_base& tx, const std::string& name,
                            const std::string& text) {
  tx.conn().prepare(name, text);
  return name;
}

inline double round3(double v) { return std::round(v * 1000.0) / 1000.0; }

/// The column of a sketch bucket row: "{{index,count}}" for the bucket of a positive value,
/// "{}" for zeros (counted apart), as ExecutionTimeSketch::add_pg_text reads it. `index` is
/// meshhook_stats_sketch_index of the value, the same buckets the rollups keep.
inline std::string sketch_bucket_sql(const std::string& index, const std::string& count) {
  return "case when " + index + " is null then '{}' else '{{' || " + index + " || ',' || " + count +
         " || '}}' end";
}

}  // namespace meshhook::bridge::detail
