#pragma once
// The HTTP ingest path below the parser, for db tests: a spool and a batch writer on one test
// database; write() spools the events and waits until the writer has consumed them.

#include <chrono>
#include <string>
#include <thread>
#include <vector>

#include "db_support.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/exporter/registry.h"

namespace meshhook::testing {

struct Pipeline {
  TempDir dir;
  meshhook::bridge::Spool spool;
  meshhook::exporter::Registry registry;
  meshhook::bridge::BatchWriter writer;

  static meshhook::bridge::SpoolOptions spool_options(const TempDir& dir) {
    meshhook::bridge::SpoolOptions o;
    o.dir = dir.path;
    o.group_commit_us = 0;
    return o;
  }
  static meshhook::bridge::BatchWriterOptions writer_options(const std::string& url) {
    meshhook::bridge::BatchWriterOptions o;
    o.database_url = url;
    o.batch_interval = std::chrono::milliseconds(20);
    o.initial_backoff = std::chrono::milliseconds(50);
    return o;
  }

  explicit Pipeline(const std::string& url)
      : spool(spool_options(dir)), writer(spool, writer_options(url), registry) {
    writer.start();
  }

  void write(const std::vector<meshhook::bridge::RunEvent>& events) {
    REQUIRE(spool.accept(events).outcome == meshhook::bridge::RunSink::Outcome::accepted);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (spool.stats().records > 0 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    REQUIRE(spool.stats().records == 0);
    REQUIRE(writer.database_up());
  }
};

}  // namespace meshhook::testing
