#pragma once
// CivetWeb glue: turns CivetWeb requests into bridge::HttpRequest values, routes them to
// plain handler functions and writes bridge::HttpResponse values back. No business logic.

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config.h"
#include "meshhook/bridge/common/http.h"
#include "meshhook/exporter/family.h"

namespace meshhook::app {

using Handler = std::function<bridge::HttpResponse(const bridge::HttpRequest&)>;
/// Answers a request from its method and headers alone (the body is not read yet), or
/// nullopt when the body is wanted: authentication goes here, so no stranger is read.
using HeaderCheck = std::function<std::optional<bridge::HttpResponse>(const bridge::HttpRequest&)>;

struct Route {
  std::string uri;    // CivetWeb handler URI: exact path, or a prefix that also matches uri/...
  std::string label;  // the `route` label of the request-duration histogram
  Handler handler;
  /// 0: the route takes no body; one that is sent is never read (the handler sees an empty
  /// body) and the connection is closed after the answer.
  std::size_t max_body_bytes = 0;
  HeaderCheck check_headers;  // empty: every request's body is read (up to max_body_bytes)
};

/// One listening CivetWeb server with its routes. Unknown paths answer a JSON 404.
/// A body is read only after the route's header check passed, by at most
/// listener.max_body_readers requests at once (others answer 503), and must arrive within
/// listener.request_timeout_ms of the headers (else 408 and the connection is closed).
/// Thread-safe after start(); handlers run on CivetWeb's worker threads.
class HttpServer {
 public:
  /// request_durations: a histogram family labelled {route, code}.
  HttpServer(std::string name, const ListenerConfig& listener,
             exporter::HistogramFamily& request_durations);
  ~HttpServer();

  void add(Route route);
  /// Binds and starts serving. Throws std::runtime_error naming the address on failure.
  void start();
  /// Stops accepting, lets in-flight requests finish, joins the workers.
  void stop();
  /// "http://127.0.0.1:9470" for each listening address.
  std::vector<std::string> urls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshhook::app
