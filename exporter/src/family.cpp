#include "meshhook/exporter/family.h"

#include <limits>
#include <random>
#include <stdexcept>

#include "detail/family_impl.h"
#include "detail/text.h"

namespace meshhook::exporter {

namespace {

// Reused by every lookup on this thread, so that finding an existing series allocates nothing.
thread_local std::string tl_key;
thread_local std::vector<std::string_view> tl_folded;

template <typename Values>
void build_key(std::string& key, const Values& values, std::size_t max_len) {
  key.clear();
  for (std::string_view v : values) detail::append_key_part(key, detail::truncate_utf8(v, max_len));
}

}  // namespace

namespace detail {

namespace {

__extension__ using Uint128 = unsigned __int128;

inline std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  const Uint128 r = static_cast<Uint128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

const std::uint64_t kHashSeed = [] {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}();

}  // namespace

std::uint64_t hash_key(std::string_view key) noexcept {
  constexpr std::uint64_t k0 = 0xa0761d6478bd642full;
  constexpr std::uint64_t k1 = 0xe7037ed1a0b428dbull;
  const auto load64 = [](const char* p) {
    std::uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  };
  const auto load32 = [](const char* p) {
    std::uint32_t v;
    std::memcpy(&v, p, 4);
    return static_cast<std::uint64_t>(v);
  };
  const char* p = key.data();
  const std::size_t size = key.size();
  std::uint64_t h = kHashSeed ^ (size * k0);
  std::uint64_t a = 0;
  std::uint64_t b = 0;
  if (size >= 16) {
    std::size_t n = size;
    for (; n > 16; n -= 16, p += 16) h = fold_multiply(load64(p) ^ k0 ^ h, load64(p + 8) ^ k1);
    // The last 16 bytes, overlapping what the loop took: no byte-wise tail.
    a = load64(key.data() + size - 16);
    b = load64(key.data() + size - 8);
  } else if (size >= 8) {
    a = load64(p);
    b = load64(p + size - 8);
  } else if (size >= 4) {
    a = load32(p);
    b = load32(p + size - 4);
  } else if (size > 0) {
    const auto byte = [](char c) {
      return static_cast<std::uint64_t>(static_cast<unsigned char>(c));
    };
    a = (byte(p[0]) << 16) | (byte(p[size / 2]) << 8) | byte(p[size - 1]);
  }
  h = fold_multiply(a ^ k0 ^ h, b ^ k1);
  return fold_multiply(h ^ k0, k1 ^ size);
}

}  // namespace detail

template <typename Metric>
Family<Metric>::Family(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

template <typename Metric>
Family<Metric>::~Family() = default;

template <typename Metric>
const FamilyOptions& Family<Metric>::options() const noexcept {
  return impl_->options;
}

template <typename Metric>
std::size_t Family<Metric>::size() const {
  return impl_->series_count.load(std::memory_order_relaxed);
}

template <typename Metric>
Metric* Family<Metric>::find_or_create(std::span<const std::string_view> values,
                                       std::size_t limit) {
  Impl& m = *impl_;
  const std::size_t max_len = m.options.max_label_value_length;
  std::string& key = tl_key;
  build_key(key, values, max_len);
  const std::uint64_t hash = detail::hash_key(key);
  auto& shard = Impl::shard_for(m.shards, hash);
  {
    std::shared_lock lock(shard.mutex);
    if (void* found = shard.table.find(key, hash)) return static_cast<Metric*>(found);
  }
  if (m.series_count.load(std::memory_order_relaxed) >= limit) return nullptr;

  std::unique_lock lock(shard.mutex);
  if (void* found = shard.table.find(key, hash)) return static_cast<Metric*>(found);
  // Claim a place under the cap before building the series: the count is what bounds the
  // family, whichever shard the other creators are in.
  std::size_t held = m.series_count.load(std::memory_order_relaxed);
  do {
    if (held >= limit) return nullptr;
  } while (!m.series_count.compare_exchange_weak(held, held + 1, std::memory_order_relaxed));
  try {
    auto series = m.make_series();
    series->key = key;
    series->label_values.reserve(values.size());
    for (std::string_view v : values) {
      series->label_values.emplace_back(detail::truncate_utf8(v, max_len));
    }
    detail::append_label_pairs(series->rendered_labels, m.options.label_names,
                               series->label_values);
    Metric& metric = series->metric;
    const std::string_view stable_key = series->key;  // lives in the series, which never moves
    // Everything that can throw comes before the table holds a pointer into the series.
    shard.table.reserve_one_more();
    {
      std::lock_guard order_lock(m.order_mutex);
      m.order.push_back(std::move(series));
    }
    shard.table.insert(stable_key, hash, &metric);
    return &metric;
  } catch (...) {
    m.series_count.fetch_sub(1, std::memory_order_relaxed);
    throw;
  }
}

template <typename Metric>
Metric& Family<Metric>::with(std::span<const std::string_view> values) {
  Impl& m = *impl_;
  if (values.size() != m.options.label_names.size()) {
    throw std::invalid_argument("metric family \"" + m.options.name + "\": with() got " +
                                std::to_string(values.size()) + " label values for " +
                                std::to_string(m.options.label_names.size()) + " label names");
  }
  if (m.limits.empty()) return *find_or_create(values, std::numeric_limits<std::size_t>::max());
  if (Metric* found = find_or_create(values, m.limits[0])) return *found;

  // Over the cap: fold step by step until a folded label set exists or fits. The last step
  // (every label folded) always has its place kept free, so it cannot fail.
  std::vector<std::string_view>& folded = tl_folded;
  for (std::size_t step = 1; step < m.limits.size(); ++step) {
    folded.assign(values.begin(), values.end());
    for (std::size_t i : m.folded[step - 1]) folded[i] = kOverflowLabelValue;
    const bool last = step + 1 == m.limits.size();
    const std::size_t limit = last ? std::numeric_limits<std::size_t>::max() : m.limits[step];
    if (Metric* found = find_or_create(folded, limit)) {
      if (m.dropped != nullptr) m.dropped->inc();
      return *found;
    }
  }
  throw std::logic_error("metric family \"" + m.options.name + "\": no fold step fits");
}

template <typename Metric>
void Family<Metric>::clear() {
  Impl& m = *impl_;
  // Shards before order_mutex, in the same order as with() takes them.
  std::array<std::unique_lock<std::shared_mutex>, Impl::kShards> shard_locks;
  for (std::size_t i = 0; i < Impl::kShards; ++i) {
    shard_locks[i] = std::unique_lock(m.shards[i].mutex);
    m.shards[i].table.clear();
  }
  std::lock_guard order_lock(m.order_mutex);
  m.order.clear();
  m.series_count.store(0);
}

template <typename Metric>
void Family<Metric>::collect(FamilySnapshot& out) const {
  const Impl& m = *impl_;
  out.name = m.options.name;
  out.help = m.options.help;
  out.unit = m.options.unit;
  out.type = m.type;
  out.label_names = m.options.label_names;
  out.bounds = m.bounds;
  std::lock_guard order_lock(m.order_mutex);
  out.series.clear();
  out.series.resize(m.order.size());
  for (std::size_t i = 0; i < m.order.size(); ++i) {
    const auto& s = *m.order[i];
    SeriesSnapshot& snap = out.series[i];
    snap.label_values = s.label_values;
    snap.rendered_labels = s.rendered_labels;
    if constexpr (std::is_same_v<Metric, Histogram>) {
      s.metric.snapshot(snap);
    } else {
      snap.value = s.metric.value();
    }
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

}  // namespace meshhook::exporter
