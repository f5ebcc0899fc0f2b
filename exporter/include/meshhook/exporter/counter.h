#pragma once

#include <atomic>
#include <optional>
#include <string>

#include "meshhook/exporter/snapshot.h"

namespace meshhook::exporter {

/// A monotonically increasing value. Thread-safe; inc() is lock-free and never throws.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  /// Adds v (ignored unless v >= 0 and finite).
  void inc(double v = 1.0) noexcept;
  double value() const noexcept;

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace meshhook::exporter
