#pragma once

#include <cstddef>
#include <memory>
#include <optional>

#include "meshhook/bridge/auth/token_set.h"
#include "meshhook/bridge/common/http.h"
#include "meshhook/bridge/storage/run_sink.h"
#include "meshhook/exporter/registry.h"
#include "meshhook/exporter/run_metrics.h"

namespace meshhook::bridge {

struct IngestOptions {
  std::size_t max_body_bytes = 4 * 1024 * 1024;
  std::size_t max_batch = 5000;
};

/// POST /api/v1/runs: authenticates the producer, validates every event, checks that a token
/// limited to some projects writes only those, hands the batch to the sink and, once it is
/// kept, observes it in the run metrics. Thread-safe.
class IngestApi {
 public:
  IngestApi(IngestOptions options, TokenSet tokens, RunSink& sink, exporter::RunMetrics& metrics,
            exporter::Registry& registry);
  ~IngestApi();

  HttpResponse handle(const HttpRequest& request);
  /// What handle() would refuse from the method and headers alone (method, token, media
  /// type), so a server can answer before it reads a body; nullopt when the body is wanted.
  std::optional<HttpResponse> refuse_before_body(const HttpRequest& request);
  const IngestOptions& options() const noexcept { return options_; }

 private:
  struct Counters;
  std::optional<HttpResponse> refuse_other_projects(const HttpRequest& request,
                                                    const std::vector<RunEvent>& events);
  void observe(const std::vector<RunEvent>& events);

  IngestOptions options_;
  TokenSet tokens_;
  RunSink& sink_;
  exporter::RunMetrics& metrics_;
  std::unique_ptr<Counters> counters_;
};

}  // namespace meshhook::bridge
