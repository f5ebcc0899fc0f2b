// libFuzzer: the statistics query string parser and the RFC 3339 reader it uses.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/statistics/statistics_params.h"

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view query(reinterpret_cast<const char*>(data), size);
  using meshhook::bridge::StatisticsEndpoint;
  for (auto endpoint : {StatisticsEndpoint::execution_times, StatisticsEndpoint::queue_times,
                        StatisticsEndpoint::step_times}) {
    const auto result = meshhook::bridge::parse_statistics_params(query, endpoint);
    if (!result.ok()) continue;
    const auto& p = result.params;
    // step-times reads exactly one workflow's rows.
    if (endpoint == StatisticsEndpoint::step_times && p.workflow_ids.size() != 1) __builtin_trap();
    if (p.statuses.empty()) __builtin_trap();
    if (p.workflow_ids.size() > meshhook::bridge::StatisticsParams::kMaxWorkflowIds)
      __builtin_trap();
    if (p.limit < 1 || p.limit > meshhook::bridge::StatisticsParams::kMaxLimit) __builtin_trap();
    for (const auto& id : p.workflow_ids) {
      if (id.size() != 36) __builtin_trap();  // only canonical uuids reach SQL parameters
    }
  }
  if (const auto us = meshhook::bridge::parse_rfc3339(query)) {
    (void)meshhook::bridge::format_rfc3339_utc(*us);
  }
  (void)meshhook::bridge::is_calendar_date(query);
  return 0;
}
