#pragma once
// Serialises snapshots in the Prometheus text format 0.0.4 or OpenMetrics 1.0.0.
// Pure functions: no locale (numbers are written with std::to_chars), no I/O.

#include <string>
#include <string_view>
#include <vector>

#include "meshhook/exporter/snapshot.h"

namespace meshhook::exporter {

enum class ExpositionFormat { prometheus_text, openmetrics };

/// Picks the format from an HTTP Accept header: OpenMetrics when the client accepts
/// application/openmetrics-text (version 1.0.0 or unspecified) with a q at least that of
/// text/plain, else the text format.
ExpositionFormat negotiate_format(std::string_view accept_header);

/// The Content-Type header value for a format.
std::string_view content_type(ExpositionFormat format);

/// Appends the exposition of families to out. Exemplars appear only in OpenMetrics,
/// which also ends with "# EOF\n". Keeping one out per thread across scrapes (clear() it)
/// saves allocating, and faulting in, a fresh multi-megabyte buffer each time.
void serialize(std::string& out, const std::vector<FamilySnapshot>& families,
               ExpositionFormat format);

/// The series of families whose label `label` equals `value`: families without that label
/// are left out, and so are families left with no series. For one tenant's view of the
/// exposition (label "tenant").
std::vector<FamilySnapshot> select_series(std::vector<FamilySnapshot> families,
                                          std::string_view label, std::string_view value);

/// True when the Accept-Encoding header allows gzip.
bool accepts_gzip(std::string_view accept_encoding_header);
/// Gzip-compresses data (level 1: scrapes favour speed). Throws std::runtime_error on failure.
std::string gzip(std::string_view data);

}  // namespace meshhook::exporter
