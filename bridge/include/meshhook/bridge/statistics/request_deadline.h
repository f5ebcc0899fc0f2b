#pragma once
// One deadline for a whole statistics request: every statement it runs gets the time that
// is left (statement_timeout, local to the transaction), so a request of several statements
// holds a pooled connection no longer than its budget. Setting it costs a round trip, so a
// statement that follows within kSlack of the last setting keeps that one (and may run up to
// kSlack past the deadline). Not thread-safe; one per request.

#include <chrono>
#include <optional>
#include <stdexcept>
#include <string>

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

  /// How long a statement_timeout set for this deadline stays good enough to reuse.
  static constexpr std::chrono::milliseconds kSlack{20};

  /// Gives the next statements of tx the time left (set_config('statement_timeout', ..., true))
  /// unless it was set less than kSlack ago, or throws RequestTimeout when none is left.
  void limit(pqxx::transaction_base& tx) const;

  /// For a statement that sets statement_timeout itself (as the first of a request does): the
  /// milliseconds to set, as text, remembered as set now. Throws RequestTimeout when none is left.
  std::string timeout_to_set(Clock::time_point now = Clock::now()) const;

 private:
  Clock::time_point at_;
  mutable std::optional<Clock::time_point> set_at_;
};

}  // namespace meshhook::bridge
