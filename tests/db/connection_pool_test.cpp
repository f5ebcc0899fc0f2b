// The query side's connection pool against a real Postgres: once waiters have waited its
// patience they are served in the order they came and a thread arriving as a connection is
// given back does not jump the queue; a dropped connection's slot goes to the next waiter.

#include "meshhook/bridge/storage/connection_pool.h"

#include <chrono>
#include <future>
#include <mutex>
#include <optional>
#include <pqxx/pqxx>
#include <string>
#include <thread>
#include <vector>

#include "db_support.h"

using meshhook::testing::TestDatabase;
namespace bridge = meshhook::bridge;

namespace {

void wait_for_waiters(const bridge::ConnectionPool& pool, std::size_t n) {
  while (pool.waiting() < n) std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

}  // namespace

TEST_CASE("the pool serves waiters that waited first come, first served", "[db][pool]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(db.url(), 1, std::chrono::seconds(10));
  std::mutex m;
  std::vector<std::string> order;
  auto record = [&](const std::string& who) {
    std::lock_guard lock(m);
    order.push_back(who);
  };

  auto first = std::make_optional(pool.acquire());
  auto waiter = [&](std::string who) {
    auto lease = pool.acquire();
    record(who);
    pqxx::nontransaction(lease.connection()).exec("select pg_sleep(0.05)");
  };
  auto a = std::async(std::launch::async, waiter, "a");
  wait_for_waiters(pool, 1);
  auto b = std::async(std::launch::async, waiter, "b");
  wait_for_waiters(pool, 2);
  // Given back once a and b have waited longer than the pool's patience (20 ms), then asked
  // for again at once: the newcomer queues behind them.
  std::this_thread::sleep_for(std::chrono::milliseconds(60));
  first.reset();
  {
    auto lease = pool.acquire();
    record("newcomer");
  }
  a.get();
  b.get();
  CHECK(order == std::vector<std::string>{"a", "b", "newcomer"});
  CHECK(pool.open() == 1);
  CHECK(pool.waiting() == 0);
}

TEST_CASE("a dropped connection's slot goes to the next waiter, who opens a new one",
          "[db][pool]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(db.url(), 1, std::chrono::seconds(10));
  auto first = std::make_optional(pool.acquire());
  const int first_pid = first->connection().backendpid();
  auto waiter = std::async(std::launch::async, [&] {
    auto lease = pool.acquire();
    return lease.connection().backendpid();
  });
  wait_for_waiters(pool, 1);
  first->discard();
  first.reset();
  const int second_pid = waiter.get();
  CHECK(second_pid != first_pid);
  CHECK(pool.open() == 1);
}

TEST_CASE("a waiter that times out leaves the queue", "[db][pool]") {
  auto server = meshhook::testing::server_url();
  if (server.empty()) return;
  TestDatabase db(server);
  bridge::ConnectionPool pool(db.url(), 1, std::chrono::milliseconds(50));
  auto first = std::make_optional(pool.acquire());
  CHECK_THROWS_AS(pool.acquire(), bridge::ConnectionPoolTimeout);
  CHECK(pool.waiting() == 0);
  first.reset();
  auto again = pool.acquire();  // the connection went to idle, not to the gone waiter
  CHECK(pool.open() == 1);
}
