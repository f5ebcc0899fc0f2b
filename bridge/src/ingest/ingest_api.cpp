#include "meshhook/bridge/ingest/ingest_api.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "meshhook/bridge/ingest/run_event_parser.h"

namespace meshhook::bridge {

struct IngestApi::Counters {
  exporter::Counter& accepted;
  exporter::Counter& invalid;
  exporter::Counter& unauthorized;
  exporter::Counter& forbidden;
  exporter::Counter& too_large;
  exporter::Counter& unsupported;
  exporter::Counter& spool_full;
  exporter::Counter& error;
  exporter::Counter& runs_accepted;
  exporter::Counter& runs_rejected;

  static Counters make(exporter::Registry& registry) {
    auto& requests = registry.add_counter({.name = "meshhook_stats_ingest_requests_total",
                                           .help = "Ingest requests by outcome.",
                                           .label_names = {"outcome"}});
    auto& runs = registry.add_counter(
        {.name = "meshhook_stats_ingest_runs_total",
         .help = "Run events received by outcome (rejected: in a request that was refused).",
         .label_names = {"outcome"}});
    return Counters{requests.with({"accepted"}),     requests.with({"invalid"}),
                    requests.with({"unauthorized"}), requests.with({"forbidden_project"}),
                    requests.with({"too_large"}),    requests.with({"unsupported_media_type"}),
                    requests.with({"spool_full"}),   requests.with({"error"}),
                    runs.with({"accepted"}),         runs.with({"rejected"})};
  }
};

IngestApi::IngestApi(IngestOptions options, TokenSet tokens, RunSink& sink,
                     exporter::RunMetrics& metrics, exporter::Registry& registry)
    : options_(options),
      tokens_(std::move(tokens)),
      sink_(sink),
      metrics_(metrics),
      counters_(std::make_unique<Counters>(Counters::make(registry))) {}

IngestApi::~IngestApi() = default;

namespace {

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

bool is_json(std::string_view content_type) {
  const auto semi = content_type.find(';');
  auto media = content_type.substr(0, semi);
  while (!media.empty() && media.back() == ' ') media.remove_suffix(1);
  constexpr std::string_view kJson = "application/json";
  if (media.size() != kJson.size()) return false;
  for (std::size_t i = 0; i < media.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(media[i])) != kJson[i]) return false;
  }
  return true;
}

}  // namespace

std::optional<HttpResponse> IngestApi::refuse_before_body(const HttpRequest& request) {
  if (request.method != "POST") {
    auto r = json_error(405, "method_not_allowed", "use POST to send run events");
    r.headers.emplace_back("Allow", "POST");
    return r;
  }
  if (tokens_.empty() || !tokens_.matches(bearer_token(request.header("Authorization")))) {
    counters_->unauthorized.inc();
    auto r = json_error(401, "unauthorized",
                        tokens_.empty() ? "ingest is disabled: no ingest token is configured"
                                        : "a valid ingest token is required: "
                                          "Authorization: Bearer <token>");
    r.headers.emplace_back("WWW-Authenticate", "Bearer realm=\"meshhook-stats ingest\"");
    return r;
  }
  if (!is_json(request.header("Content-Type"))) {
    counters_->unsupported.inc();
    return json_error(415, "unsupported_media_type", "send run events as application/json");
  }
  return std::nullopt;
}

// A token limited to some projects writes only those: any other project in the batch refuses
// the whole request, naming each event.
std::optional<HttpResponse> IngestApi::refuse_other_projects(const HttpRequest& request,
                                                             const std::vector<RunEvent>& events) {
  const auto grant = tokens_.find(bearer_token(request.header("Authorization")));
  if (!grant || grant->empty()) return std::nullopt;
  nlohmann::json details = nlohmann::json::array();
  std::string first;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (std::find(grant->begin(), grant->end(), events[i].project_id) != grant->end()) continue;
    if (details.size() < 100) {
      details.push_back({{"index", i},
                         {"field", "project_id"},
                         {"reason", "is not a project this token may write"}});
    }
    if (first.empty()) {
      first = "event " + std::to_string(i) + ": project_id " + events[i].project_id.to_string() +
              " is not a project this token may write";
    }
  }
  if (details.empty()) return std::nullopt;
  counters_->forbidden.inc();
  counters_->runs_rejected.inc(static_cast<double>(events.size()));
  HttpResponse r;
  r.status = 403;
  r.body = nlohmann::json{{"error", "forbidden_project"},
                          {"message", first + "; nothing was accepted"},
                          {"details", std::move(details)}}
               .dump();
  return r;
}

