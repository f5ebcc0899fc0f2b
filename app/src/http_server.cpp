#include "http_server.h"

#include <CivetServer.h>
#include <arpa/inet.h>
#include <dirent.h>
#include <dlfcn.h>
#include <netinet/in.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <sys/socket.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <list>
#include <mutex>
#include <stdexcept>
#include <thread>

#include "meshhook/exporter/family.h"

namespace meshhook::app {
namespace {

void write_response(mg_connection* conn, const bridge::HttpResponse& r, bool head,
                    bool close_connection) {
  std::string text;
  text.reserve(256 + (head ? 0 : r.body.size()));
  text += "HTTP/1.1 " + std::to_string(r.status) + " " +
          std::string(bridge::reason_phrase(r.status)) + "\r\n";
  text += "Content-Type: " + r.content_type + "\r\n";
  text += "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
  bool cache_set = false;
  for (const auto& [name, value] : r.headers) {
    text += name + ": " + value + "\r\n";
    cache_set |= strcasecmp(name.c_str(), "Cache-Control") == 0;
  }
  if (!cache_set) text += "Cache-Control: no-store\r\n";
  text += "X-Content-Type-Options: nosniff\r\n";
  if (close_connection) text += "Connection: close\r\n";
  text += "\r\n";
  // One write, so one send and one segment for the client to wake up for, not two.
  if (!head) text += r.body;
  mg_write(conn, text.data(), text.size());
}

// The address and port of a socket's peer ("127.0.0.1", 52114), or port -1.
std::pair<std::string, int> peer_of(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return {{}, -1};
  char text[INET6_ADDRSTRLEN] = {};
  if (sa.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&sa);
    inet_ntop(AF_INET, &in->sin_addr, text, sizeof text);
    return {text, ntohs(in->sin_port)};
  }
  if (sa.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&sa);
    inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof text);
    return {text, ntohs(in6->sin6_port)};
  }
  return {{}, -1};
}

int local_port_of(int fd) {
  sockaddr_storage sa{};
  socklen_t len = sizeof sa;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&sa), &len) != 0) return -1;
  if (sa.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&sa)->sin_port);
  if (sa.ss_family == AF_INET6) return ntohs(reinterpret_cast<const sockaddr_in6*>(&sa)->sin6_port);
  return -1;
}

// Shuts the reading side of this process's socket connected from peer_addr:peer_port to
// server_port. CivetWeb exposes no socket; after a handler it drains an unread body for as
// long as bytes keep coming, so a request whose body is refused or late has its reading side
// shut: the read in progress, or that drain, sees the end at once and the connection closes.
void shut_reading(const std::string& peer_addr, int peer_port, int server_port) {
  DIR* dir = opendir("/proc/self/fd");
  if (!dir) return;
  while (dirent* e = readdir(dir)) {
    const int fd = std::atoi(e->d_name);
    if (fd <= 2) continue;
    const auto [addr, port] = peer_of(fd);
    if (port == peer_port && addr == peer_addr && local_port_of(fd) == server_port) {
      shutdown(fd, SHUT_RD);
      break;
    }
  }
  closedir(dir);
}

}  // namespace

/// The requests of one server that are reading a body: at most `max` at once, each until its
/// deadline. CivetWeb restarts its read timeout whenever a byte arrives and exposes no
/// socket, so a watchdog shuts the reading side of a late request's socket (shut_reading):
/// the blocked read returns at once and the request is answered 408.
class BodyReaders {
 public:
  struct Reader {
    std::chrono::steady_clock::time_point deadline;
    std::string peer_addr;
    int peer_port;
    int server_port;
    bool cut = false;
  };
  using Ticket = std::list<Reader>::iterator;

  BodyReaders(std::size_t max, std::chrono::milliseconds timeout)
      : max_(max), timeout_(timeout), watchdog_([this] { watch(); }) {}

  ~BodyReaders() {
    {
      std::lock_guard lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    watchdog_.join();
  }

  /// A place for one more reader, or nullopt when `max` are reading.
  std::optional<Ticket> enter(const mg_request_info& info) {
    std::lock_guard lock(mutex_);
    if (readers_.size() >= max_) return std::nullopt;
    readers_.push_back(Reader{std::chrono::steady_clock::now() + timeout_, info.remote_addr,
                              info.remote_port, info.server_port});
    wake_.notify_all();
    return std::prev(readers_.end());
  }

  /// Gives the place back; true when the watchdog cut the reader at its deadline. Once this
  /// returned the watchdog no longer touches the request's socket.
  bool leave(Ticket t) {
    std::lock_guard lock(mutex_);
    const bool cut = t->cut;
    readers_.erase(t);
    return cut;
  }

  std::chrono::milliseconds timeout() const noexcept { return timeout_; }

 private:
  void watch() {
    std::unique_lock lock(mutex_);
    while (!stopping_) {
      auto next = std::chrono::steady_clock::now() + std::chrono::seconds(1);
      const auto now = std::chrono::steady_clock::now();
      for (auto& r : readers_) {
        if (r.cut) continue;
        if (r.deadline <= now) {
          // Held under the lock: the request cannot leave and its socket cannot close.
          cut(r);
        } else {
          next = std::min(next, r.deadline);
        }
      }
      wake_.wait_until(lock, next);
    }
  }

  static void cut(Reader& r) {
    r.cut = true;
    shut_reading(r.peer_addr, r.peer_port, r.server_port);
  }

  const std::size_t max_;
  const std::chrono::milliseconds timeout_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::list<Reader> readers_;
  bool stopping_ = false;
  std::thread watchdog_;
};

class RouteHandler : public CivetHandler {
 public:
  RouteHandler(Route route, exporter::HistogramFamily& durations, BodyReaders& readers)
      : route_(std::move(route)), durations_(durations), readers_(readers) {}

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
    // A body announced and not read: the connection cannot carry another request.
    const bool has_body =
        info->content_length > 0 ||
        (info->content_length < 0 && mg_get_header(conn, "Transfer-Encoding") != nullptr);

