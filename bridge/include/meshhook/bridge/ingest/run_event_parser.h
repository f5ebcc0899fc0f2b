#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "meshhook/bridge/storage/run_event.h"

namespace meshhook::bridge {

/// One reason an ingest item was refused.
struct IngestError {
  long index = -1;     // position in the batch; -1 for the request as a whole
  std::string field;   // e.g. "run_id"; empty for the request as a whole
  std::string reason;  // for people: "must be a uuid"
};

struct RunEventParseResult {
  std::vector<RunEvent> events;     // all of them, or none when errors is non-empty
  std::vector<IngestError> errors;  // every bad item and field (at most kMaxErrors)
  bool too_many = false;            // the batch has more than max_batch events (HTTP 413)

  static constexpr std::size_t kMaxErrors = 100;
  bool ok() const noexcept { return errors.empty(); }
};

struct RunEventParserOptions {
  std::size_t max_batch = 1000;
  std::size_t max_workflow_name_length = 200;
};

/// Parses a POST /api/v1/runs body: one run event object or an array of them.
/// All-or-nothing: when any item is bad, events is empty and errors names every problem.
/// now_us is used when an event gives duration_ms instead of started_at/finished_at
/// (finished_at = now). Never throws; not thread-safe (keep one per thread).
class RunEventParser {
 public:
  explicit RunEventParser(RunEventParserOptions options = {});
  ~RunEventParser();
  RunEventParser(const RunEventParser&) = delete;
  RunEventParser& operator=(const RunEventParser&) = delete;

  RunEventParseResult parse(std::string_view body, std::int64_t now_us);
  const RunEventParserOptions& options() const noexcept { return options_; }

 private:
  struct Impl;
  RunEventParserOptions options_;
  Impl* impl_;
};

}  // namespace meshhook::bridge
