#include "meshhook/exporter/exposition.h"

#include <zlib.h>

#include <algorithm>
#include <array>
#include <cctype>
#include <charconv>
#include <stdexcept>

#include "detail/text.h"

namespace meshhook::exporter {

namespace {

using detail::kMaxFloatChars;
using detail::put;
using detail::put_uint;

// Writes into out through a raw pointer: the caller reserves an upper bound for what it is
// about to write, then commits where it ended. Growing is geometric, so a scrape of 20 MB
// costs a handful of reallocations and no per-piece capacity checks.
class Writer {
 public:
  Writer(std::string& out, std::size_t expected) : out_(out), used_(out.size()) {
    out_.resize(used_ + expected);
  }
  Writer(const Writer&) = delete;
  Writer& operator=(const Writer&) = delete;
  ~Writer() { out_.resize(used_); }

  char* reserve(std::size_t n) {
    if (out_.size() - used_ < n) out_.resize(std::max(used_ + n, out_.size() * 2));
    return out_.data() + used_;
  }
  void commit(const char* end) { used_ = static_cast<std::size_t>(end - out_.data()); }
  void append(std::string_view s) { commit(put(reserve(s.size()), s)); }

 private:
  std::string& out_;
  std::size_t used_;
};

bool ends_with(std::string_view s, std::string_view suffix) {
  return s.size() >= suffix.size() && s.substr(s.size() - suffix.size()) == suffix;
}

void append_help(Writer& w, std::string_view help, bool openmetrics) {
  char* p = w.reserve(2 * help.size());
  for (char c : help) {
    if (c == '\\') {
      p = put(p, "\\\\");
    } else if (c == '\n') {
      p = put(p, "\\n");
    } else if (c == '"' && openmetrics) {
      p = put(p, "\\\"");
    } else {
      *p++ = c;
    }
  }
  w.commit(p);
}

std::string_view type_name(MetricType t) {
  switch (t) {
    case MetricType::counter:
      return "counter";
    case MetricType::gauge:
      return "gauge";
    case MetricType::histogram:
      return "histogram";
  }
  return "untyped";
}

void write_metadata(Writer& w, const FamilySnapshot& f, bool om) {
  // OpenMetrics names a counter family without its _total suffix.
  std::string_view name = f.name;
  if (om && f.type == MetricType::counter && ends_with(name, "_total")) name.remove_suffix(6);
  if (!f.help.empty()) {
    w.append("# HELP ");
    w.append(name);
    w.append(" ");
    append_help(w, f.help, om);
    w.append("\n");
  }
  w.append("# TYPE ");
  w.append(name);
  w.append(" ");
  w.append(type_name(f.type));
  w.append("\n");
  if (om && !f.unit.empty()) {
    w.append("# UNIT ");
    w.append(name);
    w.append(" ");
    w.append(f.unit);
    w.append("\n");
  }
}

char* put_value(char* p, double v, bool om) {
  return om ? detail::put_om_float(p, v) : detail::put_float(p, v);
}

std::size_t exemplar_bound(const std::optional<Exemplar>& e) {
  return e ? e->label_name.size() + 2 * e->label_value.size() + 2 * kMaxFloatChars + 16 : 0;
}

char* put_exemplar(char* p, const Exemplar& e) {
  p = put(p, " # {");
  p = put(p, e.label_name);
  p = put(p, "=\"");
  p = detail::put_label_value(p, e.label_value);
  p = put(p, "\"} ");
  p = detail::put_om_float(p, e.value);
  if (e.timestamp_seconds != 0) {
    *p++ = ' ';
    p = detail::put_timestamp(p, e.timestamp_seconds);
  }
  return p;
}

// Writes one series of a family: labels is the rendered pair list (possibly empty).
void write_series(Writer& w, const FamilySnapshot& f, const SeriesSnapshot& s,
                  std::string_view labels, const std::vector<std::string>& les, bool om) {
  const std::string_view name = f.name;
  const std::size_t line_fixed = name.size() + labels.size() + 16;
  if (f.type != MetricType::histogram) {
    const std::optional<Exemplar>* ex =
        (om && f.type == MetricType::counter && !s.exemplars.empty()) ? &s.exemplars[0] : nullptr;
    char* p = w.reserve(line_fixed + kMaxFloatChars + (ex ? exemplar_bound(*ex) : 0));
    p = put(p, name);
    if (!labels.empty()) {
      *p++ = '{';
      p = put(p, labels);
      *p++ = '}';
    }
    *p++ = ' ';
    p = put_value(p, s.value, om);
    if (ex && *ex) p = put_exemplar(p, **ex);
    *p++ = '\n';
    w.commit(p);
    return;
  }

  const std::size_t buckets = std::min(s.cumulative_counts.size(), les.size());
  const bool with_exemplars = om && s.exemplars.size() >= buckets;
  std::size_t bound = 3 * (line_fixed + 2 * kMaxFloatChars);
  for (std::size_t i = 0; i < buckets; ++i) {
    bound += line_fixed + les[i].size() + 32;
    if (with_exemplars) bound += exemplar_bound(s.exemplars[i]);
  }
  char* p = w.reserve(bound);
  for (std::size_t i = 0; i < buckets; ++i) {
    p = put(p, name);
    p = put(p, "_bucket{");
    if (!labels.empty()) {
      p = put(p, labels);
      *p++ = ',';
    }
    p = put(p, "le=\"");
    p = put(p, les[i]);
    p = put(p, "\"} ");
    p = put_uint(p, s.cumulative_counts[i]);
    if (with_exemplars && s.exemplars[i]) p = put_exemplar(p, *s.exemplars[i]);
    *p++ = '\n';
  }
  auto put_suffixed = [&](std::string_view suffix) {
    p = put(p, name);
    p = put(p, suffix);
    if (!labels.empty()) {
      *p++ = '{';
      p = put(p, labels);
      *p++ = '}';
    }
    *p++ = ' ';
  };
  // The text format follows Prometheus' own client (_sum, _count); OpenMetrics its spec's
  // examples (_count, _sum). Both orders are valid in both formats.
  if (om) {
    put_suffixed("_count");
    p = put_uint(p, s.count);
    *p++ = '\n';
    put_suffixed("_sum");
    p = put_value(p, s.sum, om);
    *p++ = '\n';
  } else {
    put_suffixed("_sum");
    p = put_value(p, s.sum, om);
    *p++ = '\n';
    put_suffixed("_count");
    p = put_uint(p, s.count);
    *p++ = '\n';
  }
  w.commit(p);
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

bool iequals(std::string_view a, std::string_view b) {
  return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
           return std::tolower(static_cast<unsigned char>(x)) ==
                  std::tolower(static_cast<unsigned char>(y));
         });
}

// One element of an Accept or Accept-Encoding list: "token;param=value;q=0.5".
struct ListItem {
  std::string_view token;
  std::string_view version;  // the version parameter, if any
  double q = 1.0;
};

template <typename F>
void for_each_item(std::string_view header, F&& f) {
  while (!header.empty()) {
    const std::size_t comma = header.find(',');
    std::string_view item = header.substr(0, comma);
    header = comma == std::string_view::npos ? std::string_view{} : header.substr(comma + 1);
    ListItem li;
    const std::size_t semi = item.find(';');
    li.token = trim(item.substr(0, semi));
    std::string_view params =
        semi == std::string_view::npos ? std::string_view{} : item.substr(semi + 1);
    while (!params.empty()) {
      const std::size_t next = params.find(';');
      std::string_view param = params.substr(0, next);
      params = next == std::string_view::npos ? std::string_view{} : params.substr(next + 1);
      const std::size_t eq = param.find('=');
      if (eq == std::string_view::npos) continue;
      const std::string_view key = trim(param.substr(0, eq));
      std::string_view value = trim(param.substr(eq + 1));
      if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
        value = value.substr(1, value.size() - 2);
      }
      if (iequals(key, "q")) {
        double q = 0;
        auto r = std::from_chars(value.data(), value.data() + value.size(), q);
        li.q = (r.ec == std::errc{} && q >= 0 && q <= 1) ? q : 0.0;
      } else if (iequals(key, "version")) {
        li.version = value;
      }
    }
    if (!li.token.empty()) f(li);
  }
}

}  // namespace