    bridge::HttpResponse resp;
    bool close_connection = has_body;
    std::string body;
    std::optional<bridge::HttpResponse> refused;
    if (has_body && route_.check_headers) refused = route_.check_headers(req);
    if (refused) {
      resp = std::move(*refused);
    } else if (!has_body || route_.max_body_bytes == 0) {
      resp = call(req);
    } else if (info->content_length > static_cast<long long>(route_.max_body_bytes)) {
      // Refused before reading: the client's remaining bytes are dropped with the connection.
      resp = too_large();
    } else if (auto ticket = readers_.enter(*info)) {
      const auto outcome = read_body(conn, info->content_length, body);
      const bool cut = readers_.leave(*ticket);
      // A chunked body ends at the socket's end, so one cut at the deadline may look whole.
      if (outcome == BodyRead::complete && !(cut && info->content_length < 0)) {
        close_connection = false;
        req.body = body;
        resp = call(req);
      } else if (outcome == BodyRead::too_large) {
        resp = too_large();
      } else if (cut || outcome == BodyRead::late) {
        resp = bridge::json_error(408, "request_timeout",
                                  "the body did not arrive within " +
                                      std::to_string(readers_.timeout().count()) +
                                      " ms of the headers");
      } else {
        resp = bridge::json_error(400, "incomplete_body",
                                  "the connection ended before the announced body");
      }
    } else {
      resp = bridge::json_error(503, "busy", "too many requests are sending a body at once; retry");
      resp.headers.emplace_back("Retry-After", "1");
    }
    write_response(conn, resp, req.method == "HEAD", close_connection);
    if (close_connection) shut_reading(info->remote_addr, info->remote_port, info->server_port);

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

  enum class BodyRead { complete, too_large, late, ended };

  // Reads the whole body (content_length, or chunked when -1) unless it is too large, late
  // (checked after every read; the watchdog ends a read that blocks past the deadline) or
  // the connection ends first.
  BodyRead read_body(mg_connection* conn, long long content_length, std::string& body) {
    const auto deadline = std::chrono::steady_clock::now() + readers_.timeout();
    if (content_length > 0) body.reserve(static_cast<std::size_t>(content_length));
    char buf[16384];
    for (;;) {
      const int n = mg_read(conn, buf, sizeof buf);
      if (n > 0) {
        if (body.size() + static_cast<std::size_t>(n) > route_.max_body_bytes) {
          return BodyRead::too_large;
        }
        body.append(buf, static_cast<std::size_t>(n));
      }
      const bool done =
          content_length >= 0 ? body.size() >= static_cast<std::size_t>(content_length) : n == 0;
      if (done) return BodyRead::complete;
      if (std::chrono::steady_clock::now() >= deadline) return BodyRead::late;
      if (n <= 0) return BodyRead::ended;
    }
  }

  bridge::HttpResponse call(const bridge::HttpRequest& req) {
    try {
      return route_.handler(req);
    } catch (const std::exception& e) {
      spdlog::error("{} {}: {}", req.method, route_.label, e.what());
      return bridge::json_error(500, "internal", "the server failed to answer; see its log");
    }
  }

  bridge::HttpResponse too_large() const {
    return bridge::json_error(
        413, "payload_too_large",
        "the body is larger than " + std::to_string(route_.max_body_bytes) + " bytes");
  }

  Route route_;
  exporter::HistogramFamily& durations_;
  BodyReaders& readers_;
};

struct HttpServer::Impl {
  std::string name;
  ListenerConfig listener;
  exporter::HistogramFamily& durations;
  BodyReaders readers{static_cast<std::size_t>(listener.max_body_readers),
                      std::chrono::milliseconds(listener.request_timeout_ms)};
  std::vector<std::unique_ptr<RouteHandler>> handlers;
  std::vector<std::string> uris;
  std::unique_ptr<CivetServer> server;
  std::unique_ptr<RouteHandler> not_found;
};

HttpServer::HttpServer(std::string name, const ListenerConfig& listener,
                       exporter::HistogramFamily& request_durations)
    : impl_(new Impl{std::move(name), listener, request_durations}) {
  impl_->not_found = std::make_unique<RouteHandler>(
      Route{"/", "other",
            [](const bridge::HttpRequest& r) {
              return bridge::json_error(404, "not_found",
                                        "no such endpoint: " + std::string(r.path));
            }},
      impl_->durations, impl_->readers);
}

HttpServer::~HttpServer() { stop(); }

void HttpServer::add(Route route) {
  impl_->uris.push_back(route.uri);
  impl_->handlers.push_back(
      std::make_unique<RouteHandler>(std::move(route), impl_->durations, impl_->readers));
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
