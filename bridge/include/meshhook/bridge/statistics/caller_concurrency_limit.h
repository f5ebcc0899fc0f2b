#pragma once
// At most so many statistics requests in flight per caller (the JWT subject), so that one
// caller cannot hold every pooled connection. Thread-safe.

#include <cstddef>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

namespace meshhook::bridge {

class CallerConcurrencyLimit {
 public:
  /// max_in_flight: at least 1.
  explicit CallerConcurrencyLimit(std::size_t max_in_flight);
  CallerConcurrencyLimit(const CallerConcurrencyLimit&) = delete;
  CallerConcurrencyLimit& operator=(const CallerConcurrencyLimit&) = delete;

  /// One request's place; the place is given back when the slot ends.
  class Slot {
   public:
    Slot(Slot&& other) noexcept;
    Slot& operator=(Slot&&) = delete;
    ~Slot();

   private:
    friend class CallerConcurrencyLimit;
    Slot(CallerConcurrencyLimit* limit, std::string caller) noexcept;
    CallerConcurrencyLimit* limit_;
    std::string caller_;
  };

  /// A slot for caller, or nullopt when caller already has max_in_flight requests running.
  std::optional<Slot> try_acquire(std::string_view caller);

  /// Requests of caller in flight now.
  std::size_t in_flight(std::string_view caller) const;
  std::size_t max_in_flight() const noexcept { return max_in_flight_; }

 private:
  void release(const std::string& caller) noexcept;

  std::size_t max_in_flight_;
  mutable std::mutex mutex_;
  std::map<std::string, std::size_t, std::less<>> in_flight_;  // only callers with some
};

}  // namespace meshhook::bridge
