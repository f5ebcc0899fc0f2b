#include "service.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <fstream>
#include <functional>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>

#include "http_server.h"
#include "meshhook/bridge/auth/claims_resolver.h"
#include "meshhook/bridge/auth/tenant_claims.h"
#include "meshhook/bridge/ingest/ingest_api.h"
#include "meshhook/bridge/statistics/statistics_api.h"
#include "meshhook/bridge/storage/connection_pool.h"
#include "meshhook/bridge/storage/run_event.h"
#include "meshhook/bridge/storage/run_sink.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/bridge/storage/storage.h"
#include "meshhook/exporter/exposition.h"
#include "meshhook/exporter/process_metrics.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"
#include "static_files.h"

namespace meshhook::app {
namespace {

const std::vector<double> kRequestBuckets = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                             0.1,    0.25,  0.5,    1,     2.5,  5,     10};

bridge::HttpResponse method_not_allowed(std::string_view allow) {
  auto r = bridge::json_error(405, "method_not_allowed", "use " + std::string(allow));
  r.headers.emplace_back("Allow", std::string(allow));
  return r;
}

bool is_read(const bridge::HttpRequest& r) { return r.method == "GET" || r.method == "HEAD"; }

std::string read_key_file(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  if (!in.good() && !in.eof()) throw ConfigError(key + ": cannot read " + path);
  if (text.empty()) throw ConfigError(key + ": " + path + " is missing or empty");
  return text;
}

// auth.* as the resolver's options; key files are read here, once, at start-up.
bridge::ClaimsResolverOptions claims_resolver_options(const Config& c) {
  bridge::ClaimsResolverOptions o;
  o.project_ids_claim = c.project_ids_claim;
  o.allowed_roles = c.allowed_roles;
  const auto algorithm = bridge::parse_jwt_algorithm(c.jwt_algorithm).value();
  std::string key;
  if (algorithm == bridge::JwtAlgorithm::hs256) {
    if (!c.jwt_public_key_file.empty()) {
      throw ConfigError(
          "auth.jwt_public_key_file: is for RS256 and ES256; HS256 takes auth.jwt_secret");
    }
    key = c.jwt_secret;
    if (!c.jwt_secret_file.empty()) {
      if (!key.empty())
        throw ConfigError("auth.jwt_secret_file: set auth.jwt_secret or this, not both");
      key = read_key_file("auth.jwt_secret_file", c.jwt_secret_file);
      while (!key.empty() && (key.back() == '\n' || key.back() == '\r')) key.pop_back();
    }
  } else {
    if (!c.jwt_secret.empty() || !c.jwt_secret_file.empty()) {
      throw ConfigError("auth.jwt_secret: is for HS256; " + c.jwt_algorithm +
                        " takes auth.jwt_public_key_file");
    }
    if (c.jwt_public_key_file.empty()) {
      throw ConfigError("auth.jwt_public_key_file: " + c.jwt_algorithm +
                        " needs a public key file");
    }
    key = read_key_file("auth.jwt_public_key_file", c.jwt_public_key_file);
  }
  if (key.empty()) return o;  // no key: the statistics endpoints refuse everyone
  o.jwt = bridge::JwtOptions{.algorithm = algorithm,
                             .key = std::move(key),
                             .audience = c.jwt_audience,
                             .issuer = c.jwt_issuer,
                             .leeway = std::chrono::seconds(c.jwt_leeway_seconds)};
  return o;
}

std::unique_ptr<bridge::ClaimsResolver> make_claims_resolver(const Config& c) {
  auto options = claims_resolver_options(c);
  try {
    return std::make_unique<bridge::ClaimsResolver>(std::move(options));
  } catch (const std::invalid_argument& e) {
    throw ConfigError(
        std::string(c.jwt_algorithm == "HS256" ? "auth.jwt_secret" : "auth.jwt_public_key_file") +
        ": " + e.what());
  }
}

}  // namespace

struct Service::Impl {
  Config config;
  exporter::Registry registry;
  exporter::RunMetrics run_metrics;
  exporter::HistogramFamily& request_durations;
  std::unique_ptr<bridge::Storage> storage;  // when a database is configured
  bridge::DiscardingRunSink discard;         // otherwise
  std::unique_ptr<bridge::IngestApi> ingest;
  std::unique_ptr<StaticFiles> ui;
  std::unique_ptr<bridge::TokenSet> metrics_token;
  std::unique_ptr<HttpServer> api;
  std::unique_ptr<HttpServer> metrics;
  // The statistics API (when a database is configured) and who the caller is.
  std::unique_ptr<bridge::ConnectionPool> query_pool;
  std::unique_ptr<bridge::StatisticsApi> statistics;
  // Who the statistics caller is: their verified JWT, or the 401 to answer.
  std::unique_ptr<bridge::ClaimsResolver> claims_resolver;
  std::atomic<std::size_t> last_exposition_size{64 * 1024};
  std::mutex readiness_mutex;
  std::string last_readiness_reason;

