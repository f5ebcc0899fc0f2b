#pragma once

#include <memory>
#include <string>
#include <vector>

#include "config.h"

namespace meshhook::app {

/// The running daemon: registry and instruments, the sink (spool + writer when a database
/// is configured), the API listener and the metrics listener. start() and stop() are called
/// from one thread; requests are served on the listeners' worker threads.
class Service {
 public:
  explicit Service(Config config);
  ~Service();

  /// Throws std::runtime_error with a message for people (address in use, old schema, ...).
  void start();
  /// Stops accepting, finishes in-flight requests, drains what it can, stops the writer.
  void stop();
  /// What to open, one line each ("metrics  http://127.0.0.1:9471/metrics").
  std::vector<std::string> urls() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace meshhook::app
