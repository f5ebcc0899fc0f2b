#include "meshhook/bridge/statistics/execution_time_sketch.h"

#include <charconv>
#include <cmath>

#include "meshhook/bridge/storage/rollup_deltas.h"

namespace meshhook::bridge {
namespace {

const double kGamma =
    (1.0 + ExecutionTimeSketch::kRelativeAccuracy) / (1.0 - ExecutionTimeSketch::kRelativeAccuracy);

}  // namespace

// One definition with the writer's deltas (storage), the SQL function's float8 arithmetic.
int ExecutionTimeSketch::index_of(std::int64_t value_ms) noexcept { return sketch_index(value_ms); }

double ExecutionTimeSketch::lower_bound(int index) noexcept { return std::pow(kGamma, index - 1); }

double ExecutionTimeSketch::upper_bound(int index) noexcept { return std::pow(kGamma, index); }

double ExecutionTimeSketch::value_of(int index) noexcept {
  const double upper = upper_bound(index);
  const double middle = 2.0 * upper / (kGamma + 1.0);
  // Values are whole milliseconds: below ~50 ms a bucket holds at most one integer, and
  // answering that integer is exact.
  if (upper < 200) {
    auto lo = static_cast<std::int64_t>(std::floor(lower_bound(index))) + 1;
    auto hi = static_cast<std::int64_t>(std::floor(upper));
    // Agree with index_of at the edges despite rounding in pow.
    while (lo > 1 && index_of(lo - 1) == index) --lo;
    while (lo <= hi && index_of(lo) < index) ++lo;
    while (index_of(hi + 1) == index) ++hi;
    while (hi >= lo && index_of(hi) > index) --hi;
    if (lo == hi) return static_cast<double>(lo);
  }
  return middle;
}

std::uint64_t& ExecutionTimeSketch::slot(int index) {
  if (counts_.empty()) {
    offset_ = index;
    counts_.assign(1, 0);
  } else if (index < offset_) {
    counts_.insert(counts_.begin(), static_cast<std::size_t>(offset_ - index), 0);
    offset_ = index;
  } else if (static_cast<std::size_t>(index - offset_) >= counts_.size()) {
    counts_.resize(static_cast<std::size_t>(index - offset_) + 1, 0);
  }
  return counts_[static_cast<std::size_t>(index - offset_)];
}

void ExecutionTimeSketch::add(std::int64_t value_ms, std::uint64_t n) {
  if (value_ms <= 0) {
    zeros_ += n;
  } else {
    add_bucket(index_of(value_ms), n);
  }
}

void ExecutionTimeSketch::add_bucket(int index, std::uint64_t n) {
  if (n == 0) return;
  slot(index) += n;
  positive_ += n;
}

void ExecutionTimeSketch::merge(const ExecutionTimeSketch& other) {
  if (other.counts_.empty()) {
    zeros_ += other.zeros_;
    return;
  }
  // Grow once to cover both ranges, then add slot by slot.
  slot(other.offset_);
  slot(other.offset_ + static_cast<int>(other.counts_.size()) - 1);
  const auto shift = static_cast<std::size_t>(other.offset_ - offset_);
  for (std::size_t k = 0; k < other.counts_.size(); ++k) counts_[shift + k] += other.counts_[k];
  zeros_ += other.zeros_;
  positive_ += other.positive_;
}

bool ExecutionTimeSketch::add_pg_text(std::string_view text) {
  // "{{12,3},{15,1}}": pairs of integers; braces and commas only separate them.
  std::vector<std::pair<int, std::uint64_t>> pairs;
  const char* p = text.data();
  const char* end = p + text.size();
  long long pending = 0;
  bool have_index = false;
  while (p < end) {
    const char c = *p;
    if (c == '{' || c == '}' || c == ',' || c == ' ') {
      ++p;
      continue;
    }
    long long v = 0;
    auto [next, ec] = std::from_chars(p, end, v);
    if (ec != std::errc{} || next == p) return false;
    p = next;
    if (!have_index) {
      pending = v;
      have_index = true;
    } else {
      if (v < 0) return false;
      pairs.emplace_back(static_cast<int>(pending), static_cast<std::uint64_t>(v));
      have_index = false;
    }
  }
  if (have_index) return false;
  if (!pairs.empty()) {
    slot(pairs.front().first);
    slot(pairs.back().first);
  }
  for (const auto& [index, n] : pairs) add_bucket(index, n);
  return true;
}

double ExecutionTimeSketch::value_at_rank(std::uint64_t rank) const noexcept {
  if (rank < zeros_) return 0.0;
  std::uint64_t seen = zeros_;
  for (std::size_t k = 0; k < counts_.size(); ++k) {
    seen += counts_[k];
    if (rank < seen) return value_of(static_cast<int>(k) + offset_);
  }
  return counts_.empty() ? 0.0 : value_of(static_cast<int>(counts_.size()) - 1 + offset_);
}

double ExecutionTimeSketch::percentile_cont(double fraction) const noexcept {
  const auto n = count();
  if (n == 0) return 0.0;
  const double position = fraction * static_cast<double>(n - 1);
  const auto below = static_cast<std::uint64_t>(std::floor(position));
  const auto above = static_cast<std::uint64_t>(std::ceil(position));
  const double low = value_at_rank(below);
  if (above == below) return low;
  const double high = value_at_rank(above);
  return low + (position - static_cast<double>(below)) * (high - low);
}

}  // namespace meshhook::bridge
