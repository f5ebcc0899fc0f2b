#include "meshhook/bridge/statistics/statistics_params.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>

namespace meshhook::bridge {
namespace {

constexpr std::size_t kMaxQueryLength = 16 * 1024;
constexpr std::size_t kMaxNameLength = 64;  // how much of an unknown name is echoed
constexpr std::array<std::string_view, 4> kStatuses = {"succeeded", "failed", "canceled",
                                                       "timeout"};
constexpr std::array<std::string_view, 10> kKnown = {
    "workflow_id", "start_date", "end_date", "tz",    "status",
    "percentiles", "group_by",   "compare",  "exact", "limit"};

// For messages: printable ASCII only, so the JSON stays valid UTF-8 and nothing odd is echoed.
std::string printable(std::string_view s, std::size_t max = kMaxNameLength) {
  std::string out;
  for (char c : s.substr(0, max)) {
    out.push_back(c >= 0x20 && c < 0x7f ? c : '?');
  }
  if (s.size() > max) out += "...";
  return out;
}

int hex_value(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// application/x-www-form-urlencoded decoding; nullopt on a bad %-escape.
std::optional<std::string> url_decode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out.push_back(' ');
    } else if (s[i] == '%') {
      if (i + 2 >= s.size()) return std::nullopt;
      const int hi = hex_value(s[i + 1]);
      const int lo = hex_value(s[i + 2]);
      if (hi < 0 || lo < 0) return std::nullopt;
      out.push_back(static_cast<char>(hi * 16 + lo));
      i += 2;
    } else {
      out.push_back(s[i]);
    }
  }
  return out;
}

std::vector<std::string_view> split_commas(std::string_view s) {
  std::vector<std::string_view> out;
  std::size_t start = 0;
  while (true) {
    auto comma = s.find(',', start);
    auto part = s.substr(start, comma == std::string_view::npos ? s.npos : comma - start);
    while (!part.empty() && part.front() == ' ') part.remove_prefix(1);
    while (!part.empty() && part.back() == ' ') part.remove_suffix(1);
    out.push_back(part);
    if (comma == std::string_view::npos) break;
    start = comma + 1;
  }
  return out;
}

std::optional<std::string> canonical_uuid(std::string_view s) {
  if (s.size() != 36) return std::nullopt;
  std::string out(s);
  for (std::size_t i = 0; i < out.size(); ++i) {
    if (i == 8 || i == 13 || i == 18 || i == 23) {
      if (out[i] != '-') return std::nullopt;
      continue;
    }
    if (hex_value(out[i]) < 0) return std::nullopt;
    out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
  }
  return out;
}

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
}

bool leap(int y) { return (y % 4 == 0 && y % 100 != 0) || y % 400 == 0; }

int days_in_month(int y, int m) {
  static constexpr int kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return m == 2 && leap(y) ? 29 : kDays[m - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
std::int64_t days_from_civil(std::int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const std::int64_t era = (y >= 0 ? y : y - 399) / 400;
  const auto yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<std::int64_t>(doe) - 719468;
}

struct Civil {
  std::int64_t y;
  unsigned m, d;
};
Civil civil_from_days(std::int64_t z) {
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

bool valid_timezone_name(std::string_view tz) {
  if (tz.empty() || tz.size() > 64 || tz.front() == '/' || tz.back() == '/') return false;
  if (tz.find("..") != tz.npos || tz.find("//") != tz.npos) return false;
  for (char c : tz) {
    const bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                    c == '_' || c == '-' || c == '+' || c == '/';
    if (!ok) return false;
  }
  return true;
}

// With the system's zoneinfo present, a name must be a file in it; without it, Postgres
// decides (an unknown name is reported as a bad tz either way).
bool known_timezone(const std::string& tz) {
  if (tz == "UTC") return true;
  static const std::filesystem::path kZoneinfo = "/usr/share/zoneinfo";
  std::error_code ec;
  if (!std::filesystem::is_directory(kZoneinfo, ec)) return true;
  return std::filesystem::is_regular_file(kZoneinfo / tz, ec);
}

constexpr std::string_view kBase64Url =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

std::string base64url(std::string_view in) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (unsigned char c : in) {
    buffer = (buffer << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(kBase64Url[(buffer >> bits) & 0x3f]);
    }
  }
  if (bits > 0) out.push_back(kBase64Url[(buffer << (6 - bits)) & 0x3f]);
  return out;
}

std::optional<std::string> unbase64url(std::string_view in) {
  std::string out;
  std::uint32_t buffer = 0;
  int bits = 0;
  for (char c : in) {
    auto pos = kBase64Url.find(c);
    if (pos == kBase64Url.npos) return std::nullopt;
    buffer = (buffer << 6) | static_cast<std::uint32_t>(pos);
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out.push_back(static_cast<char>((buffer >> bits) & 0xff));
    }
  }
  return out;
}

std::optional<std::uint64_t> decode_cursor(std::string_view cursor) {
  if (cursor.size() > 32) return std::nullopt;
  auto text = unbase64url(cursor);
  if (!text || !text->starts_with("o:")) return std::nullopt;
  std::string_view n = std::string_view(*text).substr(2);
  if (!digits(n) || n.size() > 9) return std::nullopt;
  std::uint64_t v = 0;
  std::from_chars(n.data(), n.data() + n.size(), v);
  return v;
}

}  // namespace

