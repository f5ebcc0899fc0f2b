#pragma once
// RFC 3339 date-times and proleptic Gregorian calendar arithmetic, in Unix microseconds (UTC).
// Pure functions; thread-safe.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshhook::bridge {

/// Parses RFC 3339 date-time with a mandatory offset ("Z" or "+hh:mm"), 'T', 't' or ' ' between
/// date and time, fractional seconds up to nanoseconds (kept to microseconds), a leap second
/// read as :59. Returns Unix microseconds, or nullopt. As run events carry them.
std::optional<std::int64_t> parse_rfc3339_us(std::string_view text) noexcept;
/// The same, as a query string carries it: a space where the offset's sign belongs is read as
/// '+' (an unescaped '+' that form decoding turned into a space).
std::optional<std::int64_t> parse_rfc3339(std::string_view text) noexcept;

/// Unix microseconds as RFC 3339 UTC with six fraction digits ("2026-01-02T03:04:05.123456Z").
std::string format_rfc3339_us(std::int64_t us);
/// Unix microseconds as RFC 3339 UTC, the fraction only when non-zero ("2024-05-01T00:00:00Z").
std::string format_rfc3339_utc(std::int64_t us);

/// True for a valid calendar date "YYYY-MM-DD" (years 0001-9999).
bool is_calendar_date(std::string_view text) noexcept;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t year, unsigned month, unsigned day) noexcept;

struct CivilDate {
  std::int64_t year;
  unsigned month, day;
};
CivilDate civil_from_days(std::int64_t days_since_epoch) noexcept;

}  // namespace meshhook::bridge
