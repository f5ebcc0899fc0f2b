#pragma once
// Plain, copyable pictures of metric families taken at collection time. Serialising them is
// a separate pure function (exposition.h), so a snapshot can be tested and rendered alone.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace meshhook::exporter {

enum class MetricType { counter, gauge, histogram };

/// One exemplar: a single label (e.g. run_id) pointing at an observation that fell in a bucket.
struct Exemplar {
  std::string label_name;
  std::string label_value;
  double value = 0;
  double timestamp_seconds = 0;  // Unix time; 0 means "no timestamp"
};

struct SeriesSnapshot {
  std::vector<std::string> label_values;  // in the order of FamilySnapshot::label_names
  // The label pairs already rendered and escaped, name="value",... without braces (the same
  // in both formats). Families fill it once per series at creation; empty means "render from
  // label_values".
  std::string rendered_labels;
  double value = 0;  // counter and gauge
  // Histograms: cumulative counts, one per bound plus the +Inf bucket last.
  std::vector<std::uint64_t> cumulative_counts;
  double sum = 0;
  std::uint64_t count = 0;
  // Histograms: one optional exemplar per bucket (same size as cumulative_counts), or empty
  // when the series has no exemplar at all. Counters: at most one element.
  std::vector<std::optional<Exemplar>> exemplars;
};

struct FamilySnapshot {
  std::string name;  // counters carry the full name ending in _total
  std::string help;
  std::string unit;  // e.g. "seconds"; empty if none. The name must end in _<unit>.
  MetricType type = MetricType::gauge;
  std::vector<std::string> label_names;
  std::vector<double> bounds;  // histograms: upper bounds without +Inf, strictly increasing
  std::vector<SeriesSnapshot> series;
};

}  // namespace meshhook::exporter
