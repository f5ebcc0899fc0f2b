#pragma once

#include <string_view>

#include "meshhook/exporter/registry.h"

namespace meshhook::exporter {

/// Adds a collector for process_cpu_seconds_total, process_resident_memory_bytes,
/// process_open_fds, process_max_fds and process_start_time_seconds (read from /proc at
/// scrape time), and the gauge meshhook_stats_build_info{version,revision} = 1.
void add_process_metrics(Registry& registry, std::string_view version, std::string_view revision);

}  // namespace meshhook::exporter
