#include "meshhook/bridge/storage/rollup_deltas.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <tuple>

namespace meshhook::bridge {
namespace {

constexpr std::int64_t kHourUs = 3'600'000'000;

// ln(1.01::float8 / 0.99::float8), computed at run time by the same libm call Postgres makes
// (a compile-time fold could round differently in the last bit).
double log_gamma() {
  static const double value = [] {
    volatile double gamma = 1.01 / 0.99;
    return std::log(gamma);
  }();
  return value;
}

// date_trunc('hour', finished_at, 'UTC'): towards the past, also before 1970.
std::int64_t hour_of(std::int64_t us) noexcept {
  std::int64_t q = us / kHourUs;
  if (us % kHourUs < 0) --q;
  return q * kHourUs;
}

// One run as the trigger's inner grouping sees it; index is INT_MIN for 0 ms (no bucket).
struct Cell {
  const RunEvent* event;
  std::int64_t hour_us;
  std::int64_t ms;
  int index;

  auto key() const {
    return std::tie(event->project_id.bytes, event->workflow_id.bytes, event->status, hour_us);
  }
};

}  // namespace

int sketch_index(std::int64_t value_ms) noexcept {
  return static_cast<int>(std::ceil(std::log(static_cast<double>(value_ms)) / log_gamma()));
}

std::vector<std::int64_t> sketch_index_boundary_values(std::int64_t max_ms) {
  std::vector<std::int64_t> out;
  const double gamma = 1.01 / 0.99;
  for (int k = 0;; ++k) {
    const double edge = std::pow(gamma, k);
    if (edge > static_cast<double>(max_ms)) break;
    const auto at = static_cast<std::int64_t>(std::floor(edge));
    for (std::int64_t v = std::max<std::int64_t>(1, at - 1); v <= at + 2; ++v) {
      if (out.empty() || v > out.back()) out.push_back(v);
    }
  }
  return out;
}

std::int64_t stored_execution_time_ms(const RunEvent& e) noexcept {
  return rounded_ms(std::max<std::int64_t>(e.duration_us(), 0));
}

std::optional<std::vector<RollupDelta>> rollup_deltas(const std::vector<RunEvent>& events,
                                                      std::size_t begin, std::size_t end) {
  std::vector<Cell> cells;
  cells.reserve(end - begin);
  for (std::size_t i = begin; i < end; ++i) {
    const RunEvent& e = events[i];
    const std::int64_t ms = stored_execution_time_ms(e);
    cells.push_back({&e, hour_of(e.finished_at_us), ms, ms > 0 ? sketch_index(ms) : INT_MIN});
  }
  std::sort(cells.begin(), cells.end(), [](const Cell& a, const Cell& b) {
    const auto ka = a.key(), kb = b.key();
    if (ka != kb) return ka < kb;
    return a.index < b.index;
  });

  std::vector<RollupDelta> out;
  for (std::size_t i = 0; i < cells.size();) {
    const Cell& first = cells[i];
    RollupDelta d;
    d.project_id = first.event->project_id;
    d.workflow_id = first.event->workflow_id;
    d.status = first.event->status;
    d.bucket_start_us = first.hour_us;
    d.min_ms = first.ms;
    d.max_ms = first.ms;
    for (; i < cells.size() && cells[i].key() == first.key(); ++i) {
      const Cell& c = cells[i];
      ++d.run_count;
      if (__builtin_add_overflow(d.sum_ms, static_cast<std::uint64_t>(c.ms), &d.sum_ms)) {
        return std::nullopt;
      }
      d.min_ms = std::min(d.min_ms, c.ms);
      d.max_ms = std::max(d.max_ms, c.ms);
      if (c.index == INT_MIN) {
        ++d.zero_count;
      } else if (!d.sketch.empty() && d.sketch.back().first == c.index) {
        if (d.sketch.back().second == INT32_MAX) return std::nullopt;  // n::int4 would fail
        ++d.sketch.back().second;
      } else {
        d.sketch.emplace_back(c.index, 1);
      }
    }
    out.push_back(std::move(d));
  }
  return out;
}

}  // namespace meshhook::bridge
