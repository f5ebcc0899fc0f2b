#pragma once

#include <cstddef>
#include <initializer_list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshhook/exporter/counter.h"
#include "meshhook/exporter/gauge.h"
#include "meshhook/exporter/histogram.h"
#include "meshhook/exporter/snapshot.h"

namespace meshhook::exporter {

/// What a family is called and how many series it may hold.
struct FamilyOptions {
  std::string name;  // counters must end in _total
  std::string help;
  std::string unit;  // optional; the name must then end in _<unit> (or _<unit>_total)
  std::vector<std::string> label_names;
  /// 0 = unlimited. Otherwise the family never holds more than max_series series, folded ones
  /// included. A new label set over the cap folds step by step: fold_steps[0]'s labels take the
  /// value "__other__", then fold_steps[1]'s as well, and so on; the last resort is the one
  /// series whose every label is "__other__". Each step keeps fold_reserve series free for the
  /// steps after it (and one for the last resort), so the later, coarser steps always find room.
  /// Every fold is counted in meshhook_stats_series_dropped_total{family="<name>"}.
  std::size_t max_series = 0;
  std::vector<std::vector<std::string>> fold_steps;  // label names, each one of label_names
  std::size_t fold_reserve = 0;                      // per step; 0 = max(1, max_series / 20)
  /// Label values longer than this are truncated (bytes, on a UTF-8 boundary). 0 = no limit.
  std::size_t max_label_value_length = 0;
};

inline constexpr std::string_view kOverflowLabelValue = "__other__";

/// A metric family: one metric per distinct label set. with() is thread-safe; finding an
/// existing label set takes a shared lock on one of several shards, creating one takes an
/// exclusive lock. The references it returns stay valid for the family's lifetime.
template <typename Metric>
class Family {
 public:
  Family(const Family&) = delete;
  Family& operator=(const Family&) = delete;
  ~Family();

  /// values: one per label name, in order. A wrong count is a programming error and throws
  /// std::invalid_argument.
  Metric& with(std::span<const std::string_view> values);
  Metric& with(std::initializer_list<std::string_view> values) {
    return with(std::span<const std::string_view>(values.begin(), values.size()));
  }
  /// Removes every series (used by tests and by label-set expiry).
  void clear();

  const FamilyOptions& options() const noexcept;
  std::size_t size() const;
  void collect(FamilySnapshot& out) const;

 private:
  friend class Registry;
  struct Impl;
  explicit Family(std::unique_ptr<Impl> impl);
  // The series of these label values, created if the family holds fewer than limit series;
  // null otherwise.
  Metric* find_or_create(std::span<const std::string_view> values, std::size_t limit);
  std::unique_ptr<Impl> impl_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace meshhook::exporter
