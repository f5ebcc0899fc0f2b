#include "http_server.h"

#include <CivetServer.h>
#include <dlfcn.h>
#include <spdlog/spdlog.h>
#include <strings.h>

#include <chrono>
#include <stdexcept>

#include "meshhook/exporter/family.h"

namespace meshhook::app {
namespace {

void write_response(mg_connection* conn, const bridge::HttpResponse& r, bool head,
                    bool close_connection) {
  std::string head_text = "HTTP/1.1 " + std::to_string(r.status) + " " +
                          std::string(bridge::reason_phrase(r.status)) + "\r\n";
  head_text += "Content-Type: " + r.content_type + "\r\n";
  head_text += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  bool cache_set = false;
  for (const auto& [name, value] : r.headers) {
    head_text += name + ": " + value + "\r\n";
    cache_set |= strcasecmp(name.c_str(), "Cache-Control") == 0;
  }
  if (!cache_set) head_text += "Cache-Control: no-store\r\n";
  head_text += "X-Content-Type-Options: nosniff\r\n";
  if (close_connection) head_text += "Connection: close\r\n";
  head_text += "\r\n";
  mg_write(conn, head_text.data(), head_text.size());
  if (!head && !r.body.empty()) mg_write(conn, r.body.data(), r.body.size());
}

}  // namespace

class RouteHandler : public CivetHandler {
 public:
  RouteHandler(Route route, exporter::HistogramFamily& durations)
      : route_(std::move(route)), durations_(durations) {}

  bool handleGet(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handlePost(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handleHead(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handlePut(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handleDelete(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handleOptions(CivetServer*, mg_connection* c) override { return serve(c); }
  bool handlePatch(CivetServer*, mg_connection* c) override { return serve(c); }

 private:
  bool serve(mg_connection* conn) {
    const auto start = std::chrono::steady_clock::now();
    const mg_request_info* info = mg_get_request_info(conn);
    bridge::HttpRequest req;
    req.method = info->request_method ? info->request_method : "";
    req.path = info->local_uri ? info->local_uri : "";
    req.query = info->query_string ? info->query_string : "";
    req.header = [conn](std::string_view name) -> std::string_view {
      const char* v = mg_get_header(conn, std::string(name).c_str());
      return v ? std::string_view(v) : std::string_view();
    };

    bridge::HttpResponse resp;
    bool close_connection = false;
    std::string body;
    if (info->content_length > static_cast<long long>(route_.max_body_bytes)) {
      // Refused before reading: the client's remaining bytes are dropped with the connection.
      resp = bridge::json_error(
          413, "payload_too_large",
          "the body is larger than " + std::to_string(route_.max_body_bytes) + " bytes");
      close_connection = true;
    } else {
      if (info->content_length > 0) body.reserve(static_cast<std::size_t>(info->content_length));
      char buf[16384];
      int n;
      while ((n = mg_read(conn, buf, sizeof buf)) > 0) {
        if (body.size() + static_cast<std::size_t>(n) > route_.max_body_bytes) {
          close_connection = true;
          break;
        }
        body.append(buf, static_cast<std::size_t>(n));
      }
      if (close_connection) {
        resp = bridge::json_error(
            413, "payload_too_large",
            "the body is larger than " + std::to_string(route_.max_body_bytes) + " bytes");
      } else {
        req.body = body;
        try {
          resp = route_.handler(req);
        } catch (const std::exception& e) {
          spdlog::error("{} {}: {}", req.method, route_.label, e.what());
          resp = bridge::json_error(500, "internal", "the server failed to answer; see its log");
        }
      }
    }
    write_response(conn, resp, req.method == "HEAD", close_connection);

    const double seconds =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const int status = resp.status;
    const char code[3] = {static_cast<char>('0' + status / 100 % 10),
                          static_cast<char>('0' + status / 10 % 10),
                          static_cast<char>('0' + status % 10)};
    durations_.with({route_.label, std::string_view(code, 3)}).observe(seconds);
    spdlog::debug("{} {} {} {}B {:.3f}ms", req.method, req.path, resp.status, resp.body.size(),
                  seconds * 1e3);
    return true;
  }

  Route route_;
  exporter::HistogramFamily& durations_;
};

struct HttpServer::Impl {
  std::string name;
  ListenerConfig listener;
  exporter::HistogramFamily& durations;
  std::vector<std::unique_ptr<RouteHandler>> handlers;
  std::vector<std::string> uris;
  std::unique_ptr<CivetServer> server;
  std::unique_ptr<RouteHandler> not_found;
};

HttpServer::HttpServer(std::string name, const ListenerConfig& listener,
                       exporter::HistogramFamily& request_durations)
    : impl_(new Impl{std::move(name), listener, request_durations, {}, {}, {}, {}}) {
  impl_->not_found = std::make_unique<RouteHandler>(
      Route{"/", "other",
            [](const bridge::HttpRequest& r) {
              return bridge::json_error(404, "not_found",
                                        "no such endpoint: " + std::string(r.path));
            }},
      impl_->durations);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::add(Route route) {
  impl_->uris.push_back(route.uri);
  impl_->handlers.push_back(std::make_unique<RouteHandler>(std::move(route), impl_->durations));
}

namespace {
int log_civetweb(const mg_connection*, const char* message) {
  spdlog::warn("http: {}", message);
  return 1;
}
}  // namespace

void HttpServer::start() {
  std::string ports = impl_->listener.listen;
  if (!impl_->listener.tls_certificate.empty()) {
    ports += "s";
    // Before CivetWeb loads "libssl.so" itself: see app/tls/openssl3_compat.c.
    static void* const compat = dlopen(MESHHOOK_OPENSSL3_COMPAT, RTLD_NOW | RTLD_GLOBAL);
    if (!compat) spdlog::warn("TLS: cannot load the OpenSSL 3 shim for CivetWeb: {}", dlerror());
  }
  std::vector<std::string> options = {
      "listening_ports",
      ports,
      "num_threads",
      std::to_string(impl_->listener.threads),
      "request_timeout_ms",
      std::to_string(impl_->listener.request_timeout_ms),
      "max_request_size",
      std::to_string(impl_->listener.max_header_bytes),
      "enable_keep_alive",
      "yes",
      "keep_alive_timeout_ms",
      "5000",
      "tcp_nodelay",
      "1",
      "decode_url",
      "yes",
  };
  if (!impl_->listener.tls_certificate.empty()) {
    options.insert(options.end(), {"ssl_certificate", impl_->listener.tls_certificate,
                                   "ssl_protocol_version", "4"});
  }
  CivetCallbacks callbacks;
  callbacks.log_message = log_civetweb;
  try {
    impl_->server = std::make_unique<CivetServer>(options, &callbacks);
  } catch (const CivetException& e) {
    throw std::runtime_error(impl_->name + " listener: cannot listen on " + impl_->listener.listen +
                             ": " + e.what() + " (is the address in use or not local?)");
  }
  for (std::size_t i = 0; i < impl_->handlers.size(); ++i) {
    impl_->server->addHandler(impl_->uris[i], impl_->handlers[i].get());
  }
  impl_->server->addHandler("/", impl_->not_found.get());
}

void HttpServer::stop() {
  if (impl_ && impl_->server) {
    impl_->server->close();
    impl_->server.reset();
  }
}

std::vector<std::string> HttpServer::urls() const {
  std::vector<std::string> out;
  const bool tls = !impl_->listener.tls_certificate.empty();
  out.push_back(std::string(tls ? "https://" : "http://") + impl_->listener.listen);
  return out;
}

}  // namespace meshhook::app
