#include "meshhook/bridge/statistics/statistics_api.h"

#include <spdlog/spdlog.h>

#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <pqxx/pqxx>

#include "detail/caller_statement.h"
#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/statistics/execution_time_sketch.h"
#include "meshhook/bridge/statistics/step_times_query.h"

namespace meshhook::bridge {
namespace {

using nlohmann::json;

// Whole numbers print as integers (50, not 50.0): milliseconds of min and max, percentiles.
json number(double v) {
  if (std::isfinite(v) && v == std::floor(v) && std::fabs(v) < 9e15) {
    return json(static_cast<std::int64_t>(v));
  }
  return json(v);
}

json nullable(const std::optional<double>& v) { return v ? number(*v) : json(nullptr); }

HttpResponse invalid(const std::vector<ParameterError>& errors) {
  json details = json::array();
  std::string message;
  for (const auto& e : errors) {
    details.push_back({{"parameter", e.parameter}, {"reason", e.reason}});
    if (!message.empty()) message += "; ";
    message += e.parameter + ": " + e.reason;
  }
  HttpResponse r;
  r.status = 400;
  r.body = json{{"error", "invalid_parameter"}, {"message", message}, {"details", details}}.dump();
  return r;
}

json filters_json(const StatisticsParams& p, const ResolvedRange& range) {
  json percentiles = json::array();
  for (double v : p.percentiles) percentiles.push_back(number(v));
  json out = {{"workflow_ids", p.workflow_ids},
              {"start", format_rfc3339_utc(range.start_us)},
              {"end", format_rfc3339_utc(range.end_us)},
              {"tz", p.tz},
              {"statuses", p.statuses},
              {"percentiles", percentiles},
              {"group_by", to_string(p.group_by)},
              {"exact", p.exact ? json(*p.exact) : json(nullptr)}};
  if (p.measure == Measure::queue_wait || p.measure == Measure::start_wait) {
    out["measure"] = to_string(p.measure);
  }
  return out;
}

json step_filters_json(const StatisticsParams& p, const ResolvedRange& range) {
  return {{"workflow_id", p.workflow_ids.front()},
          {"start", format_rfc3339_utc(range.start_us)},
          {"end", format_rfc3339_utc(range.end_us)},
          {"tz", p.tz},
          {"statuses", p.statuses},
          {"exact", p.exact ? json(*p.exact) : json(nullptr)}};
}

json accuracy_json(StatisticsMethod method) {
  return {{"method", method == StatisticsMethod::exact ? "exact" : "sketch"},
          {"max_relative_error",
           method == StatisticsMethod::exact ? 0.0 : ExecutionTimeSketch::kRelativeAccuracy}};
}

json nullable_ratio(const std::optional<double>& v) { return v ? json(*v) : json(nullptr); }

json step_json(const StepTimes& s) {
  return {{"step_id", s.step_id},
          {"step_type", s.step_type},
          {"count", s.count},
          {"failed", s.failed},
          {"avg_ms", number(s.avg)},
          {"median_ms", number(s.median)},
          {"p95_ms", number(s.p95)},
          {"p99_ms", number(s.p99)},
          {"total_ms", number(s.sum_ms)},
          {"failure_ratio", number(s.failure_ratio)},
          {"mean_attempts", number(s.mean_attempts)},
          {"share", nullable_ratio(s.share)},
          {"median_share", nullable_ratio(s.median_share)}};
}

std::optional<double> percentile(const StatisticsGroup& g, const std::vector<double>& fractions,
                                 double fraction) {
  for (std::size_t i = 0; i < fractions.size(); ++i) {
    if (fractions[i] == fraction) return g.percentiles[i];
  }
  return std::nullopt;
}

using WorkflowNames = std::map<std::string, std::string, std::less<>>;

json group_json(const StatisticsGroup& g, const StatisticsParams& p,
                const std::vector<double>& fractions, const WorkflowNames& names) {
  json percentiles = json::object();
  for (double v : p.percentiles) {
    percentiles[percentile_key(v)] = nullable(percentile(g, fractions, v / 100.0));
  }
  const auto name = g.workflow_id ? names.find(*g.workflow_id) : names.end();
  return {{"workflow_id", g.workflow_id ? json(*g.workflow_id) : json(nullptr)},
          {"workflow_name", name != names.end() ? json(name->second) : json(nullptr)},
          {"status", g.status ? json(*g.status) : json(nullptr)},
          {"bucket_start",
           g.bucket_start_us ? json(format_rfc3339_utc(*g.bucket_start_us)) : json(nullptr)},
          {"count", g.count},
          {"avg", nullable(g.avg)},
          {"min", nullable(g.min)},
          {"max", nullable(g.max)},
          {"median", nullable(percentile(g, fractions, 0.5))},
          {"p95", nullable(percentile(g, fractions, 0.95))},
          {"p99", nullable(percentile(g, fractions, 0.99))},
          {"percentiles", percentiles}};
}

// The names of the workflows (canonical uuids), as far as the caller may see them (the
// table has the same row level security as the runs).
WorkflowNames workflow_names(pqxx::transaction_base& tx, const StatisticsQueryLimits& limits,
                             const std::vector<std::string>& workflows) {
  std::string ids = "{";
  for (const auto& id : workflows) {
    if (ids.size() > 1) ids += ',';
    ids += id;
  }
  ids += '}';
  WorkflowNames out;
  if (ids.size() == 2) return out;
  static const std::string kName = "statistics_workflow_names";
  static const std::string kSql =
      "select workflow_id::text, name from execution_time_workflows"
      " where workflow_id = any($1::uuid[])";
  for (const auto& row : detail::run_statement(tx, limits, kName, kSql, ids)) {
    out.emplace(row[0].c_str(), row[1].c_str());
  }
  return out;
}

std::vector<std::string> workflows_of(const std::vector<StatisticsGroup>& groups,
                                      const std::vector<StatisticsGroup>& previous) {
  std::vector<std::string> out;
  for (const auto* list : {&groups, &previous}) {
    for (const auto& g : *list) {
      if (g.workflow_id) out.push_back(*g.workflow_id);  // canonical uuids from the database
    }
  }
  return out;
}

json change(const std::optional<double>& now, const std::optional<double>& before) {
  if (!now || !before || *before == 0) return nullptr;
  return std::round((*now - *before) / *before * 100.0 * 100.0) / 100.0;
}

json change_json(const StatisticsGroup& now, const StatisticsGroup& before,
                 const std::vector<double>& fractions) {
  auto count = [](const StatisticsGroup& g) {
    return std::optional<double>(static_cast<double>(g.count));
  };
  return {{"count", change(count(now), count(before))},
          {"avg", change(now.avg, before.avg)},
          {"median", change(percentile(now, fractions, 0.5), percentile(before, fractions, 0.5))},
          {"p95", change(percentile(now, fractions, 0.95), percentile(before, fractions, 0.95))},
          {"p99", change(percentile(now, fractions, 0.99), percentile(before, fractions, 0.99))}};
}

bool is_data_error(const std::string& sqlstate) {
  return sqlstate.size() == 5 && (sqlstate.starts_with("22") || sqlstate.starts_with("23"));
}

HttpResponse timeout_response(int timeout_ms) {
  return json_error(504, "timeout",
                    "the request took longer than " + std::to_string(timeout_ms) +
                        " ms (statistics.request_timeout_ms): shorten the range or narrow the "
                        "filters");
}

}  // namespace

StatisticsApi::StatisticsApi(ConnectionPool& pool, StatisticsApiOptions options)
    : pool_(pool), options_(std::move(options)), caller_limit_(options_.max_in_flight_per_caller) {}

bool StatisticsApi::may_read_project(const TenantClaims& claims, std::string_view project_id) {
  auto lease = pool_.acquire();
  try {
    pqxx::nontransaction tx(lease.connection());
    const RequestDeadline deadline(std::chrono::milliseconds(options_.request_timeout_ms));
    const StatisticsCaller caller{claims.claims_json, claims.subject};
    const StatisticsQueryLimits limits{.deadline = &deadline, .caller = &caller};
    // The function the row level security policies use decides, not the C++.
    static const std::string kName = "statistics_may_read_project";
    static const std::string kSql =
        "select $1::uuid in (select meshhook_stats_caller_project_ids())";
    return detail::run_statement(tx, limits, kName, kSql, std::string(project_id))
        .at(0)[0]
        .as<bool>();
  } catch (const pqxx::broken_connection&) {
    lease.discard();
    throw;
  }
}

namespace {

// A statistics resource under StatisticsApiOptions::root.
struct Route {
  StatisticsEndpoint endpoint;
  bool histogram;
};
std::optional<Route> route_of(std::string_view path, std::string_view root) {
  if (!path.starts_with(root)) return std::nullopt;
  const auto rest = path.substr(root.size());
  if (rest == "/execution-times") return Route{StatisticsEndpoint::execution_times, false};
  if (rest == "/execution-times/histogram") return Route{StatisticsEndpoint::execution_times, true};
  if (rest == "/queue-times") return Route{StatisticsEndpoint::queue_times, false};
  if (rest == "/queue-times/histogram") return Route{StatisticsEndpoint::queue_times, true};
  if (rest == "/step-times") return Route{StatisticsEndpoint::step_times, false};
  return std::nullopt;
}

// What a request read inside its transaction; the JSON is built once the connection is free.
struct Reading {
  std::vector<ParameterError> errors;
  std::optional<ResolvedRange> range;
  std::vector<StatisticsGroup> groups;
  std::vector<StatisticsGroup> previous;
  std::vector<HistogramBucket> buckets;
  std::vector<StepTimes> steps;
  std::vector<double> fractions;
  StatisticsMethod method = StatisticsMethod::exact;
  WorkflowNames names;
};

json histogram_body(const Reading& r) {
  std::uint64_t total = 0;
  json out = json::array();
  for (const auto& b : r.buckets) {
    total += b.count;
    out.push_back({{"lower", number(b.lower)},
                   {"upper", b.upper ? number(*b.upper) : json(nullptr)},
                   {"count", b.count}});
  }
  return {{"count", total}, {"buckets", std::move(out)}};
}

json steps_body(const StatisticsParams& params, const Reading& r) {
  std::uint64_t count = 0;
  double total = 0;
  json out = json::array();
  for (const auto& s : r.steps) {
    count += s.count;
    total += s.sum_ms;
    out.push_back(step_json(s));
  }
  const auto name = r.names.find(params.workflow_ids.front());
  return {{"workflow_name", name != r.names.end() ? json(name->second) : json(nullptr)},
          {"count", count},
          {"total_ms", number(total)},
          {"steps", std::move(out)}};
}

json groups_body(const StatisticsParams& params, const Reading& r) {
  const auto& range = *r.range;
  const auto& groups = r.groups;
  const auto& previous = r.previous;
  const auto& fractions = r.fractions;
  const auto& names = r.names;
  json body;
  const std::int64_t length = range.end_us - range.start_us;
  const auto total = groups.size();
  const auto first = std::min<std::uint64_t>(params.offset, total);
  const auto last =
      std::min<std::uint64_t>(first + static_cast<std::uint64_t>(params.limit), total);
  const bool keyed = params.group_by == GroupBy::workflow || params.group_by == GroupBy::status;
  std::map<std::string, const StatisticsGroup*> previous_by_key;
  for (const auto& g : previous) {
    previous_by_key[g.workflow_id.value_or("") + "|" + g.status.value_or("")] = &g;
  }
  // The earlier period's group to compare with: the same workflow or status, or for time
  // groupings the bucket that starts one period length earlier.
  auto match = [&](std::size_t i) -> const StatisticsGroup* {
    if (keyed) {
      auto it = previous_by_key.find(groups[i].workflow_id.value_or("") + "|" +
                                     groups[i].status.value_or(""));
      return it == previous_by_key.end() ? nullptr : it->second;
    }
    for (const auto& g : previous) {
      if (g.bucket_start_us && groups[i].bucket_start_us &&
          *g.bucket_start_us == *groups[i].bucket_start_us - length) {
        return &g;
      }
    }
    return nullptr;
  };

  json out = json::array();
  json previous_out = json::array();
  for (auto i = first; i < last; ++i) {
    auto g = group_json(groups[i], params, fractions, names);
    if (params.compare_previous && params.group_by != GroupBy::none) {
      const auto* before = match(i);
      g["change_percent"] = before ? change_json(groups[i], *before, fractions) : json(nullptr);
      if (before) previous_out.push_back(group_json(*before, params, fractions, names));
    }
    out.push_back(std::move(g));
  }
  body["groups"] = std::move(out);
  body["previous"] = nullptr;
  body["change_percent"] = nullptr;
  if (params.compare_previous) {
    if (params.group_by == GroupBy::none) {
      previous_out = json::array({group_json(previous.front(), params, fractions, names)});
      body["change_percent"] = change_json(groups.front(), previous.front(), fractions);
    }
    body["previous"] = {{"start", format_rfc3339_utc(range.start_us - length)},
                        {"end", format_rfc3339_utc(range.start_us)},
                        {"groups", std::move(previous_out)}};
  }
  body["next_cursor"] = last < total ? json(encode_statistics_cursor(last)) : json(nullptr);
  return body;
}

}  // namespace

HttpResponse StatisticsApi::handle(const HttpRequest& request, const TenantClaims& claims) {
  if (request.method != "GET" && request.method != "HEAD") {
    auto r = json_error(405, "method_not_allowed", "use GET");
    r.headers.emplace_back("Allow", "GET");
    return r;
  }
  const auto route = route_of(request.path, options_.root);
  if (!route) return json_error(404, "not_found", "no such statistics resource");
  const RequestDeadline deadline(std::chrono::milliseconds(options_.request_timeout_ms));
  // The subject is who asks; a token without one is told apart by its claims.
  auto slot =
      caller_limit_.try_acquire(claims.subject.empty() ? claims.claims_json : claims.subject);
  if (!slot) {
    auto r = json_error(429, "too_many_requests",
                        "at most " + std::to_string(caller_limit_.max_in_flight()) +
                            " statistics requests of one caller may run at once; retry shortly");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  }
  return run(request, claims, route->endpoint, route->histogram, deadline);
}

HttpResponse StatisticsApi::run(const HttpRequest& request, const TenantClaims& claims,
                                StatisticsEndpoint endpoint, bool histogram,
                                const RequestDeadline& deadline) {
  auto parsed = parse_statistics_params(request.query, endpoint);
  if (!parsed.ok()) return invalid(parsed.errors);
  const auto& params = parsed.params;
  const bool steps = endpoint == StatisticsEndpoint::step_times;

  std::optional<ConnectionPool::Lease> lease;
  const char* statement = "statistics_connect";
  try {
    lease.emplace(pool_.acquire());
    statement = "statistics_begin";
    Reading r;
    {
      // Each statement one message that sets the caller first (detail/caller_statement.h),
      // so no BEGIN and COMMIT: every statement reads in a snapshot of its own, as in a
      // read-committed transaction.
      pqxx::nontransaction tx(lease->connection());
      const StatisticsCaller caller{claims.claims_json, claims.subject};
      const StatisticsQueryLimits limits{.max_buckets = options_.max_buckets,
                                         .max_rollup_rows = options_.max_rollup_rows,
                                         .deadline = &deadline,
                                         .caller = &caller};
      StatisticsQuery query(tx, params, options_.exact_max_rows, limits);
      StepTimesQuery step_query(tx, params, limits, options_.exact_max_rows);
      try {
        r.range = query.resolve(r.errors);
        if (r.range && steps) {
          r.steps = step_query.steps(*r.range);
        } else if (r.range && histogram) {
          r.buckets = query.histogram(*r.range);
        } else if (r.range) {
          r.groups = query.groups(*r.range, r.range->start_us, r.range->end_us);
          if (params.compare_previous) {
            const std::int64_t length = r.range->end_us - r.range->start_us;
            r.previous = query.groups(*r.range, r.range->start_us - length, r.range->start_us);
          }
        }
      } catch (...) {
        statement = steps && std::string_view(step_query.statement()).size()
                        ? step_query.statement()
                        : query.statement();
        throw;
      }
      r.fractions = query.fractions();
      r.method = steps ? step_query.method() : query.method();
      if (r.range && (steps || (!histogram && params.group_by == GroupBy::workflow))) {
        statement = "statistics_workflow_names";
        r.names = workflow_names(tx, limits,
                                 steps ? params.workflow_ids : workflows_of(r.groups, r.previous));
      }
      if (r.range) tx.commit();
    }
    lease.reset();  // the connection is free before the JSON is built
    if (!r.range) return invalid(r.errors);

    json body = steps       ? steps_body(params, r)
                : histogram ? histogram_body(r)
                            : groups_body(params, r);
    body["filters"] = steps ? step_filters_json(params, *r.range) : filters_json(params, *r.range);
    body["unit"] = "ms";
    body["accuracy"] = accuracy_json(r.method);
    HttpResponse response;
    response.body = request.method == "HEAD" ? std::string() : body.dump();
    response.headers.emplace_back("Cache-Control", "private, no-store");
    return response;
  } catch (const RequestTimeout&) {
    spdlog::warn("statistics: the request's deadline passed before {}", statement);
    return timeout_response(options_.request_timeout_ms);
  } catch (const StatisticsTooMuchData&) {
    return json_error(400, "too_much_data",
                      "the range holds more than " + std::to_string(options_.max_rollup_rows) +
                          " rollup rows to merge (statistics.max_rollup_rows): shorten it, or "
                          "filter by workflow_id or status");
  } catch (const ConnectionPoolTimeout&) {
    spdlog::warn("statistics: every database connection is busy");
    auto r = json_error(503, "busy", "the statistics service is busy; retry shortly");
    r.headers.emplace_back("Retry-After", "1");
    return r;
  } catch (const pqxx::broken_connection&) {
    if (lease) lease->discard();
    spdlog::warn("statistics: lost the database connection during {}", statement);
    auto r = json_error(503, "database_unavailable", "the database is unreachable; retry later");
    r.headers.emplace_back("Retry-After", "5");
    return r;
  } catch (const pqxx::sql_error& e) {
    // Never the message: Postgres quotes values in it.
    spdlog::warn("statistics: statement {} failed with SQLSTATE {}", statement, e.sqlstate());
    // 57014: canceled by statement_timeout, i.e. the deadline passed while it ran.
    if (e.sqlstate() == "57014") return timeout_response(options_.request_timeout_ms);
    if (is_data_error(e.sqlstate())) {
      return json_error(400, "invalid_parameter", "the database rejected a parameter value");
    }
    return json_error(500, "internal_error", "the statistics query failed");
  } catch (const std::exception&) {
    if (lease) lease->discard();
    spdlog::error("statistics: unexpected failure during {}", statement);
    return json_error(500, "internal_error", "the statistics query failed");
  }
}

}  // namespace meshhook::bridge
