#pragma once

#include <atomic>

namespace meshhook::exporter {

/// A value that goes up and down. Thread-safe and lock-free; never throws.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void set(double v) noexcept;
  void inc(double v = 1.0) noexcept;
  void dec(double v = 1.0) noexcept;
  double value() const noexcept;

 private:
  std::atomic<double> value_{0.0};
};

}  // namespace meshhook::exporter
