// libFuzzer: the ingest body parser (POST /api/v1/runs), the first code a producer's bytes reach.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "meshhook/bridge/ingest/run_event_parser.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  static meshhook::bridge::RunEventParser parser(
      meshhook::bridge::RunEventParserOptions{.max_batch = 100});
  const auto result = parser.parse(std::string_view(reinterpret_cast<const char*>(data), size),
                                   1'714'521'600'000'000);
  // The parser's contract: all or nothing, and a bounded error list.
  if (!result.ok() && !result.events.empty()) __builtin_trap();
  if (result.errors.size() > meshhook::bridge::RunEventParseResult::kMaxErrors) __builtin_trap();
  // What the tables will be given: steps within their limits, queue waits not negative.
  for (const auto& e : result.events) {
    if (e.queued_at_us != 0 && e.queued_at_us > e.started_at_us) __builtin_trap();
    if (e.steps.size() > meshhook::bridge::RunEvent::kMaxSteps) __builtin_trap();
    for (const auto& s : e.steps) {
      if (s.id.empty() || s.id.size() > meshhook::bridge::RunStep::kMaxIdBytes) __builtin_trap();
      if (s.type.size() > meshhook::bridge::RunStep::kMaxTypeBytes) __builtin_trap();
      if (s.attempts < 1 || s.attempts > meshhook::bridge::RunStep::kMaxAttempts) __builtin_trap();
      if (s.finished_at_us < s.started_at_us) __builtin_trap();
    }
  }
  return 0;
}
