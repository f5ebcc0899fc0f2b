#pragma once
// Framework-free HTTP request and response values, so the REST handlers can be tested
// without a server and the CivetWeb glue in app/ stays a few lines.

#include <functional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace meshhook::bridge {

struct HttpRequest {
  std::string_view method;
  std::string_view path;
  std::string_view query;  // without the '?'
  std::string_view body;
  /// Returns a header's value (case-insensitive name), or an empty view.
  std::function<std::string_view(std::string_view)> header;
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

/// MeshHook's error shape: {"error": "<code>", "message": "<for people>"}.
HttpResponse json_error(int status, std::string_view error, std::string_view message);

/// The reason phrase of a status code ("Accepted").
std::string_view reason_phrase(int status) noexcept;

/// The token of an "Authorization: Bearer <token>" header, or an empty view.
std::string_view bearer_token(std::string_view authorization) noexcept;

}  // namespace meshhook::bridge
