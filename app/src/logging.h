#pragma once

#include <string>

namespace meshhook::app {

/// Sets spdlog's default logger: stderr, UTC timestamps, level and "text" or "json" lines.
void setup_logging(const std::string& level, const std::string& format);

}  // namespace meshhook::app
