#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "meshhook/exporter/family.h"
#include "meshhook/exporter/snapshot.h"

namespace meshhook::exporter {

/// Owns metric families and collects them into snapshots. Adding families is meant for
/// start-up and throws std::invalid_argument on a bad name, label name, bucket layout or a
/// duplicate family; collect() is thread-safe and may run concurrently with observations.
class Registry {
 public:
  Registry();
  ~Registry();
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  CounterFamily& add_counter(FamilyOptions options);
  GaugeFamily& add_gauge(FamilyOptions options);
  HistogramFamily& add_histogram(FamilyOptions options, std::vector<double> bounds);

  /// A callback that appends families computed at scrape time (e.g. process metrics).
  using Collector = std::function<void(std::vector<FamilySnapshot>&)>;
  void add_collector(Collector collector);

  /// Families in the order they were added, then those of collectors.
  std::vector<FamilySnapshot> collect() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

/// Metric and label names as the Prometheus data model allows them.
bool is_valid_metric_name(std::string_view name) noexcept;
bool is_valid_label_name(std::string_view name) noexcept;

}  // namespace meshhook::exporter
