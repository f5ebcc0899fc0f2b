#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "meshhook/bridge/common/uuid.h"

namespace meshhook::bridge {

enum class RunStatus : std::uint8_t { succeeded = 1, failed = 2, canceled = 3, timeout = 4 };

std::optional<RunStatus> parse_run_status(std::string_view text) noexcept;
std::string_view to_string(RunStatus status) noexcept;

/// One finished workflow run. Times are Unix microseconds (UTC).
struct RunEvent {
  Uuid run_id;
  Uuid workflow_id;
  Uuid project_id;  // the tenant
  RunStatus status = RunStatus::succeeded;
  std::int64_t started_at_us = 0;
  std::int64_t finished_at_us = 0;
  std::string workflow_name;  // optional, may be empty

  std::int64_t duration_us() const noexcept { return finished_at_us - started_at_us; }
  /// Integer milliseconds as stored in execution_time_statistics: rounded half up
  /// (1.4999 ms -> 1, 1.5 ms -> 2).
  std::int64_t execution_time_ms() const noexcept { return (duration_us() + 500) / 1000; }
};

}  // namespace meshhook::bridge
