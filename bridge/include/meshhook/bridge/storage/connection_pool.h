#pragma once
// A small pool of Postgres connections for the query side: one connection belongs to one
// thread at a time, connections open lazily, and a connection that was lost is dropped
// rather than handed out again. Thread-safe.
//
// Fair enough under overload: a thread that arrives as a connection comes back may take it
// (the connection does not sit idle while a sleeping waiter wakes, which on 2 busy cores cost
// a fifth of the throughput), but once the oldest waiter has waited kPatience, connections go
// to the waiters in order and newcomers queue behind them (barging without that bound made
// the p99 of a busy request kind twenty times its median).

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <memory>
#include <mutex>
#include <pqxx/connection>
#include <stdexcept>
#include <string>
#include <vector>

namespace meshhook::bridge {

/// Thrown by ConnectionPool::acquire when every connection stayed busy for the timeout.
class ConnectionPoolTimeout : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class ConnectionPool {
 public:
  /// size: at most this many connections open at once (at least 1).
  ConnectionPool(std::string url, std::size_t size,
                 std::chrono::milliseconds acquire_timeout = std::chrono::milliseconds(2000));
  ~ConnectionPool();
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;

  /// A connection lent to the caller until the lease ends. discard() drops it (call it when
  /// the connection broke or its session state is unknown).
  class Lease {
   public:
    Lease(Lease&& other) noexcept;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    pqxx::connection& connection() const noexcept { return *connection_; }
    void discard() noexcept { discard_ = true; }

   private:
    friend class ConnectionPool;
    Lease(ConnectionPool* pool, std::unique_ptr<pqxx::connection> connection) noexcept;
    ConnectionPool* pool_;
    std::unique_ptr<pqxx::connection> connection_;
    bool discard_ = false;
  };

  /// An idle connection, or a new one while fewer than size are open. Throws
  /// ConnectionPoolTimeout when none frees up in time, pqxx::broken_connection when a new
  /// connection cannot be opened.
  Lease acquire();

  std::size_t size() const noexcept { return size_; }
  /// Connections open now (lent and idle).
  std::size_t open() const;
  /// Threads waiting in acquire() now.
  std::size_t waiting() const;

 private:
  void give_back(std::unique_ptr<pqxx::connection> connection, bool discard) noexcept;

  // A thread in acquire() waiting its turn. Granted either a connection or, with none given
  // (connection null), a reserved slot to open a new one.
  struct Waiter {
    std::chrono::steady_clock::time_point since;
    std::condition_variable turn;
    std::unique_ptr<pqxx::connection> connection;
    bool granted = false;
  };
  static constexpr std::chrono::milliseconds kPatience{20};
  bool oldest_waited_too_long() const;  // mutex_ held
  Lease open_reserved();
  void grant_next(std::unique_ptr<pqxx::connection> connection);  // mutex_ held

  std::string url_;
  std::size_t size_;
  std::chrono::milliseconds acquire_timeout_;
  mutable std::mutex mutex_;
  std::deque<Waiter*> waiters_;  // oldest first
  std::vector<std::unique_ptr<pqxx::connection>> idle_;
  std::size_t open_ = 0;  // lent, idle and being opened
};

}  // namespace meshhook::bridge
