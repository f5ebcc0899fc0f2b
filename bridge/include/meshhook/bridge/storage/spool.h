#pragma once
// The durable queue between ingest and the database writer: append-only segment files in one
// directory. accept() returns accepted only after its records are on disk (fdatasync), so an
// acknowledged run survives a crash of the daemon or of the machine.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <filesystem>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "meshhook/bridge/storage/run_sink.h"

namespace meshhook::bridge {

struct SpoolOptions {
  std::filesystem::path dir;
  std::uint64_t max_bytes = 1ull << 30;       // unconsumed record bytes; accept() beyond -> full
  std::uint64_t segment_bytes = 64ull << 20;  // a new segment file starts past this size
  /// How long the flusher waits to gather concurrent accept() calls into one write+fdatasync.
  /// 0 = flush as soon as a request arrives (requests arriving during a flush still share
  /// the next one).
  int group_commit_us = 1000;
};

/// A place in the spool: a segment's sequence number and a byte offset in it.
struct SpoolPosition {
  std::uint64_t segment = 0;
  std::uint64_t offset = 0;
  friend auto operator<=>(const SpoolPosition&, const SpoolPosition&) = default;
};

/// Records read for the writer: events[i] was appended before events[i+1]; end is where the
/// next read starts and what ack() takes once the events are stored.
struct SpoolBatch {
  std::vector<RunEvent> events;
  SpoolPosition end;
};

struct SpoolStats {
  std::uint64_t bytes = 0;    // record bytes appended and not yet acknowledged by the writer
  std::uint64_t records = 0;  // records appended and not yet acknowledged
  double oldest_record_age_seconds = 0;  // 0 when empty
  std::uint64_t segments = 0;            // segment files on disk
  bool failed = false;                   // a write or fsync failed and could not be undone
  bool checkpoint_failing = false;       // the last checkpoint could not be written (retried)
};

/// Thread-safe. accept() from any number of threads; read()/ack() from one reader (the
/// writer thread); stats() from anywhere.
class Spool final : public RunSink {
 public:
  /// Opens (creating if needed) the spool directory, recovers from the last checkpoint,
  /// validates every unconsumed record and cuts a torn or corrupt tail off (logged, never
  /// fatal), and starts the flusher. Throws std::runtime_error when the directory cannot be
  /// used (permissions, not a directory).
  explicit Spool(SpoolOptions options);
  ~Spool() override;
  Spool(const Spool&) = delete;
  Spool& operator=(const Spool&) = delete;

  /// All of events durably appended -> accepted; over max_bytes -> full, nothing written;
  /// an I/O error -> failed, nothing acknowledged. Never throws.
  Result accept(std::span<const RunEvent> events) override;

  /// Reads up to max_records durable records after the previous read (the checkpoint after
  /// open). Waits up to wait for at least one when there is none. Never blocks accept().
  SpoolBatch read(std::size_t max_records, std::chrono::milliseconds wait);
  /// Records up to end as stored: deletes fully consumed segments, then persists the
  /// checkpoint (temp file, fsync, rename). A later open starts reading at end. The records
  /// count as consumed either way; throws std::runtime_error when the checkpoint cannot be
  /// written (stats().checkpoint_failing until retry_checkpoint() or a later ack succeeds).
  void ack(SpoolPosition end);
  /// Writes the checkpoint again after a failed ack() (the reader calls it while idle).
  /// Returns true when the checkpoint on disk is current. Never throws.
  bool retry_checkpoint();
  /// Forgets what read() returned after the checkpoint, so the next read() starts there again.
  void rewind();

  SpoolStats stats() const;
  const SpoolOptions& options() const noexcept { return options_; }

  /// Bytes one event takes in a segment (header included).
  static std::size_t record_size(const RunEvent& event) noexcept;

 private:
  struct Request {
    std::string bytes;
    std::uint64_t records = 0;
    std::uint64_t ticket = 0;
  };
  struct SegmentInfo {
    std::uint64_t size = 0;  // durable bytes, header included
  };

  void recover();
  void flusher_loop();
  bool write_batch(std::vector<Request>& batch, std::string& error);
  void open_new_segment();
  std::filesystem::path segment_path(std::uint64_t seq) const;
  void persist_checkpoint(SpoolPosition position);
  void write_checkpoint(SpoolPosition position);  // persist, and keep checkpoint_failing_
  std::uint64_t scan_segment(std::uint64_t seq, std::uint64_t count_from);

  SpoolOptions options_;

  mutable std::mutex mutex_;
  std::condition_variable request_cv_;  // flusher waits for requests
  std::condition_variable done_cv_;     // accept() waits for its ticket
  std::condition_variable data_cv_;     // read() waits for durable data
  std::deque<Request> queue_;
  std::uint64_t next_ticket_ = 1;
  std::uint64_t done_ticket_ = 0;                  // every ticket <= this is finished
  std::map<std::uint64_t, std::string> failures_;  // ticket -> error, for failed flushes
  bool stopping_ = false;
  bool failed_ = false;

  // Accounting (under mutex_).
  std::uint64_t bytes_ = 0;
  std::uint64_t records_ = 0;
  std::uint64_t pending_bytes_ = 0;                // queued, not yet written
  std::map<std::uint64_t, SegmentInfo> segments_;  // every segment on disk, by sequence

  // Append side (flusher thread only, plus open/close).
  int fd_ = -1;
  std::uint64_t active_segment_ = 0;
  std::uint64_t active_size_ = 0;

  // Read side (reader thread, plus accounting under mutex_).
  struct ReadSpan {
    SpoolPosition end;
    std::uint64_t bytes = 0;
    std::uint64_t records = 0;
  };
  SpoolPosition checkpoint_;  // consumed up to here (on disk too unless checkpoint_failing_)
  bool checkpoint_failing_ = false;
  SpoolPosition read_pos_;
  std::deque<ReadSpan> read_spans_;      // what read() returned since the checkpoint
  std::int64_t oldest_appended_us_ = 0;  // appended_at of the record at checkpoint_; 0 = none
  int read_fd_ = -1;
  std::uint64_t read_fd_segment_ = 0;

  std::thread flusher_;
};

}  // namespace meshhook::bridge
