#pragma once
// The log-bucket sketch stored in execution_time_rollups: mergeable, and every value it
// answers is within 1 % of a value it was given. Not thread-safe (a plain value).

#include <cstdint>
#include <string_view>
#include <vector>

namespace meshhook::bridge {

class ExecutionTimeSketch {
 public:
  /// The relative accuracy a: gamma = (1 + a) / (1 - a).
  static constexpr double kRelativeAccuracy = 0.01;

  /// The bucket of a value > 0: ceil(ln(v) / ln(gamma)), as the SQL function
  /// meshhook_stats_sketch_index computes it.
  static int index_of(std::int64_t value_ms) noexcept;
  /// What a bucket answers: the only integer in it when there is one, else
  /// 2 gamma^i / (gamma + 1), within a of every value in the bucket.
  static double value_of(int index) noexcept;
  /// The bucket's bounds (gamma^(index-1), gamma^index].
  static double lower_bound(int index) noexcept;
  static double upper_bound(int index) noexcept;

  void add(std::int64_t value_ms, std::uint64_t n = 1);
  void add_bucket(int index, std::uint64_t n);
  void add_zeros(std::uint64_t n) noexcept { zeros_ += n; }
  void merge(const ExecutionTimeSketch& other);
  /// Adds a sketch in Postgres's text form of int4[][]: "{{index,count},...}" or "{}".
  /// Returns false (adding nothing) when the text is malformed.
  bool add_pg_text(std::string_view text);

  std::uint64_t count() const noexcept { return zeros_ + positive_; }
  std::uint64_t zeros() const noexcept { return zeros_; }

  /// The value at 0-based rank (rank < count()).
  double value_at_rank(std::uint64_t rank) const noexcept;
  /// Like Postgres's percentile_cont(fraction): linear interpolation between the values at
  /// ranks floor and ceil of fraction * (count - 1). Stays within a of the exact answer.
  /// count() must be > 0.
  double percentile_cont(double fraction) const noexcept;

  /// Calls f(index, count) for every non-empty bucket in increasing order (zeros excluded).
  template <typename F>
  void for_each_bucket(F&& f) const {
    for (std::size_t k = 0; k < counts_.size(); ++k) {
      if (counts_[k] != 0) f(static_cast<int>(k) + offset_, counts_[k]);
    }
  }

 private:
  std::uint64_t& slot(int index);

  std::vector<std::uint64_t> counts_;  // counts_[k] is bucket offset_ + k
  int offset_ = 0;
  std::uint64_t zeros_ = 0;
  std::uint64_t positive_ = 0;
};

}  // namespace meshhook::bridge
