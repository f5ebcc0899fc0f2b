#include "meshhook/bridge/storage/connection_pool.h"

#include <pqxx/pqxx>

#include "detail/conninfo.h"

namespace meshhook::bridge {

ConnectionPool::ConnectionPool(std::string url, std::size_t size,
                               std::chrono::milliseconds acquire_timeout)
    : url_(detail::with_connect_timeout(url)),
      size_(size == 0 ? 1 : size),
      acquire_timeout_(acquire_timeout) {}

ConnectionPool::~ConnectionPool() = default;

ConnectionPool::Lease::Lease(ConnectionPool* pool,
                             std::unique_ptr<pqxx::connection> connection) noexcept
    : pool_(pool), connection_(std::move(connection)) {}

ConnectionPool::Lease::Lease(Lease&& other) noexcept
    : pool_(other.pool_), connection_(std::move(other.connection_)), discard_(other.discard_) {
  other.pool_ = nullptr;
}

ConnectionPool::Lease::~Lease() {
  if (pool_ != nullptr && connection_) pool_->give_back(std::move(connection_), discard_);
}

bool ConnectionPool::oldest_waited_too_long() const {
  return !waiters_.empty() &&
         std::chrono::steady_clock::now() - waiters_.front()->since >= kPatience;
}

ConnectionPool::Lease ConnectionPool::acquire() {
  std::unique_lock lock(mutex_);
  if (!idle_.empty() && !oldest_waited_too_long()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(c));
  }
  if (waiters_.empty() && open_ < size_) {
    ++open_;  // reserved before connecting, so the pool never opens more than size_
    lock.unlock();
    return open_reserved();
  }
  Waiter me;
  me.since = std::chrono::steady_clock::now();
  waiters_.push_back(&me);
  // Granted (a connection, or a slot to open one), or first in line with one idle.
  const bool served = me.turn.wait_for(lock, acquire_timeout_, [&] {
    return me.granted || (!idle_.empty() && waiters_.front() == &me);
  });
  if (!served) {
    std::erase(waiters_, &me);
    if (!idle_.empty() && !waiters_.empty()) waiters_.front()->turn.notify_one();
    throw ConnectionPoolTimeout("every database connection stayed busy");
  }
  if (!me.granted) {
    waiters_.pop_front();
    me.connection = std::move(idle_.back());
    idle_.pop_back();
    if (!idle_.empty() && !waiters_.empty()) waiters_.front()->turn.notify_one();
  }
  if (me.connection) return Lease(this, std::move(me.connection));
  lock.unlock();
  return open_reserved();  // granted a slot: open_ already counts it
}

ConnectionPool::Lease ConnectionPool::open_reserved() {
  try {
    return Lease(this, std::make_unique<pqxx::connection>(url_));
  } catch (...) {
    std::lock_guard lock(mutex_);
    --open_;
    if (!waiters_.empty()) grant_next(nullptr);  // the next in line may try
    throw;
  }
}

void ConnectionPool::grant_next(std::unique_ptr<pqxx::connection> connection) {
  Waiter* next = waiters_.front();
  waiters_.pop_front();
  if (!connection) ++open_;  // a slot to open, reserved for it
  next->connection = std::move(connection);
  next->granted = true;
  next->turn.notify_one();
}

void ConnectionPool::give_back(std::unique_ptr<pqxx::connection> connection,
                               bool discard) noexcept {
  bool keep = !discard;
  if (keep) {
    try {
      keep = connection->is_open();
    } catch (...) {
      keep = false;
    }
  }
  if (!keep) {
    try {
      connection.reset();
    } catch (...) {
    }
  }
  std::lock_guard lock(mutex_);
  if (!keep) {
    --open_;
    if (!waiters_.empty()) grant_next(nullptr);  // the slot is the oldest waiter's
  } else if (oldest_waited_too_long()) {
    grant_next(std::move(connection));
  } else {
    idle_.push_back(std::move(connection));
    if (!waiters_.empty()) waiters_.front()->turn.notify_one();
  }
}

std::size_t ConnectionPool::open() const {
  std::lock_guard lock(mutex_);
  return open_;
}

std::size_t ConnectionPool::waiting() const {
  std::lock_guard lock(mutex_);
  return waiters_.size();
}

}  // namespace meshhook::bridge
