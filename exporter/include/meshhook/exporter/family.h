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
  /// 0 = unlimited. When a new label set would exceed the cap, the value of overflow_label
  /// is replaced by "__other__" (that folded series may exceed the cap) and the fold is
  /// counted in meshhook_stats_series_dropped_total{family="<name>"}.
  std::size_t max_series = 0;
  std::string overflow_label;  // must be one of label_names when max_series > 0
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
  std::unique_ptr<Impl> impl_;
};

using CounterFamily = Family<Counter>;
using GaugeFamily = Family<Gauge>;
using HistogramFamily = Family<Histogram>;

extern template class Family<Counter>;
extern template class Family<Gauge>;
extern template class Family<Histogram>;

}  // namespace meshhook::exporter
