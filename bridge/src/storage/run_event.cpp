#include "meshhook/bridge/storage/run_event.h"

namespace meshhook::bridge {

std::optional<RunStatus> parse_run_status(std::string_view text) noexcept {
  if (text == "succeeded") return RunStatus::succeeded;
  if (text == "failed") return RunStatus::failed;
  if (text == "canceled") return RunStatus::canceled;
  if (text == "timeout") return RunStatus::timeout;
  return std::nullopt;
}

std::string_view to_string(RunStatus status) noexcept {
  switch (status) {
    case RunStatus::succeeded:
      return "succeeded";
    case RunStatus::failed:
      return "failed";
    case RunStatus::canceled:
      return "canceled";
    case RunStatus::timeout:
      return "timeout";
  }
  return "unknown";
}

}  // namespace meshhook::bridge

namespace meshhook::bridge {

std::optional<StepStatus> parse_step_status(std::string_view text) noexcept {
  if (text == "succeeded") return StepStatus::succeeded;
  if (text == "failed") return StepStatus::failed;
  return std::nullopt;
}

std::string_view to_string(StepStatus status) noexcept {
  return status == StepStatus::failed ? "failed" : "succeeded";
}

}  // namespace meshhook::bridge
