#include "meshhook/exporter/family.h"

#include <stdexcept>

#include "detail/family_impl.h"
#include "detail/text.h"

namespace meshhook::exporter {

namespace {

// Reused by every lookup on this thread, so that finding an existing series allocates nothing.
thread_local std::string tl_key;

template <typename Values>
void build_key(std::string& key, const Values& values, std::size_t max_len) {
  key.clear();
  for (std::string_view v : values) detail::append_key_part(key, detail::truncate_utf8(v, max_len));
}

}  // namespace

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
Metric& Family<Metric>::with(std::span<const std::string_view> values) {
  Impl& m = *impl_;
  if (values.size() != m.options.label_names.size()) {
    throw std::invalid_argument("metric family \"" + m.options.name + "\": with() got " +
                                std::to_string(values.size()) + " label values for " +
                                std::to_string(m.options.label_names.size()) + " label names");
  }
  const std::size_t max_len = m.options.max_label_value_length;
  std::string& key = tl_key;
  build_key(key, values, max_len);
  const std::size_t hash = detail::hash_key(key);
  auto& shard = Impl::shard_for(m.shards, hash);
  {
    std::shared_lock lock(shard.mutex);
    auto it = shard.map.find(detail::PrehashedKey{key, hash});
    if (it != shard.map.end()) return it->second->metric;
  }

  // A new label set. Decide whether it may have a series of its own or folds into __other__.
  bool capped = m.overflow_index != Impl::kNoOverflowLabel &&
                detail::truncate_utf8(values[m.overflow_index], max_len) != kOverflowLabelValue;
  if (capped && m.capped_series.load(std::memory_order_relaxed) >= m.options.max_series) {
    std::vector<std::string_view> folded(values.begin(), values.end());
    folded[m.overflow_index] = kOverflowLabelValue;
    if (m.dropped != nullptr) m.dropped->inc();
    return with(folded);
  }

  std::string owned_key = key;  // the recursion below may reuse tl_key
  std::unique_lock lock(shard.mutex);
  auto it = shard.map.find(detail::PrehashedKey{owned_key, hash});
  if (it != shard.map.end()) return it->second->metric;
  if (capped &&
      m.capped_series.fetch_add(1, std::memory_order_relaxed) >= m.options.max_series) {
    m.capped_series.fetch_sub(1, std::memory_order_relaxed);
    lock.unlock();
    std::vector<std::string_view> folded(values.begin(), values.end());
    folded[m.overflow_index] = kOverflowLabelValue;
    if (m.dropped != nullptr) m.dropped->inc();
    return with(folded);
  }

  auto series = m.make_series();
  series->label_values.reserve(values.size());
  for (std::string_view v : values) {
    series->label_values.emplace_back(detail::truncate_utf8(v, max_len));
  }
  detail::append_label_pairs(series->rendered_labels, m.options.label_names,
                             series->label_values);
  Metric& metric = series->metric;
  {
    std::lock_guard order_lock(m.order_mutex);
    m.order.push_back(series.get());
  }
  shard.map.emplace(std::move(owned_key), std::move(series));
  m.series_count.fetch_add(1, std::memory_order_relaxed);
  return metric;
}

template <typename Metric>
void Family<Metric>::clear() {
  Impl& m = *impl_;
  std::lock_guard order_lock(m.order_mutex);
  for (auto& shard : m.shards) {
    std::unique_lock lock(shard.mutex);
    shard.map.clear();
  }
  m.order.clear();
  m.capped_series.store(0);
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
