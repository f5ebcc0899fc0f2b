#pragma once

#include <array>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string_view>

namespace meshhook::exporter {

/// A bounded memory of the run ids observed last: at most `capacity` ids, none older than
/// `max_age`, so that a producer's retry is recognised. Fixed memory, reserved up front (about
/// 37 bytes per id, see memory_bytes()); thread-safe, sharded by hash; never throws after
/// construction and never blocks on I/O.
class RecentRunIds {
 public:
  RecentRunIds(std::size_t capacity, std::chrono::seconds max_age);
  ~RecentRunIds();
  RecentRunIds(const RecentRunIds&) = delete;
  RecentRunIds& operator=(const RecentRunIds&) = delete;

  /// True when run_id is in the memory already; otherwise remembers it (forgetting the oldest
  /// id when full) and returns false.
  bool seen_or_remember(std::string_view run_id) noexcept;

  /// The same with the clock given, in seconds of a monotonic clock (for tests).
  bool seen_or_remember(std::string_view run_id, std::uint32_t now_seconds) noexcept;

  std::size_t capacity() const noexcept;
  std::size_t memory_bytes() const noexcept;

 private:
  struct Shard;
  static constexpr std::size_t kShards = 16;
  std::array<std::unique_ptr<Shard>, kShards> shards_;
  std::uint32_t max_age_seconds_;
};

}  // namespace meshhook::exporter
