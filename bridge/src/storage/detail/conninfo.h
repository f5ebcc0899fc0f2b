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

/// url with application_name set unless it names one, so that pg_stat_activity tells the
/// daemon's sessions apart (name: letters, digits and dashes only, nothing to escape).
inline std::string with_application_name(const std::string& url, const std::string& name) {
  if (url.find("application_name") != std::string::npos) return url;
  std::string param = "application_name=" + name;
  if (url.starts_with("postgresql://") || url.starts_with("postgres://")) {
    return url + (url.find('?') == std::string::npos ? "?" : "&") + param;
  }
  return url.empty() ? param : url + " " + param;
}

}  // namespace meshhook::bridge::detail
