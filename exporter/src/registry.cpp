#include "meshhook/exporter/registry.h"

#include <algorithm>
#include <set>
#include <stdexcept>
#include <string>
#include <variant>

#include "detail/family_impl.h"

namespace meshhook::exporter {

namespace {

constexpr std::string_view kDroppedName = "meshhook_stats_series_dropped_total";
constexpr std::string_view kDroppedHelp =
    "Label sets folded into __other__ by the per-family series cap.";

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

[[noreturn]] void fail(const FamilyOptions& o, std::string_view field, const std::string& why) {
  throw std::invalid_argument("metric family \"" + o.name + "\": " + std::string(field) + ": " +
                              why);
}

void validate(const FamilyOptions& o, MetricType type) {
  if (!is_valid_metric_name(o.name)) {
    fail(o, "name", "must match [a-zA-Z_:][a-zA-Z0-9_:]*");
  }
  std::string_view base = o.name;
  if (type == MetricType::counter) {
    if (!ends_with(base, "_total")) fail(o, "name", "a counter's name must end in _total");
    base.remove_suffix(6);
  }
  if (!o.unit.empty()) {
    if (o.unit.find_first_not_of("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
                                 "0123456789_:") != std::string::npos) {
      fail(o, "unit", "\"" + o.unit + "\" is not a valid unit");
    }
    if (!ends_with(base, "_" + o.unit)) {
      fail(o, "unit",
           "the name must end in _" + o.unit + (type == MetricType::counter ? "_total" : ""));
    }
  }
  for (std::size_t i = 0; i < o.label_names.size(); ++i) {
    const std::string& l = o.label_names[i];
    const std::string field = "label_names[" + std::to_string(i) + "]";
    if (!is_valid_label_name(l)) {
      fail(o, field, "\"" + l + "\" must match [a-zA-Z_][a-zA-Z0-9_]* and not start with __");
    }
    if (type == MetricType::histogram && l == "le") {
      fail(o, field, "\"le\" is reserved for histogram buckets");
    }
    if (std::find(o.label_names.begin(), o.label_names.begin() + static_cast<long>(i), l) !=
        o.label_names.begin() + static_cast<long>(i)) {
      fail(o, field, "duplicate label name \"" + l + "\"");
    }
  }
  for (std::size_t i = 0; i < o.fold_steps.size(); ++i) {
    for (const std::string& l : o.fold_steps[i]) {
      if (std::find(o.label_names.begin(), o.label_names.end(), l) == o.label_names.end()) {
        fail(o, "fold_steps[" + std::to_string(i) + "]",
             "\"" + l + "\" must be one of label_names");
      }
    }
  }
}

// The limits and folded labels of each step (see FamilyOptions::max_series): step s of k keeps
// (k - s) * reserve series free for the steps after it and one for the last resort.
template <typename Impl>
void plan_folds(const FamilyOptions& o, Impl& impl) {
  const std::size_t n = o.max_series;
  const std::size_t k = o.fold_steps.size();
  const std::size_t reserve =
      o.fold_reserve > 0 ? o.fold_reserve : std::max<std::size_t>(1, n / 20);
  const auto index_of = [&](const std::string& l) {
    return static_cast<std::size_t>(std::find(o.label_names.begin(), o.label_names.end(), l) -
                                    o.label_names.begin());
  };
  std::vector<std::size_t> cumulative;
  for (std::size_t s = 0; s <= k; ++s) {
    const std::size_t keep = 1 + (k - s) * reserve;
    impl.limits.push_back(n > keep ? n - keep : 0);
    if (s == k) break;
    for (const std::string& l : o.fold_steps[s]) cumulative.push_back(index_of(l));
    impl.folded.push_back(cumulative);
  }
  std::vector<std::size_t> every(o.label_names.size());
  for (std::size_t i = 0; i < every.size(); ++i) every[i] = i;
  impl.limits.push_back(n);
  impl.folded.push_back(std::move(every));
}

}  // namespace

bool is_valid_metric_name(std::string_view name) noexcept {
  if (name.empty()) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c == ':' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

bool is_valid_label_name(std::string_view name) noexcept {
  if (name.empty() || name.starts_with("__")) return false;
  for (std::size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
                    (i > 0 && c >= '0' && c <= '9');
    if (!ok) return false;
  }
  return true;
}

struct Registry::Impl {
  using AnyFamily = std::variant<std::unique_ptr<CounterFamily>, std::unique_ptr<GaugeFamily>,
                                 std::unique_ptr<HistogramFamily>>;

  mutable std::mutex mutex;
  std::vector<AnyFamily> families;
  std::set<std::string, std::less<>> names;
  std::vector<Collector> collectors;
  CounterFamily* dropped = nullptr;

  template <typename Metric>
  Family<Metric>& add(FamilyOptions options, MetricType type, std::vector<double> bounds) {
    validate(options, type);
    if (type == MetricType::histogram) {
      if (auto why = Histogram::check_bounds(bounds); !why.empty()) fail(options, "buckets", why);
    }
    std::lock_guard lock(mutex);
    if (names.count(options.name) != 0) fail(options, "name", "a family of this name exists");
    auto impl = std::make_unique<typename Family<Metric>::Impl>();
    impl->type = type;
    impl->bounds = std::move(bounds);
    if (options.max_series > 0) {
      plan_folds(options, *impl);
      if (dropped != nullptr) impl->dropped = &dropped->with({options.name});
    }
    impl->options = std::move(options);
    auto family = std::unique_ptr<Family<Metric>>(new Family<Metric>(std::move(impl)));
    Family<Metric>& ref = *family;
    names.insert(ref.options().name);
    families.emplace_back(std::move(family));
    return ref;
  }
};

Registry::Registry() : impl_(std::make_unique<Impl>()) {
  FamilyOptions dropped;
  dropped.name = kDroppedName;
  dropped.help = kDroppedHelp;
  dropped.label_names = {"family"};
  impl_->dropped = &add_counter(std::move(dropped));
}

Registry::~Registry() = default;

CounterFamily& Registry::add_counter(FamilyOptions options) {
  return impl_->add<Counter>(std::move(options), MetricType::counter, {});
}

GaugeFamily& Registry::add_gauge(FamilyOptions options) {
  return impl_->add<Gauge>(std::move(options), MetricType::gauge, {});
}

HistogramFamily& Registry::add_histogram(FamilyOptions options, std::vector<double> bounds) {
  return impl_->add<Histogram>(std::move(options), MetricType::histogram, std::move(bounds));
}

void Registry::add_collector(Collector collector) {
  std::lock_guard lock(impl_->mutex);
  impl_->collectors.push_back(std::move(collector));
}

std::vector<FamilySnapshot> Registry::collect() const {
  std::vector<FamilySnapshot> out;
  std::vector<Collector> collectors;
  {
    std::lock_guard lock(impl_->mutex);
    out.resize(impl_->families.size());
    for (std::size_t i = 0; i < impl_->families.size(); ++i) {
      std::visit([&](const auto& family) { family->collect(out[i]); }, impl_->families[i]);
    }
    collectors = impl_->collectors;
  }
  // Outside the lock: a collector may be slow (it reads /proc) or use the registry itself.
  for (const auto& c : collectors) c(out);
  return out;
}

}  // namespace meshhook::exporter
