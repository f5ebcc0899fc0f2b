#include "static_files.h"

#include <sys/stat.h>

#include <filesystem>
#include <fstream>
#include <sstream>

namespace meshhook::app {
namespace {

std::string_view content_type_of(std::string_view path) {
  const auto dot = path.rfind('.');
  const auto ext = dot == std::string_view::npos ? std::string_view() : path.substr(dot + 1);
  if (ext == "html") return "text/html; charset=utf-8";
  if (ext == "js" || ext == "mjs") return "text/javascript; charset=utf-8";
  if (ext == "css") return "text/css; charset=utf-8";
  if (ext == "json" || ext == "map") return "application/json";
  if (ext == "svg") return "image/svg+xml";
  if (ext == "png") return "image/png";
  if (ext == "ico") return "image/x-icon";
  if (ext == "woff2") return "font/woff2";
  if (ext == "txt") return "text/plain; charset=utf-8";
  return "application/octet-stream";
}

}  // namespace

StaticFiles::StaticFiles(std::string root, std::string prefix)
    : root_(std::move(root)), prefix_(std::move(prefix)) {}

bridge::HttpResponse StaticFiles::serve(const bridge::HttpRequest& request) const {
  if (request.method != "GET" && request.method != "HEAD") {
    auto r = bridge::json_error(405, "method_not_allowed", "use GET");
    r.headers.emplace_back("Allow", "GET, HEAD");
    return r;
  }
  std::string_view rel = request.path.substr(std::min(prefix_.size(), request.path.size()));
  if (rel.empty()) {  // "/ui" -> "/ui/" so relative asset URLs resolve
    bridge::HttpResponse r{301, "text/plain; charset=utf-8", "", {{"Location", prefix_ + "/"}}};
    return r;
  }
  while (!rel.empty() && rel.front() == '/') rel.remove_prefix(1);
  std::string file = rel.empty() ? "index.html" : std::string(rel);
  // Refuse anything that could step outside the root.
  if (file.find("..") != std::string::npos || file.find('\0') != std::string::npos ||
      file.find('\\') != std::string::npos) {
    return bridge::json_error(404, "not_found", "no such file");
  }
  const std::string path = root_ + "/" + file;
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode)) {
    if (::stat((root_ + "/index.html").c_str(), &st) != 0) {
      return bridge::json_error(404, "not_found",
                                "the dashboard page is not built: run `make build` (it runs "
                                "`npm run build` in dashboards/svelte)");
    }
    return bridge::json_error(404, "not_found", "no such file: " + file);
  }
  const std::string etag = "\"" + std::to_string(st.st_size) + "-" +
                           std::to_string(static_cast<long long>(st.st_mtime)) + "\"";
  bridge::HttpResponse r;
  r.content_type = std::string(content_type_of(file));
  r.headers.emplace_back("ETag", etag);
  // Vite names assets by content hash: cache them for a year. Everything else revalidates.
  const bool hashed = file.rfind("assets/", 0) == 0;
  r.headers.emplace_back("Cache-Control",
                         hashed ? "public, max-age=31536000, immutable" : "no-cache");
  if (request.header && request.header("If-None-Match") == etag) {
    r.status = 304;
    return r;
  }
  std::ifstream in(path, std::ios::binary);
  std::ostringstream data;
  data << in.rdbuf();
  r.body = data.str();
  return r;
}

}  // namespace meshhook::app