std::string_view to_string(GroupBy g) noexcept {
  switch (g) {
    case GroupBy::none:
      return "none";
    case GroupBy::workflow:
      return "workflow";
    case GroupBy::status:
      return "status";
    case GroupBy::hour:
      return "hour";
    case GroupBy::day:
      return "day";
    case GroupBy::week:
      return "week";
  }
  return "none";
}

std::string encode_statistics_cursor(std::uint64_t offset) {
  return base64url("o:" + std::to_string(offset));
}

std::string percentile_key(double p) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, p);
  return ec == std::errc{} ? std::string(buffer, end) : std::to_string(p);
}

bool is_calendar_date(std::string_view s) {
  if (s.size() != 10 || s[4] != '-' || s[7] != '-') return false;
  if (!digits(s.substr(0, 4)) || !digits(s.substr(5, 2)) || !digits(s.substr(8, 2))) return false;
  const int y = to_int(s.substr(0, 4)), m = to_int(s.substr(5, 2)), d = to_int(s.substr(8, 2));
  return y >= 1 && m >= 1 && m <= 12 && d >= 1 && d <= days_in_month(y, m);
}

std::optional<std::int64_t> parse_rfc3339(std::string_view s) {
  // YYYY-MM-DDTHH:MM:SS[.frac](Z|+HH:MM|-HH:MM)
  if (s.size() < 20 || s.size() > 40) return std::nullopt;
  if (!is_calendar_date(s.substr(0, 10))) return std::nullopt;
  if (s[10] != 'T' && s[10] != 't' && s[10] != ' ') return std::nullopt;
  if (s[13] != ':' || s[16] != ':') return std::nullopt;
  if (!digits(s.substr(11, 2)) || !digits(s.substr(14, 2)) || !digits(s.substr(17, 2))) {
    return std::nullopt;
  }
  const int hh = to_int(s.substr(11, 2)), mi = to_int(s.substr(14, 2)),
            ss = to_int(s.substr(17, 2));
  if (hh > 23 || mi > 59 || ss > 60) return std::nullopt;  // 60: a leap second, read as 59
  std::size_t i = 19;
  std::int64_t micros = 0;
  if (i < s.size() && s[i] == '.') {
    ++i;
    const std::size_t begin = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    const std::size_t n = i - begin;
    if (n == 0 || n > 9) return std::nullopt;
    std::string frac(s.substr(begin, std::min<std::size_t>(n, 6)));
    frac.resize(6, '0');
    micros = to_int(frac);
  }
  if (i >= s.size()) return std::nullopt;
  std::int64_t offset_s = 0;
  if (s[i] == 'Z' || s[i] == 'z') {
    if (i + 1 != s.size()) return std::nullopt;
  } else if (s[i] == '+' || s[i] == '-' || s[i] == ' ') {
    auto off = s.substr(i + 1);
    if (off.size() != 5 || off[2] != ':' || !digits(off.substr(0, 2)) ||
        !digits(off.substr(3, 2))) {
      return std::nullopt;
    }
    const int oh = to_int(off.substr(0, 2)), om = to_int(off.substr(3, 2));
    if (oh > 23 || om > 59) return std::nullopt;
    offset_s = (oh * 3600 + om * 60) * (s[i] == '-' ? -1 : 1);
  } else {
    return std::nullopt;
  }
  const std::int64_t days =
      days_from_civil(to_int(s.substr(0, 4)), static_cast<unsigned>(to_int(s.substr(5, 2))),
                      static_cast<unsigned>(to_int(s.substr(8, 2))));
  const std::int64_t seconds = days * 86400 + hh * 3600 + mi * 60 + std::min(ss, 59) - offset_s;
  return seconds * 1000000 + micros;
}

