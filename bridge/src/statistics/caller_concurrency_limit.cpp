#include "meshhook/bridge/statistics/caller_concurrency_limit.h"

#include <algorithm>
#include <utility>

namespace meshhook::bridge {

CallerConcurrencyLimit::CallerConcurrencyLimit(std::size_t max_in_flight)
    : max_in_flight_(std::max<std::size_t>(1, max_in_flight)) {}

CallerConcurrencyLimit::Slot::Slot(CallerConcurrencyLimit* limit, std::string caller) noexcept
    : limit_(limit), caller_(std::move(caller)) {}

CallerConcurrencyLimit::Slot::Slot(Slot&& other) noexcept
    : limit_(std::exchange(other.limit_, nullptr)), caller_(std::move(other.caller_)) {}

CallerConcurrencyLimit::Slot::~Slot() {
  if (limit_) limit_->release(caller_);
}

std::optional<CallerConcurrencyLimit::Slot> CallerConcurrencyLimit::try_acquire(
    std::string_view caller) {
  std::lock_guard lock(mutex_);
  auto it = in_flight_.find(caller);
  if (it == in_flight_.end()) {
    it = in_flight_.emplace(std::string(caller), 0).first;
  } else if (it->second >= max_in_flight_) {
    return std::nullopt;
  }
  ++it->second;
  return Slot(this, std::string(caller));
}

std::size_t CallerConcurrencyLimit::in_flight(std::string_view caller) const {
  std::lock_guard lock(mutex_);
  auto it = in_flight_.find(caller);
  return it == in_flight_.end() ? 0 : it->second;
}

void CallerConcurrencyLimit::release(const std::string& caller) noexcept {
  std::lock_guard lock(mutex_);
  auto it = in_flight_.find(caller);
  if (it == in_flight_.end()) return;
  if (--it->second == 0) in_flight_.erase(it);  // the map holds only callers in flight
}

}  // namespace meshhook::bridge