ExpositionFormat negotiate_format(std::string_view accept_header) {
  double om_q = 0;
  double text_q = 0;
  for_each_item(accept_header, [&](const ListItem& item) {
    if (iequals(item.token, "application/openmetrics-text")) {
      if (item.version.empty() || item.version == "1.0.0") om_q = std::max(om_q, item.q);
    } else if (iequals(item.token, "text/plain") || iequals(item.token, "text/*") ||
               iequals(item.token, "*/*")) {
      text_q = std::max(text_q, item.q);
    }
  });
  return om_q > 0 && om_q >= text_q ? ExpositionFormat::openmetrics
                                    : ExpositionFormat::prometheus_text;
}

std::string_view content_type(ExpositionFormat format) {
  return format == ExpositionFormat::openmetrics
             ? "application/openmetrics-text; version=1.0.0; charset=utf-8"
             : "text/plain; version=0.0.4; charset=utf-8";
}

// An upper bound of the size of the exposition (exemplars aside), so that the output is sized
// once: growing a 20 MB string by doubling copies it several times.
std::size_t expected_size(const std::vector<FamilySnapshot>& families) {
  std::size_t total = 16;
  for (const FamilySnapshot& f : families) {
    total += 3 * f.name.size() + 2 * f.help.size() + f.unit.size() + 64;
    const std::size_t les = f.bounds.size() + 1;
    const std::size_t le_chars = les * 8;  // typical bound rendering; the writer grows if not
    for (const SeriesSnapshot& s : f.series) {
      const std::size_t labels =
          s.rendered_labels.empty() && !s.label_values.empty() ? 256 : s.rendered_labels.size();
      // name{labels} value: the value is at most kMaxFloatChars, counts at most 20 digits.
      const std::size_t line = f.name.size() + labels + 12;
      total += f.type == MetricType::histogram
                   ? les * (line + 8 + 20) + le_chars + 2 * (line + 8 + kMaxFloatChars)
                   : line + kMaxFloatChars;
    }
  }
  return total;
}

