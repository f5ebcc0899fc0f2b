#pragma once

#include <string>

#include "meshhook/bridge/common/http.h"

namespace meshhook::app {

/// Serves the files of one directory under a URL prefix (GET and HEAD), with content types,
/// ETags and cache headers: hashed assets are immutable, index.html is revalidated.
/// Paths that leave the directory are refused. Thread-safe (reads the disk per request).
class StaticFiles {
 public:
  StaticFiles(std::string root, std::string prefix);
  bridge::HttpResponse serve(const bridge::HttpRequest& request) const;

 private:
  std::string root_;
  std::string prefix_;
};

}  // namespace meshhook::app
