#include "meshhook/exporter/histogram.h"

#include <algorithm>
#include <atomic>
#include <bit>
#include <cmath>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>

#include "detail/text.h"

namespace meshhook::exporter {

namespace {

// Each thread adds into one of kStripes copies of the counters, each on its own cache lines,
// so that two threads observing one series do not bounce a line between cores. Collection
// sums the stripes.
constexpr unsigned kStripes = 4;
constexpr std::size_t kWordsPerLine = 8;
// Linear, branchless bucket search up to this many bounds; binary search above.
constexpr std::size_t kLinearSearchMax = 32;
// OpenMetrics: an exemplar's label names and values together hold at most 128 characters.
constexpr std::size_t kMaxExemplarChars = 128;

struct alignas(64) Line {
  std::atomic<std::uint64_t> words[kWordsPerLine];
};

unsigned this_thread_stripe() noexcept {
  // 0 means "not assigned yet", so the variable needs no dynamic initialisation.
  thread_local unsigned stripe_plus_one = 0;
  if (stripe_plus_one == 0) [[unlikely]] {
    static std::atomic<unsigned> next{0};
    stripe_plus_one = next.fetch_add(1, std::memory_order_relaxed) % kStripes + 1;
  }
  return stripe_plus_one - 1;
}

}  // namespace

struct Histogram::Impl {
  explicit Impl(std::vector<double> b)
      : bounds(std::move(b)),
        buckets(bounds.size() + 1),
        // Per stripe: one counter per bucket (not cumulative), then the sum as double bits;
        // an even number of lines, as CPUs prefetch lines in 128-byte pairs.
        lines_per_stripe(((buckets + 1 + kWordsPerLine - 1) / kWordsPerLine + 1) & ~std::size_t{1}),
        lines(new Line[kStripes * lines_per_stripe]) {
    for (std::size_t i = 0; i < kStripes * lines_per_stripe; ++i) {
      for (auto& w : lines[i].words) w.store(0, std::memory_order_relaxed);
    }
  }

  std::atomic<std::uint64_t>* stripe(unsigned s) const noexcept {
    return lines[s * lines_per_stripe].words;
  }

  std::size_t bucket_of(double v) const noexcept {
    const double* b = bounds.data();
    const std::size_t n = bounds.size();
    if (n <= kLinearSearchMax) {
      // Counts the bounds below v; le semantics put v == bound into that bound's bucket, and
      // NaN compares false everywhere, so it lands in +Inf.
      std::size_t i = 0;
      for (std::size_t k = 0; k < n; ++k) i += !(v <= b[k]);
      return i;
    }
    if (std::isnan(v)) return n;
    return static_cast<std::size_t>(std::lower_bound(b, b + n, v) - b);
  }

  std::vector<double> bounds;
  std::size_t buckets;
  std::size_t lines_per_stripe;
  std::unique_ptr<Line[]> lines;

  // The exemplar path only: a small lock per series, taken by observations that carry one.
  std::atomic<bool> has_exemplars{false};
  mutable std::mutex exemplar_mutex;
  std::vector<std::optional<Exemplar>> exemplars;
};

std::string Histogram::check_bounds(const std::vector<double>& bounds) {
  if (bounds.empty()) return "needs at least one bucket bound";
  for (std::size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return "bound " + std::to_string(i) + " is not finite (+Inf is implicit)";
    }
    if (i > 0 && !(bounds[i] > bounds[i - 1])) {
      return "bounds must be strictly increasing (bound " + std::to_string(i) + ")";
    }
  }
  return {};
}

Histogram::Histogram(std::vector<double> bounds) {
  if (auto why = check_bounds(bounds); !why.empty()) {
    throw std::invalid_argument("histogram buckets: " + why);
  }
  impl_ = std::make_unique<Impl>(std::move(bounds));
}

Histogram::~Histogram() = default;

const std::vector<double>& Histogram::bounds() const noexcept { return impl_->bounds; }

void Histogram::observe(double v) noexcept {
  const Impl& m = *impl_;
  const std::size_t i = m.bucket_of(v);
  std::atomic<std::uint64_t>* s = m.stripe(this_thread_stripe());
  s[i].fetch_add(1, std::memory_order_relaxed);
  std::atomic<std::uint64_t>& sum = s[m.buckets];
  std::uint64_t old = sum.load(std::memory_order_relaxed);
  while (!sum.compare_exchange_weak(old,
                                    std::bit_cast<std::uint64_t>(std::bit_cast<double>(old) + v),
                                    std::memory_order_relaxed, std::memory_order_relaxed)) {
  }
}

void Histogram::observe(double v, std::string_view exemplar_label_name,
                        std::string_view exemplar_label_value, double timestamp_seconds) noexcept {
  observe(v);
  const std::size_t name_chars = detail::utf8_length(exemplar_label_name);
  if (exemplar_label_name.empty() || name_chars >= kMaxExemplarChars) return;
  const std::string_view value =
      detail::truncate_utf8_chars(exemplar_label_value, kMaxExemplarChars - name_chars);
  Impl& m = *impl_;
  const std::size_t i = m.bucket_of(v);
  try {
    std::lock_guard lock(m.exemplar_mutex);
    if (m.exemplars.empty()) m.exemplars.resize(m.buckets);
    auto& slot = m.exemplars[i];
    if (!slot) slot.emplace();
    slot->label_name.assign(exemplar_label_name);  // reuses the capacity after the first time
    slot->label_value.assign(value);
    slot->value = v;
    slot->timestamp_seconds = timestamp_seconds;
    m.has_exemplars.store(true, std::memory_order_release);
  } catch (...) {
    // Out of memory: the count above stands; only the exemplar is lost.
  }
}

void Histogram::snapshot(SeriesSnapshot& out) const {
  const Impl& m = *impl_;
  out.cumulative_counts.assign(m.buckets, 0);
  double sum = 0;
  for (unsigned st = 0; st < kStripes; ++st) {
    const std::atomic<std::uint64_t>* s = m.stripe(st);
    for (std::size_t i = 0; i < m.buckets; ++i) {
      out.cumulative_counts[i] += s[i].load(std::memory_order_relaxed);
    }
    sum += std::bit_cast<double>(s[m.buckets].load(std::memory_order_relaxed));
  }
  for (std::size_t i = 1; i < m.buckets; ++i) {
    out.cumulative_counts[i] += out.cumulative_counts[i - 1];
  }
  out.count = out.cumulative_counts.back();
  out.sum = sum;
  out.exemplars.clear();
  if (m.has_exemplars.load(std::memory_order_acquire)) {
    std::lock_guard lock(m.exemplar_mutex);
    out.exemplars = m.exemplars;
  }
}

}  // namespace meshhook::exporter
