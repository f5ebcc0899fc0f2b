#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

#include "meshhook/exporter/snapshot.h"

namespace meshhook::exporter {

/// Counts observations into fixed buckets. observe() is lock-free, never throws and never
/// blocks; counters are striped per thread so two threads on one series do not contend.
class Histogram {
 public:
  /// bounds: strictly increasing, finite upper bounds (the +Inf bucket is implicit).
  /// Throws std::invalid_argument otherwise.
  explicit Histogram(std::vector<double> bounds);
  ~Histogram();
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  void observe(double v) noexcept;
  /// Also keeps (label_name=label_value, v, timestamp) as the exemplar of v's bucket.
  void observe(double v, std::string_view exemplar_label_name,
               std::string_view exemplar_label_value, double timestamp_seconds) noexcept;

  const std::vector<double>& bounds() const noexcept;
  /// Fills cumulative_counts, sum, count and exemplars of out.
  void snapshot(SeriesSnapshot& out) const;

  /// Validates a bucket layout; returns an empty string when fine, else the reason.
  static std::string check_bounds(const std::vector<double>& bounds);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshhook::exporter
