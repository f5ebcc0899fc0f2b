#pragma once
// One deadline for a whole statistics request: every statement it runs gets the time that
// is left (statement_timeout, local to the transaction), so a request of several statements
// holds a pooled connection no longer than its budget. Not thread-safe; one per request.

#include <chrono>
#include <stdexcept>

namespace pqxx {
class transaction_base;
}

namespace meshhook::bridge {

/// Thrown when a request's deadline passed before a statement could start.
class RequestTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class RequestDeadline {
 public:
  using Clock = std::chrono::steady_clock;

  explicit RequestDeadline(std::chrono::milliseconds budget, Clock::time_point now = Clock::now())
      : at_(now + budget) {}

  /// Whole milliseconds left at now (0 or less: passed).
  std::chrono::milliseconds remaining(Clock::time_point now = Clock::now()) const {
    return std::chrono::duration_cast<std::chrono::milliseconds>(at_ - now);
  }
  bool expired(Clock::time_point now = Clock::now()) const { return remaining(now).count() <= 0; }

  /// Gives the next statements of tx the time left (set_config('statement_timeout', ..., true)),
  /// or throws RequestTimeout when none is.
  void limit(pqxx::transaction_base& tx) const;

 private:
  Clock::time_point at_;
};

}  // namespace meshhook::bridge
