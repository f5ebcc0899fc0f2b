#include "meshhook/bridge/statistics/statistics_params.h"

#include <algorithm>
#include <array>
#include <charconv>
#include <cstdio>
#include <filesystem>
#include <map>
#include <set>
#include <span>

#include "meshhook/bridge/common/base64url.h"
#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/common/uuid.h"

namespace meshhook::bridge {
namespace {

constexpr std::size_t kMaxQueryLength = 16 * 1024;
constexpr std::size_t kMaxNameLength = 64;  // how much of an unknown name is echoed
constexpr std::array<std::string_view, 4> kStatuses = {"succeeded", "failed", "canceled",
                                                       "timeout"};
// A step's outcome is its last attempt's.
constexpr std::array<std::string_view, 2> kStepStatuses = {"succeeded", "failed"};
constexpr std::array<std::string_view, 11> kKnown = {
    "workflow_id", "start_date", "end_date", "tz",    "status", "percentiles",
    "group_by",    "compare",    "exact",    "limit", "cursor"};
constexpr std::array<std::string_view, 6> kStepKnown = {"workflow_id", "start_date", "end_date",
                                                        "tz",          "status",     "exact"};

bool known_parameter(StatisticsEndpoint endpoint, std::string_view name) {
  if (endpoint == StatisticsEndpoint::step_times) {
    return std::find(kStepKnown.begin(), kStepKnown.end(), name) != kStepKnown.end();
  }
  if (endpoint == StatisticsEndpoint::queue_times && name == "measure") return true;
  return std::find(kKnown.begin(), kKnown.end(), name) != kKnown.end();
}

std::span<const std::string_view> statuses_of(StatisticsEndpoint endpoint) {
  if (endpoint == StatisticsEndpoint::step_times) return kStepStatuses;
  return kStatuses;
}

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

bool digits(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

int to_int(std::string_view s) {
  int v = 0;
  std::from_chars(s.data(), s.data() + s.size(), v);
  return v;
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

std::optional<std::uint64_t> decode_cursor(std::string_view cursor) {
  if (cursor.size() > 32) return std::nullopt;
  auto text = base64url_decode(cursor);
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

std::string_view to_string(Measure m) noexcept {
  switch (m) {
    case Measure::execution_time:
      return "execution_time";
    case Measure::queue_wait:
      return "queue_wait";
    case Measure::start_wait:
      return "start_wait";
    case Measure::step_duration:
      return "step_duration";
  }
  return "execution_time";
}

bool all_statuses(const StatisticsParams& params) noexcept {
  const auto known =
      params.measure == Measure::step_duration ? kStepStatuses.size() : kStatuses.size();
  return params.statuses.size() == known;
}

std::string encode_statistics_cursor(std::uint64_t offset) {
  return base64url_encode("o:" + std::to_string(offset));
}

std::string percentile_key(double p) {
  char buffer[32];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, p);
  return ec == std::errc{} ? std::string(buffer, end) : std::to_string(p);
}

namespace {

// The query string as name -> values (in order of appearance), and the errors found so far:
// one per parameter. Each read_* step below takes what it needs from here.
class QueryReader {
 public:
  QueryReader(std::vector<ParameterError>& errors, StatisticsEndpoint endpoint)
      : errors_(errors), endpoint_(endpoint) {}

  StatisticsEndpoint endpoint() const noexcept { return endpoint_; }

  void fail(std::string parameter, std::string reason) {
    for (const auto& e : errors_) {
      if (e.parameter == parameter) return;  // one error per parameter
    }
    errors_.push_back({std::move(parameter), std::move(reason)});
  }

  // Splits and %-decodes the pairs; unknown names and bad escapes are errors.
  void split(std::string_view query) {
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
      if (!known_parameter(endpoint_, *name)) {
        fail(printable(*name), "unknown parameter");
        continue;
      }
      auto value = url_decode(raw_value);
      if (!value) {
        fail(*name, "the value is not correctly %-encoded");
        continue;
      }
      given_[*name].push_back(std::move(*value));
    }
  }

  // A parameter given at most once, non-empty and at most max_length long.
  std::optional<std::string> single(std::string_view name, std::size_t max_length) {
    auto it = given_.find(name);
    if (it == given_.end()) return std::nullopt;
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
  }

  // Repeatable and comma-separated: every item of every occurrence.
  std::vector<std::string> list(std::string_view name, std::size_t max_items) {
    std::vector<std::string> out;
    auto it = given_.find(name);
    if (it == given_.end()) return out;
    for (const auto& v : it->second) {
      for (auto item : split_commas(v)) {
        if (item.empty()) {
          fail(std::string(name), "empty value");
          return {};
        }
        if (out.size() >= max_items * 4) break;  // far too many; counted by the caller
        out.emplace_back(item);
      }
    }
    return out;
  }

 private:
  std::vector<ParameterError>& errors_;
  StatisticsEndpoint endpoint_;
  std::map<std::string, std::vector<std::string>, std::less<>> given_;
};

void read_workflows(QueryReader& q, StatisticsParams& p) {
  std::set<std::string> seen;
  for (const auto& item : q.list("workflow_id", StatisticsParams::kMaxWorkflowIds)) {
    auto id = canonical_uuid(item);
    if (!id) {
      q.fail("workflow_id", "not a uuid (expected xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx)");
      break;
    }
    if (seen.insert(*id).second) p.workflow_ids.push_back(std::move(*id));
  }
  if (p.workflow_ids.size() > StatisticsParams::kMaxWorkflowIds) {
    q.fail("workflow_id", "at most " + std::to_string(StatisticsParams::kMaxWorkflowIds) +
                              " workflows per request");
  }
  // A step breakdown is of one workflow: its steps are its own.
  if (q.endpoint() == StatisticsEndpoint::step_times && p.workflow_ids.size() != 1) {
    q.fail("workflow_id", p.workflow_ids.empty() ? "required: the workflow whose steps to show"
                                                 : "exactly one workflow per request");
  }
}

void read_bound(QueryReader& q, std::string_view name, DateBound& out) {
  auto v = q.single(name, 40);
  if (!v) return;
  if (is_calendar_date(*v)) {
    out.date = *v;
  } else if (auto us = parse_rfc3339(*v)) {
    out.instant_us = *us;
  } else {
    q.fail(std::string(name),
           "not an RFC 3339 date-time (2024-05-01T00:00:00Z) or a date (2024-05-01)");
  }
}

// start_date and end_date; two instants are checked here, dates by Postgres in tz.
void read_range(QueryReader& q, StatisticsParams& p) {
  read_bound(q, "start_date", p.start);
  read_bound(q, "end_date", p.end);
  if (!p.start.instant_us || !p.end.instant_us) return;
  if (*p.end.instant_us <= *p.start.instant_us) {
    q.fail("end_date", "must be later than start_date");
  } else if (*p.end.instant_us - *p.start.instant_us >
             std::int64_t{StatisticsParams::kMaxRangeDays} * 86400 * 1000000) {
    q.fail("end_date",
           "the range is longer than " + std::to_string(StatisticsParams::kMaxRangeDays) + " days");
  }
}

void read_tz(QueryReader& q, StatisticsParams& p) {
  auto v = q.single("tz", 64);
  if (!v) return;
  if (!valid_timezone_name(*v) || !known_timezone(*v)) {
    q.fail("tz", "not an IANA time zone name (e.g. Europe/Berlin)");
  } else {
    p.tz = *v;
  }
}

// status filter: default every status the endpoint knows, always in their order.
void read_statuses(QueryReader& q, StatisticsParams& p) {
  const auto known = statuses_of(q.endpoint());
  std::set<std::string_view> chosen;
  for (const auto& item : q.list("status", known.size())) {
    auto it = std::find(known.begin(), known.end(), item);
    if (it == known.end()) {
      std::string names;
      for (auto s : known) names += (names.empty() ? "" : ", ") + std::string(s);
      q.fail("status", "must be one or more of " + names);
      break;
    }
    chosen.insert(*it);
  }
  for (auto s : known) {
    if (chosen.empty() || chosen.count(s)) p.statuses.emplace_back(s);
  }
}

// What the endpoint measures; queue-times lets the caller choose.
void read_measure(QueryReader& q, StatisticsParams& p) {
  switch (q.endpoint()) {
    case StatisticsEndpoint::execution_times:
      p.measure = Measure::execution_time;
      return;
    case StatisticsEndpoint::step_times:
      p.measure = Measure::step_duration;
      return;
    case StatisticsEndpoint::queue_times:
      p.measure = Measure::queue_wait;
      break;
  }
  auto v = q.single("measure", 16);
  if (!v) return;
  if (*v == "start_wait") {
    p.measure = Measure::start_wait;
  } else if (*v != "queue_wait") {
    q.fail("measure", "must be queue_wait or start_wait");
  }
}

// 1 to 3 integer digits, up to 6 decimals, in (0, 100): no exponents, signs, nan or inf.
std::optional<double> percentile_value(const std::string& item) {
  auto dot = item.find('.');
  std::string_view whole = std::string_view(item).substr(0, dot);
  std::string_view frac =
      dot == std::string::npos ? std::string_view() : std::string_view(item).substr(dot + 1);
  const bool shape = digits(whole) && whole.size() <= 3 &&
                     (dot == std::string::npos || (digits(frac) && frac.size() <= 6));
  double v = 0;
  if (!shape || std::from_chars(item.data(), item.data() + item.size(), v).ec != std::errc{} ||
      !(v > 0.0 && v < 100.0)) {
    return std::nullopt;
  }
  return v;
}

void read_percentiles(QueryReader& q, StatisticsParams& p) {
  std::set<double> chosen;
  for (const auto& item : q.list("percentiles", StatisticsParams::kMaxPercentiles)) {
    auto v = percentile_value(item);
    if (!v) {
      q.fail("percentiles", "each percentile must be a number greater than 0 and less than 100");
      break;
    }
    chosen.insert(*v);
  }
  if (chosen.size() > StatisticsParams::kMaxPercentiles) {
    q.fail("percentiles",
           "at most " + std::to_string(StatisticsParams::kMaxPercentiles) + " percentiles");
  }
  if (chosen.empty()) chosen = {50.0, 95.0, 99.0};
  p.percentiles.assign(chosen.begin(), chosen.end());
}

// group_by and compare: how the answer is cut.
void read_grouping(QueryReader& q, StatisticsParams& p) {
  if (auto v = q.single("group_by", 16)) {
    bool found = false;
    for (auto g : {GroupBy::none, GroupBy::workflow, GroupBy::status, GroupBy::hour, GroupBy::day,
                   GroupBy::week}) {
      if (*v == to_string(g)) {
        p.group_by = g;
        found = true;
      }
    }
    if (!found) q.fail("group_by", "must be one of none, workflow, status, hour, day, week");
  }
  if (auto v = q.single("compare", 16)) {
    if (*v == "previous") {
      p.compare_previous = true;
    } else if (*v != "none") {
      q.fail("compare", "must be previous (or none)");
    }
  }
}

// exact: rows or sketches; unset lets the query choose by the size of the work.
void read_mode(QueryReader& q, StatisticsParams& p) {
  auto v = q.single("exact", 8);
  if (!v) return;
  if (*v == "true") {
    p.exact = true;
  } else if (*v == "false") {
    p.exact = false;
  } else {
    q.fail("exact", "must be true or false");
  }
}

// limit and cursor.
void read_paging(QueryReader& q, StatisticsParams& p) {
  if (auto v = q.single("limit", 8)) {
    if (!digits(*v) || to_int(*v) < 1 || to_int(*v) > StatisticsParams::kMaxLimit) {
      q.fail("limit",
             "must be an integer from 1 to " + std::to_string(StatisticsParams::kMaxLimit));
    } else {
      p.limit = to_int(*v);
    }
  }
  if (auto v = q.single("cursor", 64)) {
    if (auto offset = decode_cursor(*v)) {
      p.offset = *offset;
    } else {
      q.fail("cursor", "not a cursor from a previous response's next_cursor");
    }
  }
}

}  // namespace

StatisticsParamsResult parse_statistics_params(std::string_view query,
                                               StatisticsEndpoint endpoint) {
  StatisticsParamsResult result;
  QueryReader q(result.errors, endpoint);
  if (query.size() > kMaxQueryLength) {
    q.fail("query",
           "the query string is longer than " + std::to_string(kMaxQueryLength) + " characters");
    return result;
  }
  q.split(query);
  auto& p = result.params;
  read_workflows(q, p);
  read_range(q, p);
  read_tz(q, p);
  read_measure(q, p);
  read_statuses(q, p);
  read_percentiles(q, p);
  read_grouping(q, p);
  read_mode(q, p);
  read_paging(q, p);
  return result;
}

}  // namespace meshhook::bridge
