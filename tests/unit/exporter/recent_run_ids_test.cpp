#include "meshhook/exporter/recent_run_ids.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <string>
#include <thread>
#include <vector>

using namespace meshhook::exporter;

namespace {

std::string uuid(unsigned n) {
  char buf[40];
  std::snprintf(buf, sizeof buf, "%08x-1c2a-4e5b-9a6d-%012x", n * 2654435761u, n);
  return buf;
}

}  // namespace

TEST_CASE("recent run ids recognise an id seen before", "[exporter]") {
  RecentRunIds ids(1000, std::chrono::hours(24));
  CHECK_FALSE(ids.seen_or_remember(uuid(1), 100));
  CHECK_FALSE(ids.seen_or_remember(uuid(2), 100));
  CHECK(ids.seen_or_remember(uuid(1), 101));
  CHECK(ids.seen_or_remember(uuid(2), 101));
  CHECK_FALSE(ids.seen_or_remember("not-a-uuid", 101));
  CHECK(ids.seen_or_remember("not-a-uuid", 101));
}

TEST_CASE("recent run ids read a uuid's bytes, whatever the case of its hex digits", "[exporter]") {
  RecentRunIds ids(1000, std::chrono::hours(24));
  CHECK_FALSE(ids.seen_or_remember("3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6b", 1));
  CHECK(ids.seen_or_remember("3B1E2F9A-6C7D-4E8F-9A0B-1C2D3E4F5A6B", 1));
  CHECK_FALSE(ids.seen_or_remember("3b1e2f9a-6c7d-4e8f-9a0b-1c2d3e4f5a6c", 1));
}

TEST_CASE("recent run ids forget the oldest ids beyond their capacity", "[exporter]") {
  RecentRunIds ids(16 * 100, std::chrono::hours(24));
  REQUIRE(ids.capacity() == 1600);
  constexpr unsigned kIds = 20000;
  for (unsigned i = 0; i < kIds; ++i) REQUIRE_FALSE(ids.seen_or_remember(uuid(i), 5));
  // The last ids are remembered; the first were forgotten (each shard keeps its last 100).
  unsigned remembered_last = 0;
  for (unsigned i = kIds - 200; i < kIds; ++i) remembered_last += ids.seen_or_remember(uuid(i), 5);
  CHECK(remembered_last == 200);
  unsigned remembered_first = 0;
  for (unsigned i = 0; i < 1000; ++i) remembered_first += ids.seen_or_remember(uuid(i), 5);
  CHECK(remembered_first == 0);
}

TEST_CASE("recent run ids forget ids older than their age", "[exporter]") {
  RecentRunIds ids(1000, std::chrono::seconds(60));
  CHECK_FALSE(ids.seen_or_remember(uuid(1), 1000));
  CHECK_FALSE(ids.seen_or_remember(uuid(2), 1030));
  CHECK(ids.seen_or_remember(uuid(1), 1059));
  CHECK_FALSE(ids.seen_or_remember(uuid(1), 1060));  // 60 s after it was first seen
  CHECK(ids.seen_or_remember(uuid(2), 1061));
  CHECK(ids.seen_or_remember(uuid(1), 1061));  // remembered again from 1060
}

TEST_CASE("recent run ids keep every id of a full window after many evictions", "[exporter]") {
  // Deletion shifts entries back in the index: after heavy churn, every id still in the ring
  // must be found, and nothing else.
  RecentRunIds ids(16 * 64, std::chrono::hours(24));
  for (unsigned round = 0; round < 50; ++round) {
    for (unsigned i = 0; i < 512; ++i) ids.seen_or_remember(uuid(round * 512 + i), 1);
  }
  unsigned found = 0;
  for (unsigned i = 49 * 512; i < 50 * 512; ++i) found += ids.seen_or_remember(uuid(i), 1);
  CHECK(found == 512);
}

TEST_CASE("recent run ids count each id once across threads", "[exporter]") {
  RecentRunIds ids(100000, std::chrono::hours(24));
  std::atomic<unsigned> fresh{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (unsigned i = 0; i < 10000; ++i) fresh += !ids.seen_or_remember(uuid(i), 1);
    });
  }
  for (auto& t : threads) t.join();
  CHECK(fresh == 10000);
}

TEST_CASE("recent run ids state their fixed memory", "[exporter]") {
  RecentRunIds ids(1000000, std::chrono::hours(24));
  CHECK(ids.capacity() == 1000000);
  // 16-byte id and 4-byte time per id, and 2^17 8-byte index slots per shard.
  CHECK(ids.memory_bytes() == 1000000 * 20 + 16 * 131072 * 8);
}
