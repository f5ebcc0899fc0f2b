#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "meshhook/bridge/common/uuid.h"

namespace meshhook::bridge {

enum class RunStatus : std::uint8_t { succeeded = 1, failed = 2, canceled = 3, timeout = 4 };

std::optional<RunStatus> parse_run_status(std::string_view text) noexcept;
std::string_view to_string(RunStatus status) noexcept;

/// The outcome of a step's last attempt.
enum class StepStatus : std::uint8_t { succeeded = 1, failed = 2 };

std::optional<StepStatus> parse_step_status(std::string_view text) noexcept;
std::string_view to_string(StepStatus status) noexcept;

/// Integer milliseconds as stored in the statistics tables: microseconds rounded half up
/// (1.4999 ms -> 1, 1.5 ms -> 2).
constexpr std::int64_t rounded_ms(std::int64_t us) noexcept { return (us + 500) / 1000; }

/// One step of a finished run: its first start to its last end, every attempt included.
struct RunStep {
  // Limits of step_time_statistics (0011), checked by the parser and relied on by the spool.
  static constexpr std::size_t kMaxIdBytes = 200;
  static constexpr std::size_t kMaxTypeBytes = 100;
  static constexpr std::uint32_t kMaxAttempts = 1000;

  std::string id;    // the node id in the workflow definition, 1..200 bytes
  std::string type;  // the node type, may be empty
  StepStatus status = StepStatus::succeeded;
  std::uint32_t attempts = 1;
  std::int64_t started_at_us = 0;
  std::int64_t finished_at_us = 0;

  std::int64_t duration_us() const noexcept { return finished_at_us - started_at_us; }
};

/// One finished workflow run. Times are Unix microseconds (UTC).
struct RunEvent {
  static constexpr std::size_t kMaxSteps = 500;

  Uuid run_id;
  Uuid workflow_id;
  Uuid project_id;  // the tenant
  RunStatus status = RunStatus::succeeded;
  std::int64_t started_at_us = 0;
  std::int64_t finished_at_us = 0;
  std::string workflow_name;  // optional, may be empty
  /// When the run's job was enqueued; 0 = not known (the run has no queue row).
  std::int64_t queued_at_us = 0;
  std::vector<RunStep> steps;  // unique ids; empty = not known

  std::int64_t duration_us() const noexcept { return finished_at_us - started_at_us; }
  std::int64_t execution_time_ms() const noexcept { return rounded_ms(duration_us()); }
  /// started_at - queued_at; meaningful only when queued_at_us != 0.
  std::int64_t queue_wait_us() const noexcept { return started_at_us - queued_at_us; }
  /// Whether the run carries anything for queue_time_statistics or step_time_statistics.
  bool has_details() const noexcept { return queued_at_us != 0 || !steps.empty(); }
};

}  // namespace meshhook::bridge
