#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshhook::bridge {

/// A uuid as 16 bytes; text form is the canonical lower-case 8-4-4-4-12.
struct Uuid {
  std::array<std::uint8_t, 16> bytes{};

  /// Accepts 8-4-4-4-12 hex in either case; nullopt otherwise.
  static std::optional<Uuid> parse(std::string_view text) noexcept;
  std::string to_string() const;
  /// Writes the 36 characters of the canonical form to out.
  void write(char* out) const noexcept;
  friend bool operator==(const Uuid&, const Uuid&) = default;
};

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

/// Parses RFC 3339 date-time with a mandatory offset ("Z" or "+hh:mm"), fractional seconds
/// up to microseconds; returns Unix microseconds, or nullopt.
std::optional<std::int64_t> parse_rfc3339_us(std::string_view text) noexcept;
/// Formats Unix microseconds as RFC 3339 UTC with microseconds ("2026-01-02T03:04:05.123456Z").
std::string format_rfc3339_us(std::int64_t us);

}  // namespace meshhook::bridge