void serialize(std::string& out, const std::vector<FamilySnapshot>& families,
               ExpositionFormat format) {
  const bool om = format == ExpositionFormat::openmetrics;
  Writer w(out, expected_size(families));
  std::vector<std::string> les;
  std::string rendered;
  for (const FamilySnapshot& f : families) {
    write_metadata(w, f, om);
    les.clear();
    if (f.type == MetricType::histogram) {
      // le values rendered once per family, not once per series.
      for (double b : f.bounds) {
        char buf[kMaxFloatChars];
        les.emplace_back(buf, put_value(buf, b, om));
      }
      les.emplace_back("+Inf");
    }
    for (const SeriesSnapshot& s : f.series) {
      std::string_view labels = s.rendered_labels;
      if (labels.empty() && !s.label_values.empty()) {
        rendered.clear();
        detail::append_label_pairs(rendered, f.label_names, s.label_values);
        labels = rendered;
      }
      write_series(w, f, s, labels, les, om);
    }
  }
  if (om) w.append("# EOF\n");
}

bool accepts_gzip(std::string_view accept_encoding_header) {
  double gzip_q = -1;  // -1: not named
  double any_q = -1;
  for_each_item(accept_encoding_header, [&](const ListItem& item) {
    if (iequals(item.token, "gzip") || iequals(item.token, "x-gzip")) {
      gzip_q = std::max(gzip_q, item.q);
    } else if (item.token == "*") {
      any_q = std::max(any_q, item.q);
    }
  });
  if (gzip_q >= 0) return gzip_q > 0;
  return any_q > 0;
}

std::string gzip(std::string_view data) {
  z_stream zs{};
  // windowBits 15 + 16: a gzip header and trailer rather than a zlib one.
  if (deflateInit2(&zs, 1, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY) != Z_OK) {
    throw std::runtime_error("gzip: deflateInit2 failed");
  }
  std::string out;
  out.resize(deflateBound(&zs, static_cast<uLong>(data.size())) + 32);
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  const int rc = deflate(&zs, Z_FINISH);
  const std::size_t written = zs.total_out;
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) throw std::runtime_error("gzip: deflate failed");
  out.resize(written);
  return out;
}

std::vector<FamilySnapshot> select_series(std::vector<FamilySnapshot> families,
                                          std::string_view label, std::string_view value) {
  std::vector<FamilySnapshot> out;
  for (auto& family : families) {
    const auto& names = family.label_names;
    const auto at = std::find(names.begin(), names.end(), label);
    if (at == names.end()) continue;
    const auto index = static_cast<std::size_t>(at - names.begin());
    std::erase_if(family.series, [&](const SeriesSnapshot& s) {
      return index >= s.label_values.size() || s.label_values[index] != value;
    });
    if (!family.series.empty()) out.push_back(std::move(family));
  }
  return out;
}

}  // namespace meshhook::exporter
