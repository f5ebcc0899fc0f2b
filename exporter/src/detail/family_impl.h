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
#include <vector>

#include "meshhook/exporter/counter.h"
#include "meshhook/exporter/family.h"

namespace meshhook::exporter::detail {

/// The hash of a lookup key: 8 bytes at a time, multiply-fold mixing (as in wyhash), seeded
/// per process so that label values chosen by a client cannot aim at one probe chain.
std::uint64_t hash_key(std::string_view key) noexcept;

/// An open-addressing table from keys to metrics: the slot holds the hash and a pointer to the
/// key bytes (owned by the series), so a hit touches the slot and the key and nothing else.
/// Not thread-safe: each shard guards its own.
class SlotTable {
 public:
  void* find(std::string_view key, std::uint64_t hash) const noexcept {
    if (slots_.empty()) return nullptr;
    const std::size_t mask = slots_.size() - 1;
    for (std::size_t i = hash & mask;; i = (i + 1) & mask) {
      const Slot& s = slots_[i];
      if (s.metric == nullptr) return nullptr;
      if (s.hash == hash && s.key_size == key.size() &&
          std::memcmp(s.key, key.data(), key.size()) == 0) {
        return s.metric;
      }
    }
  }

  /// Makes room for one more entry, so that the insert() after it cannot fail.
  void reserve_one_more() {
    if ((used_ + 1) * 2 > slots_.size()) grow();
  }

  /// After reserve_one_more(). stable_key must outlive the entry; metric must not be null.
  void insert(std::string_view stable_key, std::uint64_t hash, void* metric) noexcept {
    place(Slot{hash, stable_key.data(), stable_key.size(), metric});
    ++used_;
  }

  void clear() noexcept {
    slots_.clear();
    used_ = 0;
  }

 private:
  struct Slot {
    std::uint64_t hash = 0;
    const char* key = nullptr;
    std::size_t key_size = 0;
    void* metric = nullptr;
  };

  void place(const Slot& slot) noexcept {
    const std::size_t mask = slots_.size() - 1;
    std::size_t i = slot.hash & mask;
    while (slots_[i].metric != nullptr) i = (i + 1) & mask;
    slots_[i] = slot;
  }

  void grow() {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(old.empty() ? 16 : 2 * old.size(), Slot{});
    for (const Slot& s : old) {
      if (s.metric != nullptr) place(s);
    }
  }

  std::vector<Slot> slots_;  // size is 0 or a power of two, at most half full
  std::size_t used_ = 0;
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
  std::string key;  // the lookup key; its bytes are what the shard's table points at
  std::vector<std::string> label_values;
  std::string rendered_labels;  // name="value",... escaped, without braces
  Metric metric;
};

}  // namespace meshhook::exporter::detail

namespace meshhook::exporter {

template <typename Metric>
struct Family<Metric>::Impl {
  static constexpr std::size_t kShards = 16;
  using SeriesT = detail::Series<Metric>;

  struct alignas(64) Shard {
    std::shared_mutex mutex;
    detail::SlotTable table;
  };

  FamilyOptions options;
  MetricType type = MetricType::gauge;
  std::vector<double> bounds;  // histograms: passed to every new series
  Counter* dropped = nullptr;  // this family's meshhook_stats_series_dropped_total series
  // Capped families: limits[s] is how many series the family may hold when step s creates one
  // (0 = the label set itself, then each fold step, then the last resort: every label folded);
  // folded[s - 1] lists the label indexes that step s replaces with "__other__".
  std::vector<std::size_t> limits;
  std::vector<std::vector<std::size_t>> folded;

  std::array<Shard, kShards> shards;
  std::atomic<std::size_t> series_count{0};  // series held, and those being created

  // Owns the series, in creation order so that the exposition is stable. Guarded by
  // order_mutex; collect() holds it while it reads the series, clear() while it frees them.
  mutable std::mutex order_mutex;
  std::vector<std::unique_ptr<SeriesT>> order;

  static Shard& shard_for(std::array<Shard, kShards>& s, std::uint64_t hash) noexcept {
    // The tables probe from the low bits; the shard takes the high ones.
    return s[(hash >> 60) % kShards];
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
