#pragma once
// The inside of Family<Metric>: a sharded hash map from label values to series. Shared by
// family.cpp (lookup, collection) and registry.cpp (construction).

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <mutex>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "meshhook/exporter/counter.h"
#include "meshhook/exporter/family.h"

namespace meshhook::exporter::detail {

/// A lookup key with its hash computed once: the hash picks the shard and the bucket.
struct PrehashedKey {
  std::string_view key;
  std::size_t hash;
};

inline std::size_t hash_key(std::string_view key) noexcept {
  return std::hash<std::string_view>{}(key);
}

struct KeyHash {
  using is_transparent = void;
  std::size_t operator()(const std::string& k) const noexcept { return hash_key(k); }
  std::size_t operator()(const PrehashedKey& k) const noexcept { return k.hash; }
};

struct KeyEqual {
  using is_transparent = void;
  bool operator()(const std::string& a, const std::string& b) const noexcept { return a == b; }
  bool operator()(const PrehashedKey& a, const std::string& b) const noexcept {
    return a.key == b;
  }
  bool operator()(const std::string& a, const PrehashedKey& b) const noexcept {
    return a == b.key;
  }
};

/// Appends one label value to a key. Each value is prefixed by its length, so no pair of label
/// sets can produce the same key whatever bytes the values hold.
inline void append_key_part(std::string& key, std::string_view value) {
  const auto n = static_cast<std::uint32_t>(value.size());
  char len[sizeof n];
  std::memcpy(len, &n, sizeof n);
  key.append(len, sizeof n);
  key.append(value);
}

template <typename Metric>
struct Series {
  template <typename... Args>
  explicit Series(Args&&... args) : metric(std::forward<Args>(args)...) {}
  std::vector<std::string> label_values;
  std::string rendered_labels;  // name="value",... escaped, without braces
  Metric metric;
};

}  // namespace meshhook::exporter::detail

namespace meshhook::exporter {

template <typename Metric>
struct Family<Metric>::Impl {
  static constexpr std::size_t kShards = 16;
  static constexpr std::size_t kNoOverflowLabel = static_cast<std::size_t>(-1);
  using SeriesT = detail::Series<Metric>;

  struct alignas(64) Shard {
    std::shared_mutex mutex;
    std::unordered_map<std::string, std::unique_ptr<SeriesT>, detail::KeyHash, detail::KeyEqual>
        map;
  };

  FamilyOptions options;
  MetricType type = MetricType::gauge;
  std::vector<double> bounds;      // histograms: passed to every new series
  Counter* dropped = nullptr;      // this family's meshhook_stats_series_dropped_total series
  std::size_t overflow_index = kNoOverflowLabel;

  std::array<Shard, kShards> shards;
  std::atomic<std::size_t> capped_series{0};  // series that count against max_series
  std::atomic<std::size_t> series_count{0};

  // Creation order, so that the exposition is stable. Guarded by order_mutex; collect() holds
  // it while it reads the series, clear() while it frees them.
  mutable std::mutex order_mutex;
  std::vector<SeriesT*> order;

  static Shard& shard_for(std::array<Shard, kShards>& s, std::size_t hash) noexcept {
    // The map uses the low bits for its buckets; the shard takes the high ones.
    return s[(hash >> (sizeof(std::size_t) * 8 - 4)) % kShards];
  }

  std::unique_ptr<SeriesT> make_series() const {
    if constexpr (std::is_same_v<Metric, Histogram>) {
      return std::make_unique<SeriesT>(bounds);
    } else {
      return std::make_unique<SeriesT>();
    }
  }
};

}  // namespace meshhook::exporter