  explicit Impl(Config c)
      : config(std::move(c)),
        run_metrics(registry,
                    exporter::RunMetricsOptions{
                        config.buckets, config.max_series_per_family, config.max_label_value_length,
                        config.exemplars, config.duplicate_window_runs,
                        std::chrono::seconds(config.duplicate_window_seconds)}),
        request_durations(
            registry.add_histogram({.name = "meshhook_stats_http_request_duration_seconds",
                                    .help = "HTTP requests served, by route and status code.",
                                    .unit = "seconds",
                                    .label_names = {"route", "code"}},
                                   kRequestBuckets)) {
    exporter::add_process_metrics(registry, MESHHOOK_VERSION, MESHHOOK_REVISION);
    if (!config.database_url.empty()) {
      storage = std::make_unique<bridge::Storage>(
          bridge::StorageOptions{.database_url = config.database_url,
                                 .database_pool_size = config.database_pool_size,
                                 .spool_dir = config.spool_dir,
                                 .spool_max_bytes = config.spool_max_bytes,
                                 .spool_segment_bytes = config.spool_segment_bytes,
                                 .spool_group_commit_us = config.spool_group_commit_us,
                                 .writer_batch_rows = config.writer_batch_rows,
                                 .writer_batch_interval_ms = config.writer_batch_interval_ms,
                                 .writer_max_backoff_ms = config.writer_max_backoff_ms,
                                 .retention_days = config.retention_days,
                                 .tail_enabled = config.tail_enabled,
                                 .tail_interval_ms = config.tail_interval_ms,
                                 .tail_details_delay_ms = config.tail_details_delay_ms,
                                 .compaction_enabled = config.compactor_enabled,
                                 .compaction_interval_ms = config.compactor_interval_ms,
                                 .compaction_batch_deltas = config.compactor_batch_deltas,
                                 .logical_capture = config.capture_mode == "logical",
                                 .capture_replication_url = config.capture_replication_url,
                                 .capture_slot = config.capture_slot,
                                 .capture_interval_ms = config.capture_interval_ms,
                                 .capture_batch_runs = config.capture_batch_runs},
          registry, run_metrics);
    }
    if (config.ui_enabled) {
      ui = std::make_unique<StaticFiles>(config.ui_dir.empty() ? MESHHOOK_UI_DIR : config.ui_dir,
                                         "/ui");
    }
    if (!config.metrics_bearer_token_sha256.empty()) {
      metrics_token = std::make_unique<bridge::TokenSet>(
          std::vector<std::string>{config.metrics_bearer_token_sha256});
    }
    claims_resolver = make_claims_resolver(config);
  }

