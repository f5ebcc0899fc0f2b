#include "meshhook/exporter/counter.h"

#include <cmath>

namespace meshhook::exporter {

void Counter::inc(double v) noexcept {
  if (!(v >= 0) || !std::isfinite(v)) return;
  value_.fetch_add(v, std::memory_order_relaxed);
}

double Counter::value() const noexcept { return value_.load(std::memory_order_relaxed); }

}  // namespace meshhook::exporter
