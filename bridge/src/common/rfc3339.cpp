#include "meshhook/bridge/common/rfc3339.h"

#include <cstdio>

namespace meshhook::bridge {
namespace {

bool is_digit(char c) noexcept { return c >= '0' && c <= '9'; }

// Reads exactly n digits at text[pos].
bool digits(std::string_view text, std::size_t pos, std::size_t n, int& out) noexcept {
  if (pos + n > text.size()) return false;
  int v = 0;
  for (std::size_t i = 0; i < n; ++i) {
    if (!is_digit(text[pos + i])) return false;
    v = v * 10 + (text[pos + i] - '0');
  }
  out = v;
  return true;
}

bool is_leap(int y) noexcept { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) noexcept {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && is_leap(y) ? 29 : kDays[m - 1];
}

enum class Source { run_event, query_string };

std::optional<std::int64_t> parse(std::string_view t, Source source) noexcept {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+hh:mm|-hh:mm)
  int year, month, day, hour, minute, second;
  if (!digits(t, 0, 4, year) || t.size() < 20 || t[4] != '-' || !digits(t, 5, 2, month) ||
      t[7] != '-' || !digits(t, 8, 2, day) || (t[10] != 'T' && t[10] != 't' && t[10] != ' ') ||
      !digits(t, 11, 2, hour) || t[13] != ':' || !digits(t, 14, 2, minute) || t[16] != ':' ||
      !digits(t, 17, 2, second)) {
    return std::nullopt;
  }
  if (month < 1 || month > 12 || day < 1 || day > days_in_month(year, month) || hour > 23 ||
      minute > 59 || second > 60) {
    return std::nullopt;
  }
  if (source == Source::query_string && year < 1) return std::nullopt;
  std::size_t pos = 19;
  std::int64_t micros = 0;
  if (pos < t.size() && t[pos] == '.') {
    ++pos;
    std::size_t n = 0;
    std::int64_t scale = 100000;
    while (pos < t.size() && is_digit(t[pos])) {
      if (n < 6) micros += (t[pos] - '0') * scale;
      scale /= 10;
      ++n;
      ++pos;
    }
    if (n == 0 || n > 9) return std::nullopt;
  }
  if (pos >= t.size()) return std::nullopt;  // the offset is mandatory
  std::int64_t offset_s = 0;
  const bool sign =
      t[pos] == '+' || t[pos] == '-' || (source == Source::query_string && t[pos] == ' ');
  if (t[pos] == 'Z' || t[pos] == 'z') {
    ++pos;
  } else if (sign) {
    int oh, om;
    if (!digits(t, pos + 1, 2, oh) || pos + 3 >= t.size() || t[pos + 3] != ':' ||
        !digits(t, pos + 4, 2, om) || oh > 23 || om > 59) {
      return std::nullopt;
    }
    offset_s = (oh * 3600 + om * 60) * (t[pos] == '-' ? -1 : 1);
    pos += 6;
  } else {
    return std::nullopt;
  }
  if (pos != t.size()) return std::nullopt;
  if (second == 60) second = 59;  // a leap second counts as the last second of its minute
  const std::int64_t days =
      days_from_civil(year, static_cast<unsigned>(month), static_cast<unsigned>(day));
  const std::int64_t secs = days * 86400 + hour * 3600 + minute * 60 + second - offset_s;
  return secs * 1000000 + micros;
}

std::string format(std::int64_t us, bool always_fraction) {
  const std::int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
  const std::int64_t micros = us - secs * 1000000;
  const std::int64_t days = secs >= 0 ? secs / 86400 : -((-secs + 86399) / 86400);
  const std::int64_t rem = secs - days * 86400;
  const CivilDate c = civil_from_days(days);
  char buf[64];
  int n = std::snprintf(buf, sizeof buf, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(c.year), c.month, c.day,
                        static_cast<long long>(rem / 3600), static_cast<long long>(rem % 3600 / 60),
                        static_cast<long long>(rem % 60));
  std::string out(buf, static_cast<std::size_t>(n));
  if (always_fraction || micros != 0) {
    std::snprintf(buf, sizeof buf, ".%06lld", static_cast<long long>(micros));
    out += buf;
  }
  out += 'Z';
  return out;
}

}  // namespace

std::optional<std::int64_t> parse_rfc3339_us(std::string_view text) noexcept {
  return parse(text, Source::run_event);
}

std::optional<std::int64_t> parse_rfc3339(std::string_view text) noexcept {
  return parse(text, Source::query_string);
}

std::string format_rfc3339_us(std::int64_t us) { return format(us, true); }

std::string format_rfc3339_utc(std::int64_t us) { return format(us, false); }

bool is_calendar_date(std::string_view s) noexcept {
  int y, m, d;
  if (s.size() != 10 || !digits(s, 0, 4, y) || s[4] != '-' || !digits(s, 5, 2, m) || s[7] != '-' ||
      !digits(s, 8, 2, d)) {
    return false;
  }
  return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) noexcept {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

CivilDate civil_from_days(std::int64_t z) noexcept {
  z += 719468;
  const std::int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const auto doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const std::int64_t y = static_cast<std::int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  const unsigned d = doy - (153 * mp + 2) / 5 + 1;
  const unsigned m = mp < 10 ? mp + 3 : mp - 9;
  return {y + (m <= 2), m, d};
}

}  // namespace meshhook::bridge