  bridge::HttpResponse serve_metrics(const bridge::HttpRequest& r) {
    if (!is_read(r)) return method_not_allowed("GET");
    if (metrics_token && !metrics_token->matches(bridge::bearer_token(r.header("Authorization")))) {
      auto resp = bridge::json_error(401, "unauthorized", "this /metrics needs a bearer token");
      resp.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"meshhook-stats metrics\"");
      return resp;
    }
    const auto format = exporter::negotiate_format(r.header("Accept"));
    bridge::HttpResponse resp;
    resp.content_type = std::string(exporter::content_type(format));
    std::string text;
    text.reserve(last_exposition_size.load(std::memory_order_relaxed) * 9 / 8);
    exporter::serialize(text, registry.collect(), format);
    last_exposition_size.store(text.size(), std::memory_order_relaxed);
    if (exporter::accepts_gzip(r.header("Accept-Encoding"))) {
      resp.body = exporter::gzip(text);
      resp.headers.emplace_back("Content-Encoding", "gzip");
    } else {
      resp.body = std::move(text);
    }
    resp.headers.emplace_back("Vary", "Accept, Accept-Encoding");
    return resp;
  }

  // GET /api/v1/tenants/{project_id}/metrics: the /metrics exposition cut down to one
  // tenant's series, for a caller whose JWT may read that project (as row level security
  // decides). A project the caller may not read answers as one that does not exist.
  bridge::HttpResponse serve_tenant_metrics(const bridge::HttpRequest& r) {
    static constexpr std::string_view prefix = "/api/v1/tenants/", suffix = "/metrics";
    const std::string_view path = r.path;
    if (path.size() <= prefix.size() + suffix.size() || !path.starts_with(prefix) ||
        !path.ends_with(suffix)) {
      return bridge::json_error(404, "not_found",
                                "no such resource; a tenant's metrics are at "
                                "/api/v1/tenants/{project_id}/metrics");
    }
    if (!is_read(r)) return method_not_allowed("GET");
    auto caller = claims_resolver->resolve(r);
    if (!caller.ok()) return caller.error;
    const auto id = bridge::Uuid::parse(
        path.substr(prefix.size(), path.size() - prefix.size() - suffix.size()));
    if (!id) return bridge::json_error(400, "invalid_parameter", "project_id: not a uuid");
    const auto project = id->to_string();
    try {
      if (!statistics->may_read_project(*caller.claims, project)) {
        return bridge::json_error(404, "not_found", "no such project");
      }
    } catch (const bridge::ConnectionPoolTimeout&) {
      auto resp = bridge::json_error(503, "busy", "every database connection is busy; retry");
      resp.headers.emplace_back("Retry-After", "1");
      return resp;
    } catch (const std::exception&) {
      spdlog::warn("tenant metrics: the database could not say who may read {}", project);
      auto resp = bridge::json_error(503, "database_unavailable",
                                     "the database is unreachable; retry later");
      resp.headers.emplace_back("Retry-After", "5");
      return resp;
    }
    const auto format = exporter::negotiate_format(r.header("Accept"));
    bridge::HttpResponse resp;
    resp.content_type = std::string(exporter::content_type(format));
    exporter::serialize(resp.body, exporter::select_series(registry.collect(), "tenant", project),
                        format);
    if (exporter::accepts_gzip(r.header("Accept-Encoding"))) {
      resp.body = exporter::gzip(resp.body);
      resp.headers.emplace_back("Content-Encoding", "gzip");
    }
    resp.headers.emplace_back("Vary", "Accept, Accept-Encoding");
    resp.headers.emplace_back("Cache-Control", "private, no-store");
    return resp;
  }

  bridge::HttpResponse healthz(const bridge::HttpRequest& r) {
    if (!is_read(r)) return method_not_allowed("GET");
    return {200, "application/json", R"({"status":"ok"})", {}};
  }

  // Unauthenticated, so it says only a fixed reason; the details (the libpq error names
  // host, port, user and database) go to the log, once each time the reason changes.
  bridge::HttpResponse readyz(const bridge::HttpRequest& r) {
    if (!is_read(r)) return method_not_allowed("GET");
    if (!storage) {
      return {200,
              "application/json",
              nlohmann::json{{"status", "ready"}, {"database", "not configured"}}.dump(),
              {}};
    }
    const bool up = storage->database_up();
    const bool ready = storage->ready();
    const char* reason = ready                                         ? ""
                         : !up                                         ? "database_unreachable"
                         : storage->spool().stats().checkpoint_failing ? "spool_checkpoint_failing"
                                                                       : "spool_failed";
    {
      std::lock_guard lock(readiness_mutex);
      if (reason != last_readiness_reason) {
        if (ready) {
          spdlog::info("readyz: ready: {}", storage->readiness_detail());
        } else {
          spdlog::warn("readyz: not ready ({}): {}", reason, storage->readiness_detail());
        }
        last_readiness_reason = reason;
      }
    }
    nlohmann::json body{{"status", ready ? "ready" : "not_ready"},
                        {"database", up ? "up" : "down"}};
    if (!ready) body["reason"] = reason;
    return {ready ? 200 : 503, "application/json", body.dump(), {}};
  }

  void add_metrics_routes(HttpServer& server) {
    server.add({config.metrics_path, "metrics",
                [this](const bridge::HttpRequest& r) { return serve_metrics(r); }});
  }
};

Service::Service(Config config) : impl_(std::make_unique<Impl>(std::move(config))) {}

Service::~Service() { stop(); }

