#pragma once

#include <span>
#include <string>

#include "meshhook/bridge/storage/run_event.h"

namespace meshhook::bridge {

/// Where accepted run events go to be kept (the spool, in production).
/// accept() is called from many HTTP threads at once and must be thread-safe.
class RunSink {
 public:
  enum class Outcome { accepted, full, failed };
  struct Result {
    Outcome outcome = Outcome::accepted;
    std::string message;  // for logs and the HTTP error when not accepted
  };

  virtual ~RunSink() = default;
  /// Returns accepted only once every event is durably kept; otherwise none of them is.
  virtual Result accept(std::span<const RunEvent> events) = 0;
};

/// Keeps nothing: for deployments without a database (metrics only).
class DiscardingRunSink final : public RunSink {
 public:
  Result accept(std::span<const RunEvent>) override { return {}; }
};

}  // namespace meshhook::bridge
