#include "meshhook/bridge/storage/storage.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <pqxx/pqxx>
#include <stdexcept>

#include "detail/conninfo.h"
#include "meshhook/bridge/storage/batch_writer.h"
#include "meshhook/bridge/storage/compactor.h"
#include "meshhook/bridge/storage/logical_capture.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/spool.h"
#include "meshhook/bridge/storage/tailer.h"

namespace meshhook::bridge {

Storage::Storage(StorageOptions options, exporter::Registry& registry,
                 exporter::RunMetrics& metrics)
    : options_(std::move(options)), registry_(registry), run_metrics_(metrics) {}

Storage::~Storage() { stop(); }

void Storage::start() {
  if (started_) throw std::logic_error("Storage::start() called twice");
  // Schema first: refusing to start is better than spooling runs no one can write.
  try {
    auto status = check_schema(detail::with_connect_timeout(options_.database_url));
    if (!status.current()) throw std::runtime_error(status.message());
  } catch (const pqxx::broken_connection& e) {
    spdlog::warn("database unreachable at start ({}); spooling runs until it is back",
                 std::string(e.what()).substr(0, 200));
  }

  SpoolOptions spool_options;
  spool_options.dir = options_.spool_dir;
  spool_options.max_bytes = options_.spool_max_bytes;
  spool_options.segment_bytes = options_.spool_segment_bytes;
  spool_options.group_commit_us = options_.spool_group_commit_us;
  spool_ = std::make_unique<Spool>(spool_options);

  BatchWriterOptions writer_options;
  writer_options.database_url = options_.database_url;
  writer_options.batch_rows = options_.writer_batch_rows;
  writer_options.batch_interval = std::chrono::milliseconds(options_.writer_batch_interval_ms);
  writer_options.max_backoff = std::chrono::milliseconds(options_.writer_max_backoff_ms);
  writer_ = std::make_unique<BatchWriter>(*spool_, writer_options, registry_);
  writer_->start();

  if (options_.tail_enabled) {
    TailerOptions tailer_options;
    tailer_options.database_url = options_.database_url;
    tailer_options.interval = std::chrono::milliseconds(options_.tail_interval_ms);
    tailer_options.details_delay = std::chrono::milliseconds(options_.tail_details_delay_ms);
    tailer_ = std::make_unique<Tailer>(tailer_options, run_metrics_);
    tailer_->start();
  }
  if (options_.compaction_enabled) {
    CompactorOptions compactor_options;
    compactor_options.database_url = options_.database_url;
    compactor_options.interval = std::chrono::milliseconds(options_.compaction_interval_ms);
    compactor_options.batch_deltas = options_.compaction_batch_deltas;
    compactor_ = std::make_unique<Compactor>(compactor_options, registry_);
    compactor_->start();
  }
  if (options_.logical_capture) {
    LogicalCaptureOptions capture_options;
    capture_options.database_url = options_.database_url;
    capture_options.replication_url = options_.capture_replication_url;
    capture_options.slot = options_.capture_slot;
    capture_options.interval = std::chrono::milliseconds(options_.capture_interval_ms);
    capture_options.batch_runs = options_.capture_batch_runs;
    capture_ = std::make_unique<LogicalCapture>(capture_options, registry_);
    capture_->start();
  }
  if (options_.retention_days > 0) {
    retention_ = std::thread([this] { retention_loop(); });
  }
  started_ = true;
}

void Storage::stop() {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) return;
    stopping_ = true;
  }
  cv_.notify_all();
  if (retention_.joinable()) retention_.join();
  if (capture_) capture_->stop();
  if (tailer_) tailer_->stop();
  if (compactor_) compactor_->stop();
  if (writer_) writer_->stop(std::chrono::milliseconds(options_.stop_drain_ms));
  if (spool_) {
    auto s = spool_->stats();
    if (s.records > 0) {
      spdlog::info("{} run(s) stay in the spool and will be written after the next start",
                   s.records);
    }
  }
  spool_.reset();  // the flusher finishes every accept() in flight first
}