void Service::start() {
  auto& c = impl_->config;
  // Storage first: ingest must not answer 202 before the spool can keep what it accepts.
  bridge::RunSink* sink = &impl_->discard;
  if (impl_->storage) {
    impl_->storage->start();
    sink = &impl_->storage->sink();
  }
  impl_->ingest = std::make_unique<bridge::IngestApi>(
      bridge::IngestOptions{c.ingest_max_body_bytes, c.ingest_max_batch},
      bridge::TokenSet(c.ingest_token_sha256, c.ingest_token_projects), *sink, impl_->run_metrics,
      impl_->registry);
  impl_->api = std::make_unique<HttpServer>("api", c.api, impl_->request_durations);
  impl_->api->add(
      {"/api/v1/runs", "/api/v1/runs",
       [this](const bridge::HttpRequest& r) { return impl_->ingest->handle(r); },
       c.ingest_max_body_bytes,
       [this](const bridge::HttpRequest& r) { return impl_->ingest->refuse_before_body(r); }});
  impl_->api->add(
      {"/healthz", "/healthz", [this](const bridge::HttpRequest& r) { return impl_->healthz(r); }});
  impl_->api->add(
      {"/readyz", "/readyz", [this](const bridge::HttpRequest& r) { return impl_->readyz(r); }});
  if (impl_->storage) {
    impl_->query_pool = std::make_unique<bridge::ConnectionPool>(
        c.database_url, static_cast<std::size_t>(std::max(1, c.database_pool_size)));
    impl_->statistics = std::make_unique<bridge::StatisticsApi>(
        *impl_->query_pool, bridge::StatisticsApiOptions{
                                .request_timeout_ms = c.statistics_request_timeout_ms,
                                .max_buckets = c.statistics_max_buckets,
                                .max_rollup_rows = c.statistics_max_rollup_rows,
                                .max_in_flight_per_caller = c.statistics_max_in_flight_per_caller});
    impl_->api->add(
        {"/api/v1/tenants", "/api/v1/tenants/{project_id}/metrics",
         [this](const bridge::HttpRequest& r) { return impl_->serve_tenant_metrics(r); }});
    for (const char* uri :
         {"/api/v1/statistics/execution-times", "/api/v1/statistics/execution-times/histogram",
          "/api/v1/statistics/queue-times", "/api/v1/statistics/queue-times/histogram",
          "/api/v1/statistics/step-times"}) {
      impl_->api->add({uri, uri, [this](const bridge::HttpRequest& r) {
                         auto caller = impl_->claims_resolver->resolve(r);
                         if (!caller.ok()) return caller.error;
                         return impl_->statistics->handle(r, *caller.claims);
                       }});
    }
  }
  if (impl_->ui) {
    impl_->api->add(
        {"/ui", "/ui", [this](const bridge::HttpRequest& r) { return impl_->ui->serve(r); }});
  }
  if (c.metrics.listen.empty()) {
    impl_->add_metrics_routes(*impl_->api);
  } else {
    impl_->metrics = std::make_unique<HttpServer>("metrics", c.metrics, impl_->request_durations);
    impl_->add_metrics_routes(*impl_->metrics);
    impl_->metrics->add({"/healthz", "/healthz",
                         [this](const bridge::HttpRequest& r) { return impl_->healthz(r); }});
  }
  impl_->api->start();
  if (impl_->metrics) impl_->metrics->start();
  if (c.ingest_token_sha256.empty()) {
    spdlog::warn(
        "no ingest token is configured (ingest.token_sha256): POST /api/v1/runs "
        "answers 401 to everyone");
  }
  if (c.database_url.empty()) {
    spdlog::warn(
        "no database is configured (database.url): runs are observed in /metrics "
        "but not stored");
  }
  for (const auto& line : urls()) spdlog::info("serving {}", line);
}

void Service::stop() {
  if (!impl_) return;
  // Listeners first (in-flight requests finish), then the writer drains what it can.
  if (impl_->api) impl_->api->stop();
  if (impl_->metrics) impl_->metrics->stop();
  if (impl_->storage) impl_->storage->stop();
}

std::vector<std::string> Service::urls() const {
  std::vector<std::string> out;
  const auto api = impl_->api ? impl_->api->urls().front() : std::string();
  const auto metrics = impl_->metrics ? impl_->metrics->urls().front() : api;
  out.push_back("metrics   " + metrics + impl_->config.metrics_path);
  out.push_back("ingest    " + api + "/api/v1/runs");
  out.push_back("health    " + api + "/healthz  " + api + "/readyz");
  if (impl_->statistics) out.push_back("statistics " + api + "/api/v1/statistics/execution-times");
  if (impl_->ui) out.push_back("dashboard " + api + "/ui/");
  return out;
}

}  // namespace meshhook::app
