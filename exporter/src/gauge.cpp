#include "meshhook/exporter/gauge.h"

namespace meshhook::exporter {

void Gauge::set(double v) noexcept { value_.store(v, std::memory_order_relaxed); }
void Gauge::inc(double v) noexcept { value_.fetch_add(v, std::memory_order_relaxed); }
void Gauge::dec(double v) noexcept { value_.fetch_sub(v, std::memory_order_relaxed); }
double Gauge::value() const noexcept { return value_.load(std::memory_order_relaxed); }

}  // namespace meshhook::exporter
