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

ConnectionPool::Lease ConnectionPool::acquire() {
  std::unique_lock lock(mutex_);
  if (!freed_.wait_for(lock, acquire_timeout_, [&] { return !idle_.empty() || open_ < size_; })) {
    throw ConnectionPoolTimeout("every database connection stayed busy");
  }
  if (!idle_.empty()) {
    auto c = std::move(idle_.back());
    idle_.pop_back();
    return Lease(this, std::move(c));
  }
  ++open_;  // reserved before connecting, so the pool never opens more than size_
  lock.unlock();
  try {
    return Lease(this, std::make_unique<pqxx::connection>(url_));
  } catch (...) {
    lock.lock();
    --open_;
    freed_.notify_one();
    throw;
  }
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
  if (keep) {
    idle_.push_back(std::move(connection));
  } else {
    --open_;
  }
  freed_.notify_one();
}

std::size_t ConnectionPool::open() const {
  std::lock_guard lock(mutex_);
  return open_;
}

}  // namespace meshhook::bridge
