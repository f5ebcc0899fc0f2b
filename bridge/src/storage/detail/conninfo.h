#pragma once
// Connection strings as the daemon uses them.

#include <string>

namespace meshhook::bridge::detail {

/// url with a connect_timeout (seconds) unless it names one: libpq otherwise waits forever
/// for an unreachable host, and the writer could not back off or stop.
inline std::string with_connect_timeout(const std::string& url, int seconds = 5) {
  if (url.find("connect_timeout") != std::string::npos) return url;
  std::string param = "connect_timeout=" + std::to_string(seconds);
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
  }
  return url.empty() ? param : url + " " + param;
}

}  // namespace meshhook::bridge::detail
