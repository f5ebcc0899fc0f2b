#pragma once
// Text helpers shared by the families and the exposition: UTF-8 truncation, escaping and the
// number formats of the Prometheus text format and OpenMetrics.

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace meshhook::exporter::detail {

/// The longest prefix of s that is at most max_bytes long and does not split a UTF-8
/// sequence. max_bytes == 0 means no limit.
inline std::string_view truncate_utf8(std::string_view s, std::size_t max_bytes) noexcept {
  if (max_bytes == 0 || s.size() <= max_bytes) return s;
  std::size_t cut = max_bytes;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return s.substr(0, cut);
}

/// Number of UTF-8 code points (continuation bytes are not counted).
inline std::size_t utf8_length(std::string_view s) noexcept {
  std::size_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

/// The longest prefix of s holding at most max_chars code points.
inline std::string_view truncate_utf8_chars(std::string_view s, std::size_t max_chars) noexcept {
  std::size_t chars = 0;
  for (std::size_t i = 0; i < s.size(); ++i) {
    if ((static_cast<unsigned char>(s[i]) & 0xC0) != 0x80) {
      if (chars == max_chars) return s.substr(0, i);
      ++chars;
    }
  }
  return s;
}

/// Label values in both formats: backslash, double quote and line feed are escaped.
/// Writes at most 2 * v.size() bytes.
inline char* put_label_value(char* p, std::string_view v) noexcept {
  for (char c : v) {
    switch (c) {
      case '\\':
        *p++ = '\\';
        *p++ = '\\';
        break;
      case '"':
        *p++ = '\\';
        *p++ = '"';
        break;
      case '\n':
        *p++ = '\\';
        *p++ = 'n';
        break;
      default:
        *p++ = c;
    }
  }
  return p;
}

inline void append_label_value(std::string& out, std::string_view v) {
  const std::size_t old = out.size();
  out.resize(old + 2 * v.size());
  char* end = put_label_value(out.data() + old, v);
  out.resize(static_cast<std::size_t>(end - out.data()));
}

/// Renders name="value",... (no braces) as it appears in both formats.
template <typename Names, typename Values>
void append_label_pairs(std::string& out, const Names& names, const Values& values) {
  for (std::size_t i = 0; i < names.size() && i < values.size(); ++i) {
    if (i > 0) out += ',';
    out += names[i];
    out += "=\"";
    append_label_value(out, values[i]);
    out += '"';
  }
}

inline char* put(char* p, std::string_view s) noexcept {
  std::memcpy(p, s.data(), s.size());
  return p + s.size();
}

inline char* put_uint(char* p, std::uint64_t v) noexcept { return std::to_chars(p, p + 20, v).ptr; }

/// Longest output of put_float, put_om_float and put_timestamp.
inline constexpr std::size_t kMaxFloatChars = 40;

/// Go's strconv.FormatFloat(v, 'g', -1, 64), which Prometheus' own client writes in the text
/// format: shortest round-trip digits, exponent form when the exponent is < -4 or >= 6.
inline char* put_float(char* p, double v) noexcept {
  if (std::isnan(v)) return put(p, "NaN");
  if (std::isinf(v)) return put(p, v > 0 ? "+Inf" : "-Inf");
  if (v == 0) return put(p, "0");
  char sci[32];
  auto r = std::to_chars(sci, sci + sizeof sci, v, std::chars_format::scientific);
  const char* e =
      static_cast<const char*>(std::memchr(sci, 'e', static_cast<std::size_t>(r.ptr - sci)));
  int exp = 0;
  std::from_chars(e + (e[1] == '+' ? 2 : 1), r.ptr, exp);
  if (exp < -4 || exp >= 6)
    return put(p, std::string_view(sci, static_cast<std::size_t>(r.ptr - sci)));
  return std::to_chars(p, p + kMaxFloatChars, v, std::chars_format::fixed).ptr;
}

/// OpenMetrics numbers: as above, but a float always shows it is one ("1.0", not "1"), which
/// also makes le values canonical.
inline char* put_om_float(char* p, double v) noexcept {
  char* start = p;
  p = put_float(p, v);
  if (std::isfinite(v)) {
    for (char* q = start; q < p; ++q) {
      if (*q == '.' || *q == 'e') return p;
    }
    p = put(p, ".0");
  }
  return p;
}

/// Unix timestamps in seconds, never in exponent form (e.g. 1700000000.123).
inline char* put_timestamp(char* p, double v) noexcept {
  if (!std::isfinite(v) || std::fabs(v) >= 1e15 || (v != 0 && std::fabs(v) < 1e-3)) {
    return put_float(p, v);
  }
  return std::to_chars(p, p + kMaxFloatChars, v, std::chars_format::fixed).ptr;
}

}  // namespace meshhook::exporter::detail
