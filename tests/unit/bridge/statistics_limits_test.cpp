#include <catch2/catch.hpp>
#include <chrono>
#include <optional>
#include <vector>

#include "meshhook/bridge/statistics/caller_concurrency_limit.h"
#include "meshhook/bridge/statistics/request_deadline.h"

using namespace meshhook::bridge;
using namespace std::chrono_literals;

TEST_CASE("a caller gets at most max_in_flight slots at once", "[statistics]") {
  CallerConcurrencyLimit limit(2);
  auto a = limit.try_acquire("alice");
  auto b = limit.try_acquire("alice");
  REQUIRE(a);
  REQUIRE(b);
  CHECK(limit.in_flight("alice") == 2);
  CHECK_FALSE(limit.try_acquire("alice"));
  CHECK(limit.in_flight("alice") == 2);  // a refusal takes nothing
}

TEST_CASE("one caller at the limit does not hold back another", "[statistics]") {
  CallerConcurrencyLimit limit(1);
  auto a = limit.try_acquire("alice");
  REQUIRE(a);
  CHECK_FALSE(limit.try_acquire("alice"));
  auto b = limit.try_acquire("bob");
  CHECK(b);
  CHECK(limit.in_flight("bob") == 1);
}

TEST_CASE("a slot that ends gives its place back", "[statistics]") {
  CallerConcurrencyLimit limit(1);
  {
    std::vector<CallerConcurrencyLimit::Slot> held;
    held.push_back(*limit.try_acquire("alice"));  // moved: still one place taken
    CHECK(limit.in_flight("alice") == 1);
    CHECK_FALSE(limit.try_acquire("alice"));
  }
  CHECK(limit.in_flight("alice") == 0);
  CHECK(limit.try_acquire("alice"));
}

TEST_CASE("a limit of 0 still lets one request through", "[statistics]") {
  CallerConcurrencyLimit limit(0);
  CHECK(limit.max_in_flight() == 1);
  auto a = limit.try_acquire("alice");
  CHECK(a);
  CHECK_FALSE(limit.try_acquire("alice"));
}

TEST_CASE("a request deadline counts down from its budget", "[statistics]") {
  const auto t0 = RequestDeadline::Clock::now();
  const RequestDeadline deadline(5000ms, t0);
  CHECK(deadline.remaining(t0) == 5000ms);
  CHECK(deadline.remaining(t0 + 1200ms) == 3800ms);
  CHECK_FALSE(deadline.expired(t0 + 4999ms));
  CHECK(deadline.expired(t0 + 5000ms));
  CHECK(deadline.expired(t0 + 6000ms));
  CHECK(deadline.remaining(t0 + 6000ms) < 0ms);
}