// Observed only once kept, so a refused batch that is retried is never counted twice.
void IngestApi::observe(const std::vector<RunEvent>& events) {
  char run_id[36];
  char workflow[36];
  char tenant[36];
  std::vector<exporter::StepObservation> steps;
  for (const auto& e : events) {
    e.run_id.write(run_id);
    e.workflow_id.write(workflow);
    e.project_id.write(tenant);
    exporter::RunObservation run{std::string_view(tenant, 36),
                                 std::string_view(workflow, 36),
                                 to_string(e.status),
                                 static_cast<double>(e.duration_us()) / 1e6,
                                 std::string_view(run_id, 36),
                                 e.workflow_name,
                                 static_cast<double>(e.finished_at_us) / 1e6};
    if (e.queued_at_us != 0) run.queue_seconds = static_cast<double>(e.queue_wait_us()) / 1e6;
    steps.clear();
    for (const auto& s : e.steps) {
      steps.push_back({s.id, to_string(s.status), static_cast<double>(s.duration_us()) / 1e6});
    }
    run.steps = steps;
    metrics_.observe(run);
  }
}

HttpResponse IngestApi::handle(const HttpRequest& request) {
  if (auto refused = refuse_before_body(request)) return std::move(*refused);
  if (request.body.size() > options_.max_body_bytes) {
    counters_->too_large.inc();
    return json_error(413, "payload_too_large",
                      "the body is larger than " + std::to_string(options_.max_body_bytes) +
                          " bytes; send smaller batches");
  }

  // One parser per thread (simdjson reuses its buffers); rebuilt if limits differ.
  thread_local std::unique_ptr<RunEventParser> parser;
  if (!parser || parser->options().max_batch != options_.max_batch) {
    parser = std::make_unique<RunEventParser>(RunEventParserOptions{options_.max_batch, 200});
  }
  auto parsed = parser->parse(request.body, now_us());
  if (!parsed.ok()) {
    if (parsed.too_many) {
      counters_->too_large.inc();
      return json_error(413, "payload_too_large", parsed.errors.front().reason);
    }
    counters_->invalid.inc();
    nlohmann::json details = nlohmann::json::array();
    for (const auto& e : parsed.errors) {
      nlohmann::json d{{"field", e.field}, {"reason", e.reason}};
      d["index"] = e.index >= 0 ? nlohmann::json(e.index) : nlohmann::json(nullptr);
      details.push_back(std::move(d));
    }
    HttpResponse r;
    r.status = 400;
    const auto& first = parsed.errors.front();
    std::string message = first.index < 0 ? first.reason
                                          : "event " + std::to_string(first.index) + ": " +
                                                first.field + " " + first.reason;
    if (parsed.errors.size() > 1) {
      message += " (and " + std::to_string(parsed.errors.size() - 1) + " more problems)";
    }
    message += "; nothing was accepted";
    r.body =
        nlohmann::json{
            {"error", "invalid_run_event"}, {"message", message}, {"details", std::move(details)}}
            .dump();
    return r;
  }

  if (auto refused = refuse_other_projects(request, parsed.events)) return std::move(*refused);

  const auto n = parsed.events.size();
  const auto kept = sink_.accept(parsed.events);
  if (kept.outcome != RunSink::Outcome::accepted) {
    counters_->runs_rejected.inc(static_cast<double>(n));
    if (kept.outcome == RunSink::Outcome::full) {
      counters_->spool_full.inc();
      auto r = json_error(503, "spool_full",
                          "the local spool is full (the database is behind or down); nothing "
                          "was accepted, retry later");
      r.headers.emplace_back("Retry-After", "5");
      return r;
    }
    counters_->error.inc();
    spdlog::error("ingest: could not keep {} run events: {}", n, kept.message);
    auto r = json_error(503, "unavailable",
                        "the run events could not be stored; nothing was "
                        "accepted, retry later");
    r.headers.emplace_back("Retry-After", "5");
    return r;
  }

  observe(parsed.events);
  counters_->accepted.inc();
  counters_->runs_accepted.inc(static_cast<double>(n));
  HttpResponse r;
  r.status = 202;
  r.body = "{\"accepted\":" + std::to_string(n) + "}";
  return r;
}

}  // namespace meshhook::bridge