RunSink& Storage::sink() {
  if (!spool_) throw std::logic_error("Storage::sink() before start()");
  return *spool_;
}

Spool& Storage::spool() {
  if (!spool_) throw std::logic_error("Storage::spool() before start()");
  return *spool_;
}

BatchWriter& Storage::writer() {
  if (!writer_) throw std::logic_error("Storage::writer() before start()");
  return *writer_;
}

bool Storage::database_up() const { return writer_ && writer_->database_up(); }

bool Storage::ready() const {
  if (!database_up() || !spool_) return false;
  const auto s = spool_->stats();
  return !s.failed && !s.checkpoint_failing;
}

std::string Storage::readiness_detail() const {
  if (!spool_ || !writer_) return "storage not started";
  std::string out;
  if (writer_->database_up()) {
    out = "database up";
  } else {
    std::string error = writer_->last_error();
    if (auto nl = error.find('\n'); nl != std::string::npos) error.resize(nl);
    out = "database down: " + error;
  }
  auto s = spool_->stats();
  out += s.failed ? "; spool cannot write to disk" : "";
  out += s.checkpoint_failing ? "; spool checkpoint cannot be written" : "";
  char buf[160];
  std::snprintf(buf, sizeof buf, "; spool %llu runs (%llu bytes)",
                static_cast<unsigned long long>(s.records),
                static_cast<unsigned long long>(s.bytes));
  out += buf;
  if (s.records > 0) {
    std::snprintf(buf, sizeof buf, ", oldest %.1f s", s.oldest_record_age_seconds);
    out += buf;
  }
  if (tailer_) out += tailer_->active() ? "; tailer active" : "; tailer standby";
  if (capture_) out += capture_->active() ? "; capture active" : "; capture standby";
  return out;
}

void Storage::retention_loop() {
  auto keep_going = [this] {
    std::lock_guard lock(mutex_);
    return !stopping_;
  };
  auto wait = std::chrono::milliseconds(std::min(options_.retention_interval_ms, 30'000));
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      if (cv_.wait_for(lock, wait, [&] { return stopping_; })) return;
    }
    wait = std::chrono::milliseconds(options_.retention_interval_ms);
    try {
      auto deleted = delete_expired(options_.database_url, options_.retention_days,
                                    options_.retention_batch_rows, keep_going);
      if (deleted > 0) {
        spdlog::info("retention: deleted {} row(s) older than {} days", deleted,
                     options_.retention_days);
      }
    } catch (const std::exception& e) {
      spdlog::warn("retention: {}", std::string(e.what()).substr(0, 300));
    }
  }
}

std::uint64_t delete_expired(const std::string& url, int retention_days, std::size_t batch_rows,
                             const std::function<bool()>& keep_going) {
  if (retention_days <= 0) return 0;
  pqxx::connection conn(detail::with_connect_timeout(url));
  std::uint64_t total = 0;
  // Runs first, then their queue waits and steps: the same age, each table on its own.
  for (const char* table :
       {"execution_time_statistics", "queue_time_statistics", "step_time_statistics"}) {
    for (;;) {
      if (keep_going && !keep_going()) return total;
      pqxx::work tx(conn);
      // Bounded: one short transaction per batch, so locks and WAL stay small and the
      // writer is never blocked for long.
      auto r = tx.exec_params(std::string("delete from ") + table + " where id = any(array(" +
                                  "  select id from " + table +
                                  "  where finished_at < now() - make_interval(days => $1)"
                                  "  limit $2))",
                              retention_days, static_cast<long long>(batch_rows));
      tx.commit();
      total += static_cast<std::uint64_t>(r.affected_rows());
      if (r.affected_rows() < batch_rows) break;
    }
  }
  return total;
}

}  // namespace meshhook::bridge