std::string format_rfc3339_utc(std::int64_t us) {
  std::int64_t seconds = us >= 0 ? us / 1000000 : (us - 999999) / 1000000;
  const std::int64_t micros = us - seconds * 1000000;
  std::int64_t days = seconds >= 0 ? seconds / 86400 : (seconds - 86399) / 86400;
  const std::int64_t sod = seconds - days * 86400;
  const auto c = civil_from_days(days);
  char buffer[48];
  int n = std::snprintf(buffer, sizeof buffer, "%04lld-%02u-%02uT%02lld:%02lld:%02lld",
                        static_cast<long long>(c.y), c.m, c.d, static_cast<long long>(sod / 3600),
                        static_cast<long long>(sod / 60 % 60), static_cast<long long>(sod % 60));
  std::string out(buffer, static_cast<std::size_t>(n));
  if (micros != 0) {
    std::snprintf(buffer, sizeof buffer, ".%06lld", static_cast<long long>(micros));
    out += buffer;
  }
  out += 'Z';
  return out;
}

StatisticsParamsResult parse_statistics_params(std::string_view query) {
  StatisticsParamsResult result;
  auto& p = result.params;
  auto& errors = result.errors;
  auto fail = [&](std::string parameter, std::string reason) {
    for (const auto& e : errors) {
      if (e.parameter == parameter) return;  // one error per parameter
    }
    errors.push_back({std::move(parameter), std::move(reason)});
  };
  if (query.size() > kMaxQueryLength) {
    fail("query",
         "the query string is longer than " + std::to_string(kMaxQueryLength) + " characters");
    return result;
  }

  // name -> values, in order of appearance
  std::map<std::string, std::vector<std::string>, std::less<>> given;
  std::size_t start = 0;
  while (start <= query.size() && !query.empty()) {
    auto amp = query.find('&', start);
    auto pair = query.substr(start, amp == std::string_view::npos ? query.npos : amp - start);
    start = amp == std::string_view::npos ? query.size() + 1 : amp + 1;
    if (pair.empty()) continue;
    auto eq = pair.find('=');
    auto raw_name = pair.substr(0, eq);
    auto raw_value = eq == std::string_view::npos ? std::string_view() : pair.substr(eq + 1);
    auto name = url_decode(raw_name);
    if (!name) {
      fail(printable(raw_name), "the parameter name is not correctly %-encoded");
      continue;
    }
    if (std::find(kKnown.begin(), kKnown.end(), *name) == kKnown.end() && *name != "cursor") {
      fail(printable(*name), "unknown parameter");
      continue;
    }
    auto value = url_decode(raw_value);
    if (!value) {
      fail(*name, "the value is not correctly %-encoded");
      continue;
    }
    given[*name].push_back(std::move(*value));
  }

  auto single = [&](std::string_view name, std::size_t max_length) -> std::optional<std::string> {
    auto it = given.find(name);
    if (it == given.end()) return std::nullopt;
    if (it->second.size() > 1) {
      fail(std::string(name), "given more than once");
      return std::nullopt;
    }
    const auto& v = it->second.front();
    if (v.empty()) {
      fail(std::string(name), "empty value");
      return std::nullopt;
    }
    if (v.size() > max_length) {
      fail(std::string(name), "too long (at most " + std::to_string(max_length) + " characters)");
      return std::nullopt;
    }
    return v;
  };
  // Repeatable and comma-separated: every item of every occurrence.
  auto list = [&](std::string_view name, std::size_t max_items) -> std::vector<std::string> {
    std::vector<std::string> out;
    auto it = given.find(name);
    if (it == given.end()) return out;
    for (const auto& v : it->second) {
      for (auto item : split_commas(v)) {
        if (item.empty()) {
          fail(std::string(name), "empty value");
          return {};
        }
        if (out.size() >= max_items * 4) break;  // far too many; counted below
        out.emplace_back(item);
      }
    }
    return out;
  };

  // workflow_id
  {
    auto items = list("workflow_id", StatisticsParams::kMaxWorkflowIds);
    std::set<std::string> seen;
    for (const auto& item : items) {
      auto id = canonical_uuid(item);
      if (!id) {
        fail("workflow_id", "not a uuid (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
        break;
      }
      if (seen.insert(*id).second) p.workflow_ids.push_back(std::move(*id));
    }
    if (p.workflow_ids.size() > StatisticsParams::kMaxWorkflowIds) {
      fail("workflow_id", "at most " + std::to_string(StatisticsParams::kMaxWorkflowIds) +
                              " workflows per request");
    }
  }

  // start_date, end_date
  auto bound = [&](std::string_view name, DateBound& out) {
    auto v = single(name, 40);
    if (!v) return;
    if (is_calendar_date(*v)) {
      out.date = *v;
    } else if (auto us = parse_rfc3339(*v)) {
      out.instant_us = *us;
    } else {
      fail(std::string(name),
           "not an RFC 3339 date-time (2024-05-01T00:00:00Z) or a date (2024-05-01)");
    }
  };
  bound("start_date", p.start);
  bound("end_date", p.end);
  if (p.start.instant_us && p.end.instant_us) {
    if (*p.end.instant_us <= *p.start.instant_us) {
      fail("end_date", "must be later than start_date");
    } else if (*p.end.instant_us - *p.start.instant_us >
               std::int64_t{StatisticsParams::kMaxRangeDays} * 86400 * 1000000) {
      fail("end_date",
           "the range is longer than " + std::to_string(StatisticsParams::kMaxRangeDays) + " days");
    }
  }

  // tz
  if (auto v = single("tz", 64)) {
    if (!valid_timezone_name(*v) || !known_timezone(*v)) {
      fail("tz", "not an IANA time zone name (e.g. Europe/Berlin)");
    } else {
      p.tz = *v;
    }
  }

  // status
  {
    auto items = list("status", kStatuses.size());
    std::set<std::string_view> chosen;
    for (const auto& item : items) {
      auto it = std::find(kStatuses.begin(), kStatuses.end(), item);
      if (it == kStatuses.end()) {
        fail("status", "must be one or more of succeeded, failed, canceled, timeout");
        break;
      }
      chosen.insert(*it);
    }
    for (auto s : kStatuses) {
      if (chosen.empty() || chosen.count(s)) p.statuses.emplace_back(s);
    }
  }

  // percentiles
  {
    auto items = list("percentiles", StatisticsParams::kMaxPercentiles);
    std::set<double> chosen;
    for (const auto& item : items) {
      // 1 to 3 integer digits, up to 6 decimals: no exponents, signs, nan or inf.
      auto dot = item.find('.');
      std::string_view whole = std::string_view(item).substr(0, dot);
      std::string_view frac =
          dot == std::string::npos ? std::string_view() : std::string_view(item).substr(dot + 1);
      double v = 0;
      const bool shape = digits(whole) && whole.size() <= 3 &&
                         (dot == std::string::npos || (digits(frac) && frac.size() <= 6));
      if (!shape || std::from_chars(item.data(), item.data() + item.size(), v).ec != std::errc{} ||
          !(v > 0.0 && v < 100.0)) {
        fail("percentiles", "each percentile must be a number greater than 0 and less than 100");
        break;
      }
      chosen.insert(v);
    }
    if (chosen.size() > StatisticsParams::kMaxPercentiles) {
      fail("percentiles",
           "at most " + std::to_string(StatisticsParams::kMaxPercentiles) + " percentiles");
    }
    if (chosen.empty()) chosen = {50.0, 95.0, 99.0};
    p.percentiles.assign(chosen.begin(), chosen.end());
  }

  // group_by
  if (auto v = single("group_by", 16)) {
    bool found = false;
    for (auto g : {GroupBy::none, GroupBy::workflow, GroupBy::status, GroupBy::hour, GroupBy::day,
                   GroupBy::week}) {
      if (*v == to_string(g)) {
        p.group_by = g;
        found = true;
      }
    }
    if (!found) fail("group_by", "must be one of none, workflow, status, hour, day, week");
  }

  if (auto v = single("compare", 16)) {
    if (*v == "previous") {
      p.compare_previous = true;
    } else if (*v != "none") {
      fail("compare", "must be previous (or none)");
    }
  }

  if (auto v = single("exact", 8)) {
    if (*v == "true") {
      p.exact = true;
    } else if (*v == "false") {
      p.exact = false;
    } else {
      fail("exact", "must be true or false");
    }
  }

  if (auto v = single("limit", 8)) {
    if (!digits(*v) || to_int(*v) < 1 || to_int(*v) > StatisticsParams::kMaxLimit) {
      fail("limit", "must be an integer from 1 to " + std::to_string(StatisticsParams::kMaxLimit));
    } else {
      p.limit = to_int(*v);
    }
  }

  if (auto v = single("cursor", 64)) {
    if (auto offset = decode_cursor(*v)) {
      p.offset = *offset;
    } else {
      fail("cursor", "not a cursor from a previous response's next_cursor");
    }
  }
  return result;
}

}  // namespace meshhook::bridge
