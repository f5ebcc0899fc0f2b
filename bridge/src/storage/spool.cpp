#include "meshhook/bridge/storage/spool.h"

#include <fcntl.h>
#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <system_error>

namespace meshhook::bridge {
namespace {

// Segment file: an 8-byte magic, then records. Record: u32 payload length, u32 crc32 of the
// payload, payload. Payload (little-endian, as the daemon writes and reads it on one host):
//   u8 format version, i64 appended_at_us, 16 run_id, 16 workflow_id, 16 project_id,
//   u8 status, i64 started_at_us, i64 finished_at_us, u16 name length, name bytes,
// and since version 2 the run's details:
//   i64 queued_at_us (0 = none), u16 step count, then per step: u8 status, u32 attempts,
//   i64 started_at_us, i64 finished_at_us, u16 id length, id bytes, u16 type length, type bytes.
// Version 1 records (written by earlier releases, without details) are still read, so an
// upgrade replays what the previous daemon left in the spool.
constexpr char kSegmentMagic[8] = {'M', 'H', 'S', 'P', 'O', 'O', 'L', '1'};
constexpr std::uint64_t kSegmentHeader = sizeof(kSegmentMagic);
constexpr std::size_t kRecordHeader = 8;
constexpr std::size_t kFixedPayload = 1 + 8 + 16 * 3 + 1 + 8 + 8 + 2;
constexpr std::size_t kMaxName = 0xffff;
constexpr std::size_t kFixedDetails = 8 + 2;
constexpr std::size_t kFixedStep = 1 + 4 + 8 + 8 + 2 + 2;
constexpr std::size_t kMaxStepText = RunStep::kMaxIdBytes + RunStep::kMaxTypeBytes;
constexpr std::uint32_t kMaxPayload =
    kFixedPayload + kMaxName + kFixedDetails + RunEvent::kMaxSteps * (kFixedStep + kMaxStepText);
constexpr std::uint8_t kFormatWithoutDetails = 1;
constexpr std::uint8_t kFormatVersion = 2;

constexpr char kCheckpointMagic[8] = {'M', 'H', 'C', 'K', 'P', 'T', '0', '1'};
constexpr const char* kCheckpointName = "checkpoint";

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

template <typename T>
void put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

template <typename T>
T get(const char*& p) {
  T v;
  std::memcpy(&v, p, sizeof(T));
  p += sizeof(T);
  return v;
}

std::uint32_t crc_of(const char* data, std::size_t size) {
  return static_cast<std::uint32_t>(
      crc32(0L, reinterpret_cast<const Bytef*>(data), static_cast<uInt>(size)));
}

// The parser keeps events within these bounds; the spool clamps rather than trusts them, so a
// record never exceeds kMaxPayload.
std::size_t step_count(const RunEvent& e) { return std::min(e.steps.size(), RunEvent::kMaxSteps); }
std::size_t id_size(const RunStep& s) { return std::min(s.id.size(), RunStep::kMaxIdBytes); }
std::size_t type_size(const RunStep& s) { return std::min(s.type.size(), RunStep::kMaxTypeBytes); }

std::size_t payload_size(const RunEvent& e) {
  std::size_t size = kFixedPayload + std::min(e.workflow_name.size(), kMaxName) + kFixedDetails;
  for (std::size_t i = 0; i < step_count(e); ++i) {
    size += kFixedStep + id_size(e.steps[i]) + type_size(e.steps[i]);
  }
  return size;
}

void encode_details(std::string& out, const RunEvent& e) {
  put<std::int64_t>(out, e.queued_at_us);
  put<std::uint16_t>(out, static_cast<std::uint16_t>(step_count(e)));
  for (std::size_t i = 0; i < step_count(e); ++i) {
    const RunStep& step = e.steps[i];
    put<std::uint8_t>(out, static_cast<std::uint8_t>(step.status));
    put<std::uint32_t>(out, step.attempts);
    put<std::int64_t>(out, step.started_at_us);
    put<std::int64_t>(out, step.finished_at_us);
    put<std::uint16_t>(out, static_cast<std::uint16_t>(id_size(step)));
    out.append(step.id.data(), id_size(step));
    put<std::uint16_t>(out, static_cast<std::uint16_t>(type_size(step)));
    out.append(step.type.data(), type_size(step));
  }
}

void encode(std::string& out, const RunEvent& e, std::int64_t appended_at_us) {
  std::size_t name_len = std::min(e.workflow_name.size(), kMaxName);
  auto payload_len = static_cast<std::uint32_t>(payload_size(e));
  std::size_t start = out.size();
  put<std::uint32_t>(out, payload_len);
  put<std::uint32_t>(out, 0);  // crc, filled below
  put<std::uint8_t>(out, kFormatVersion);
  put<std::int64_t>(out, appended_at_us);
  out.append(reinterpret_cast<const char*>(e.run_id.bytes.data()), 16);
  out.append(reinterpret_cast<const char*>(e.workflow_id.bytes.data()), 16);
  out.append(reinterpret_cast<const char*>(e.project_id.bytes.data()), 16);
  put<std::uint8_t>(out, static_cast<std::uint8_t>(e.status));
  put<std::int64_t>(out, e.started_at_us);
  put<std::int64_t>(out, e.finished_at_us);
  put<std::uint16_t>(out, static_cast<std::uint16_t>(name_len));
  out.append(e.workflow_name.data(), name_len);
  encode_details(out, e);
  std::uint32_t crc = crc_of(out.data() + start + kRecordHeader, payload_len);
  std::memcpy(out.data() + start + 4, &crc, 4);
}

// Reads n bytes of text at p, if that many are left before end.
bool get_text(const char*& p, const char* end, std::size_t n, std::string& out) {
  if (static_cast<std::size_t>(end - p) < n) return false;
  out.assign(p, n);
  p += n;
  return true;
}

// The details after the name (version 2); false when they do not fill the payload exactly.
bool decode_details(const char* p, const char* end, RunEvent& e) {
  if (static_cast<std::size_t>(end - p) < kFixedDetails) return false;
  e.queued_at_us = get<std::int64_t>(p);
  auto steps = get<std::uint16_t>(p);
  if (steps > RunEvent::kMaxSteps) return false;
  e.steps.resize(steps);
  for (RunStep& step : e.steps) {
    if (static_cast<std::size_t>(end - p) < kFixedStep) return false;
    auto status = get<std::uint8_t>(p);
    if (status < 1 || status > 2) return false;
    step.status = static_cast<StepStatus>(status);
    step.attempts = get<std::uint32_t>(p);
    step.started_at_us = get<std::int64_t>(p);
    step.finished_at_us = get<std::int64_t>(p);
    const auto id_len = get<std::uint16_t>(p);
    if (!get_text(p, end, id_len, step.id) || end - p < 2) return false;
    const auto type_len = get<std::uint16_t>(p);
    if (!get_text(p, end, type_len, step.type)) return false;
  }
  return p == end;
}

// Decodes one payload whose CRC already matched. False when the content makes no sense.
bool decode(const char* p, std::size_t size, RunEvent& e, std::int64_t& appended_at_us) {
  if (size < kFixedPayload) return false;
  const char* end = p + size;
  const auto version = get<std::uint8_t>(p);
  if (version != kFormatVersion && version != kFormatWithoutDetails) return false;
  appended_at_us = get<std::int64_t>(p);
  std::memcpy(e.run_id.bytes.data(), p, 16);
  std::memcpy(e.workflow_id.bytes.data(), p + 16, 16);
  std::memcpy(e.project_id.bytes.data(), p + 32, 16);
  p += 48;
  auto status = get<std::uint8_t>(p);
  if (status < 1 || status > 4) return false;
  e.status = static_cast<RunStatus>(status);
  e.started_at_us = get<std::int64_t>(p);
  e.finished_at_us = get<std::int64_t>(p);
  auto name_len = get<std::uint16_t>(p);
  if (version == kFormatWithoutDetails) {
    if (static_cast<std::size_t>(end - p) != name_len) return false;
    e.workflow_name.assign(p, name_len);
    return true;
  }
  return get_text(p, end, name_len, e.workflow_name) && decode_details(p, end, e);
}

[[noreturn]] void throw_errno(const std::string& what) {
  throw std::system_error(errno, std::generic_category(), what);
}

void write_all(int fd, const char* data, std::size_t size) {
  while (size > 0) {
    ssize_t n = ::write(fd, data, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("write");
    }
    data += n;
    size -= static_cast<std::size_t>(n);
  }
}

// Reads exactly size bytes at offset; returns how many it got (less at end of file).
std::size_t pread_all(int fd, char* data, std::size_t size, std::uint64_t offset) {
  std::size_t got = 0;
  while (got < size) {
    ssize_t n = ::pread(fd, data + got, size - got, static_cast<off_t>(offset + got));
    if (n < 0) {
      if (errno == EINTR) continue;
      throw_errno("pread");
    }
    if (n == 0) break;
    got += static_cast<std::size_t>(n);
  }
  return got;
}

void fsync_dir(const std::filesystem::path& dir) {
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + dir.string());
  int rc = ::fsync(fd);
  int err = errno;
  ::close(fd);
  if (rc != 0) {
    errno = err;
    throw_errno("fsync " + dir.string());
  }
}

bool parse_segment_name(const std::string& name, std::uint64_t& seq) {
  // segment-<20 digits>.spool
  if (name.size() != 8 + 20 + 6 || !name.starts_with("segment-") || !name.ends_with(".spool")) {
    return false;
  }
  seq = 0;
  for (std::size_t i = 8; i < 28; ++i) {
    if (name[i] < '0' || name[i] > '9') return false;
    seq = seq * 10 + static_cast<std::uint64_t>(name[i] - '0');
  }
  return true;
}

}  // namespace

std::size_t Spool::record_size(const RunEvent& event) noexcept {
  return kRecordHeader + payload_size(event);
}

Spool::Spool(SpoolOptions options) : options_(std::move(options)) {
  std::error_code ec;
  std::filesystem::create_directories(options_.dir, ec);
  if (ec || !std::filesystem::is_directory(options_.dir)) {
    throw std::runtime_error("spool directory " + options_.dir.string() +
                             " cannot be created: " + (ec ? ec.message() : "not a directory"));
  }
  if (::access(options_.dir.c_str(), R_OK | W_OK | X_OK) != 0) {
    throw std::runtime_error("spool directory " + options_.dir.string() +
                             " is not writable: " + std::strerror(errno));
  }
  try {
    recover();
    open_new_segment();
  } catch (const std::system_error& e) {
    throw std::runtime_error("spool " + options_.dir.string() + ": " + e.what());
  }
  flusher_ = std::thread([this] { flusher_loop(); });
}

Spool::~Spool() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  request_cv_.notify_all();
  if (flusher_.joinable()) flusher_.join();
  if (fd_ >= 0) ::close(fd_);
  if (read_fd_ >= 0) ::close(read_fd_);
}

std::filesystem::path Spool::segment_path(std::uint64_t seq) const {
  char name[40];
  std::snprintf(name, sizeof name, "segment-%020llu.spool", static_cast<unsigned long long>(seq));
  return options_.dir / name;
}

void Spool::recover() {
  std::vector<std::uint64_t> found;
  for (const auto& entry : std::filesystem::directory_iterator(options_.dir)) {
    std::uint64_t seq = 0;
    if (entry.is_regular_file() && parse_segment_name(entry.path().filename().string(), seq)) {
      found.push_back(seq);
    }
  }
  std::sort(found.begin(), found.end());

  // The checkpoint: magic, segment, offset, crc32 of the 16 bytes before it.
  bool have_checkpoint = false;
  {
    auto path = options_.dir / kCheckpointName;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      char buf[28];
      std::size_t got = pread_all(fd, buf, sizeof buf, 0);
      ::close(fd);
      std::uint32_t crc = 0;
      if (got == sizeof buf) std::memcpy(&crc, buf + 24, 4);
      if (got == sizeof buf && std::memcmp(buf, kCheckpointMagic, 8) == 0 &&
          crc == crc_of(buf + 8, 16)) {
        std::memcpy(&checkpoint_.segment, buf + 8, 8);
        std::memcpy(&checkpoint_.offset, buf + 16, 8);
        have_checkpoint = true;
      } else {
        spdlog::warn(
            "spool {}: checkpoint is damaged; replaying every segment (stored runs "
            "are skipped by run_id)",
            options_.dir.string());
      }
    }
  }

  std::uint64_t last_seq = have_checkpoint ? checkpoint_.segment : 0;
  for (auto seq : found) {
    last_seq = std::max(last_seq, seq);
    if (have_checkpoint && seq < checkpoint_.segment) {
      std::filesystem::remove(segment_path(seq));  // consumed; the delete did not finish
      continue;
    }
    segments_[seq] = SegmentInfo{};
  }
  if (!have_checkpoint || !segments_.contains(checkpoint_.segment)) {
    checkpoint_ = segments_.empty() ? SpoolPosition{last_seq + 1, kSegmentHeader}
                                    : SpoolPosition{segments_.begin()->first, kSegmentHeader};
  }
  for (auto it = segments_.begin(); it != segments_.end();) {
    std::uint64_t count_from = it->first == checkpoint_.segment ? checkpoint_.offset : 0;
    std::uint64_t size = scan_segment(it->first, count_from);
    if (size < kSegmentHeader) {
      std::filesystem::remove(segment_path(it->first));
      it = segments_.erase(it);
      continue;
    }
    it->second.size = size;
    ++it;
  }
  if (!segments_.empty() && !segments_.contains(checkpoint_.segment)) {
    checkpoint_ = SpoolPosition{segments_.begin()->first, kSegmentHeader};
  }
  read_pos_ = checkpoint_;
  active_segment_ = last_seq;  // open_new_segment() takes the next number
  if (records_ > 0) {
    spdlog::info("spool {}: {} record(s), {} bytes to write to the database", options_.dir.string(),
                 records_, bytes_);
  }
}

// Validates a segment, cuts a torn or corrupt tail off, and counts the records at or after
// count_from into bytes_/records_. Returns the valid size (0: no valid header).
std::uint64_t Spool::scan_segment(std::uint64_t seq, std::uint64_t count_from) {
  auto path = segment_path(seq);
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) throw_errno("open " + path.string());
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    ::close(fd);
    throw_errno("stat " + path.string());
  }
  auto file_size = static_cast<std::uint64_t>(st.st_size);
  char magic[sizeof kSegmentMagic];
  if (pread_all(fd, magic, sizeof magic, 0) != sizeof magic ||
      std::memcmp(magic, kSegmentMagic, sizeof magic) != 0) {
    ::close(fd);
    if (file_size > 0) {
      spdlog::warn("spool {}: segment {} has no valid header ({} bytes); removed",
                   options_.dir.string(), path.filename().string(), file_size);
    }
    return 0;
  }

  std::uint64_t offset = kSegmentHeader;
  std::string payload;
  std::string problem;
  while (offset < file_size) {
    char header[kRecordHeader];
    if (pread_all(fd, header, kRecordHeader, offset) != kRecordHeader) {
      problem = "a torn record header";
      break;
    }
    std::uint32_t len = 0;
    std::uint32_t crc = 0;
    std::memcpy(&len, header, 4);
    std::memcpy(&crc, header + 4, 4);
    if (len < kFixedPayload || len > kMaxPayload) {
      problem = "an impossible record length " + std::to_string(len);
      break;
    }
    if (offset + kRecordHeader + len > file_size) {
      problem = "a torn record (" + std::to_string(file_size - offset) + " of " +
                std::to_string(kRecordHeader + len) + " bytes)";
      break;
    }
    payload.resize(len);
    pread_all(fd, payload.data(), len, offset + kRecordHeader);
    RunEvent event;
    std::int64_t appended_at = 0;
    if (crc != crc_of(payload.data(), len)) {
      problem = "a checksum mismatch";
      break;
    }
    if (!decode(payload.data(), len, event, appended_at)) {
      problem = "an undecodable record";
      break;
    }
    if (offset >= count_from) {
      if (records_ == 0) oldest_appended_us_ = appended_at;
      bytes_ += kRecordHeader + len;
      ++records_;
    }
    offset += kRecordHeader + len;
  }
  if (offset < file_size) {
    // Crash mid-write (torn tail) or damage: keep every record before it, drop the rest.
    spdlog::warn("spool {}: segment {} has {} at offset {}; cutting off the last {} bytes",
                 options_.dir.string(), path.filename().string(), problem, offset,
                 file_size - offset);
    if (::ftruncate(fd, static_cast<off_t>(offset)) != 0 || ::fsync(fd) != 0) {
      int err = errno;
      ::close(fd);
      errno = err;
      throw_errno("truncate " + path.string());
    }
  }
  ::close(fd);
  return offset;
}

void Spool::open_new_segment() {
  std::uint64_t seq = active_segment_ + 1;
  auto path = segment_path(seq);
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) throw_errno("create " + path.string());
  try {
    write_all(fd, kSegmentMagic, sizeof kSegmentMagic);
    if (::fdatasync(fd) != 0) throw_errno("fdatasync " + path.string());
    fsync_dir(options_.dir);
  } catch (...) {
    ::close(fd);
    std::filesystem::remove(path);
    throw;
  }
  if (fd_ >= 0) ::close(fd_);
  fd_ = fd;
  active_segment_ = seq;
  active_size_ = kSegmentHeader;
  std::lock_guard lock(mutex_);
  segments_[seq] = SegmentInfo{kSegmentHeader};
}

RunSink::Result Spool::accept(std::span<const RunEvent> events) {
  if (events.empty()) return {};
  Request request;
  request.records = events.size();
  std::size_t size = 0;
  for (const auto& e : events) size += record_size(e);
  try {
    request.bytes.reserve(size);
    std::int64_t appended_at = now_us();
    for (const auto& e : events) encode(request.bytes, e, appended_at);
  } catch (const std::bad_alloc&) {
    return {Outcome::failed, "out of memory"};
  }

  std::unique_lock lock(mutex_);
  if (failed_) return {Outcome::failed, "the spool cannot write to disk"};
  if (stopping_) return {Outcome::failed, "the spool is shutting down"};
  if (bytes_ + pending_bytes_ + size > options_.max_bytes) {
    return {Outcome::full, "spool full (" + std::to_string(bytes_ + pending_bytes_) + " of " +
                               std::to_string(options_.max_bytes) + " bytes)"};
  }
  pending_bytes_ += size;
  std::uint64_t ticket = next_ticket_++;
  request.ticket = ticket;
  queue_.push_back(std::move(request));
  request_cv_.notify_one();
  done_cv_.wait(lock, [&] { return done_ticket_ >= ticket; });
  if (auto it = failures_.find(ticket); it != failures_.end()) {
    std::string message = std::move(it->second);
    failures_.erase(it);
    return {Outcome::failed, message};
  }
  return {};
}

void Spool::flusher_loop() {
  std::vector<Request> batch;
  for (;;) {
    {
      std::unique_lock lock(mutex_);
      request_cv_.wait(lock, [&] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and every request has been answered
      if (options_.group_commit_us > 0 && !stopping_ && pending_bytes_ < (1u << 20)) {
        // Let concurrent callers join this write; each fdatasync then serves them all.
        request_cv_.wait_for(lock, std::chrono::microseconds(options_.group_commit_us),
                             [&] { return stopping_ || pending_bytes_ >= (1u << 20); });
      }
      batch.assign(std::make_move_iterator(queue_.begin()), std::make_move_iterator(queue_.end()));
      queue_.clear();
    }

    std::string error;
    bool ok = write_batch(batch, error);

    std::lock_guard lock(mutex_);
    for (auto& r : batch) {
      pending_bytes_ -= r.bytes.size();
      if (!ok) failures_[r.ticket] = error;
    }
    if (ok) {
      for (auto& r : batch) {
        if (records_ == 0) {
          std::int64_t appended_at = 0;
          std::memcpy(&appended_at, r.bytes.data() + kRecordHeader + 1, 8);
          oldest_appended_us_ = appended_at;
        }
        bytes_ += r.bytes.size();
        records_ += r.records;
      }
    }
    done_ticket_ = batch.back().ticket;
    batch.clear();
    done_cv_.notify_all();
    data_cv_.notify_all();
  }
}

// Writes every request, rotating segments as they fill, then makes it durable. On failure
// the segment is cut back to its last durable size and a fresh one started, so nothing
// half-written is ever read; the callers are told "failed".
bool Spool::write_batch(std::vector<Request>& batch, std::string& error) {
  std::uint64_t durable_size = active_size_;
  try {
    std::vector<iovec> iov;
    auto flush_iov = [&] {
      std::size_t i = 0;
      while (i < iov.size()) {
        int count = static_cast<int>(std::min<std::size_t>(iov.size() - i, IOV_MAX));
        ssize_t n = ::writev(fd_, iov.data() + i, count);
        if (n < 0) {
          if (errno == EINTR) continue;
          throw_errno("write " + segment_path(active_segment_).string());
        }
        auto left = static_cast<std::size_t>(n);
        while (left > 0 && i < iov.size()) {
          if (left >= iov[i].iov_len) {
            left -= iov[i].iov_len;
            ++i;
          } else {
            iov[i].iov_base = static_cast<char*>(iov[i].iov_base) + left;
            iov[i].iov_len -= left;
            left = 0;
          }
        }
      }
      iov.clear();
    };
    auto sync_active = [&] {
      flush_iov();
      if (::fdatasync(fd_) != 0) throw_errno("fdatasync " + segment_path(active_segment_).string());
      std::lock_guard lock(mutex_);
      segments_[active_segment_].size = active_size_;
      durable_size = active_size_;
    };
    for (auto& r : batch) {
      if (active_size_ > kSegmentHeader && active_size_ + r.bytes.size() > options_.segment_bytes) {
        sync_active();
        open_new_segment();
        durable_size = active_size_;
      }
      iov.push_back(iovec{r.bytes.data(), r.bytes.size()});
      active_size_ += r.bytes.size();
    }
    sync_active();
    return true;
  } catch (const std::exception& e) {
    error = std::string("spool write failed: ") + e.what();
    spdlog::error("spool {}: {}", options_.dir.string(), error);
    if (::ftruncate(fd_, static_cast<off_t>(durable_size)) != 0) {
      spdlog::error("spool {}: cannot cut the failed write off: {}", options_.dir.string(),
                    std::strerror(errno));
    }
    active_size_ = durable_size;
    try {
      open_new_segment();
    } catch (const std::exception& e2) {
      spdlog::critical("spool {}: cannot start a new segment ({}); refusing further runs",
                       options_.dir.string(), e2.what());
      std::lock_guard lock(mutex_);
      failed_ = true;
    }
    return false;
  }
}

SpoolBatch Spool::read(std::size_t max_records, std::chrono::milliseconds wait) {
  SpoolBatch batch;
  std::uint64_t durable_end = 0;
  {
    std::unique_lock lock(mutex_);
    auto has_data = [&] {
      auto it = segments_.find(read_pos_.segment);
      if (it == segments_.end()) {
        auto next = segments_.upper_bound(read_pos_.segment);
        if (next == segments_.end()) return false;
        read_pos_ = {next->first, kSegmentHeader};
        it = next;
      }
      while (read_pos_.offset >= it->second.size) {
        auto next = std::next(it);
        if (next == segments_.end()) return false;
        read_pos_ = {next->first, kSegmentHeader};
        it = next;
      }
      return true;
    };
    if (!data_cv_.wait_for(lock, wait, [&] { return stopping_ || has_data(); }) || !has_data()) {
      batch.end = read_pos_;
      return batch;
    }
    durable_end = segments_[read_pos_.segment].size;
  }

  if (read_fd_ < 0 || read_fd_segment_ != read_pos_.segment) {
    if (read_fd_ >= 0) ::close(read_fd_);
    read_fd_ = ::open(segment_path(read_pos_.segment).c_str(), O_RDONLY | O_CLOEXEC);
    read_fd_segment_ = read_pos_.segment;
    if (read_fd_ < 0) {
      spdlog::error("spool {}: cannot open {}: {}", options_.dir.string(),
                    segment_path(read_pos_.segment).string(), std::strerror(errno));
      batch.end = read_pos_;
      return batch;
    }
  }

  // One pread for the whole durable range we may need (bounded), then parse.
  std::uint64_t want = std::min<std::uint64_t>(
      durable_end - read_pos_.offset,
      static_cast<std::uint64_t>(max_records) * (kRecordHeader + kMaxPayload));
  want = std::min<std::uint64_t>(want, 64u << 20);
  std::string buf(want, '\0');
  std::size_t got = 0;
  try {
    got = pread_all(read_fd_, buf.data(), want, read_pos_.offset);
  } catch (const std::exception& e) {
    spdlog::error("spool {}: read failed: {}", options_.dir.string(), e.what());
  }
  std::size_t pos = 0;
  std::uint64_t bytes = 0;
  batch.events.reserve(
      std::min<std::size_t>(max_records, got / (kRecordHeader + kFixedPayload) + 1));
  while (batch.events.size() < max_records && got - pos >= kRecordHeader) {
    std::uint32_t len = 0;
    std::uint32_t crc = 0;
    std::memcpy(&len, buf.data() + pos, 4);
    std::memcpy(&crc, buf.data() + pos + 4, 4);
    if (len > kMaxPayload || got - pos - kRecordHeader < len) break;  // larger than our read
    RunEvent event;
    std::int64_t appended_at = 0;
    if (crc != crc_of(buf.data() + pos + kRecordHeader, len) ||
        !decode(buf.data() + pos + kRecordHeader, len, event, appended_at)) {
      // Damaged after it was validated (disk error): skip the rest of this segment.
      spdlog::error("spool {}: segment {} damaged at offset {}; skipping the rest of it",
                    options_.dir.string(), read_pos_.segment, read_pos_.offset + pos);
      std::lock_guard lock(mutex_);
      segments_[read_pos_.segment].size = read_pos_.offset + pos;
      break;
    }
    batch.events.push_back(std::move(event));
    pos += kRecordHeader + len;
    bytes += kRecordHeader + len;
  }
  read_pos_.offset += pos;
  batch.end = read_pos_;
  if (!batch.events.empty()) {
    std::lock_guard lock(mutex_);
    read_spans_.push_back(ReadSpan{batch.end, bytes, batch.events.size()});
  }
  return batch;
}

void Spool::rewind() {
  std::lock_guard lock(mutex_);
  read_spans_.clear();
  read_pos_ = checkpoint_;
}

// The consumed segments go first: on a full disk they are what frees the space the checkpoint
// needs. Were the daemon to stop before the checkpoint is on disk, the next start resumes at
// the oldest remaining segment, and replaying its stored runs is skipped by run_id.
void Spool::ack(SpoolPosition end) {
  std::vector<std::uint64_t> doomed;
  {
    std::lock_guard lock(mutex_);
    checkpoint_ = end;
    while (!read_spans_.empty() && read_spans_.front().end <= end) {
      bytes_ -= std::min(bytes_, read_spans_.front().bytes);
      records_ -= std::min(records_, read_spans_.front().records);
      read_spans_.pop_front();
    }
    for (auto it = segments_.begin(); it != segments_.end() && it->first < end.segment;) {
      doomed.push_back(it->first);
      it = segments_.erase(it);
    }
    oldest_appended_us_ = 0;
    if (records_ > 0) {
      // The oldest unconsumed record is the one at the checkpoint (or the next segment's first).
      SpoolPosition at = end;
      auto it = segments_.find(at.segment);
      while (it != segments_.end() && at.offset >= it->second.size) {
        ++it;
        if (it != segments_.end()) at = {it->first, kSegmentHeader};
      }
      if (it != segments_.end()) {
        int fd = ::open(segment_path(at.segment).c_str(), O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
          char head[kRecordHeader + 9];
          if (pread_all(fd, head, sizeof head, at.offset) == sizeof head) {
            std::memcpy(&oldest_appended_us_, head + kRecordHeader + 1, 8);
          }
          ::close(fd);
        }
      }
    }
  }
  for (auto seq : doomed) {
    if (read_fd_ >= 0 && read_fd_segment_ == seq) {
      ::close(read_fd_);
      read_fd_ = -1;
    }
    std::error_code ec;
    std::filesystem::remove(segment_path(seq), ec);
    if (ec) {
      spdlog::warn("spool {}: cannot remove consumed segment {}: {}", options_.dir.string(), seq,
                   ec.message());
    }
  }
  write_checkpoint(end);
}

bool Spool::retry_checkpoint() {
  SpoolPosition at;
  {
    std::lock_guard lock(mutex_);
    if (!checkpoint_failing_) return true;
    at = checkpoint_;
  }
  try {
    write_checkpoint(at);
    spdlog::info("spool {}: checkpoint written again", options_.dir.string());
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

void Spool::write_checkpoint(SpoolPosition position) {
  try {
    persist_checkpoint(position);
  } catch (const std::exception&) {
    std::lock_guard lock(mutex_);
    checkpoint_failing_ = true;
    throw;
  }
  std::lock_guard lock(mutex_);
  checkpoint_failing_ = false;
}

void Spool::persist_checkpoint(SpoolPosition position) {
  char buf[28];
  std::memcpy(buf, kCheckpointMagic, 8);
  std::memcpy(buf + 8, &position.segment, 8);
  std::memcpy(buf + 16, &position.offset, 8);
  std::uint32_t crc = crc_of(buf + 8, 16);
  std::memcpy(buf + 24, &crc, 4);
  auto tmp = options_.dir / "checkpoint.tmp";
  auto final_path = options_.dir / kCheckpointName;
  try {
    int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0) throw_errno("create " + tmp.string());
    try {
      write_all(fd, buf, sizeof buf);
      if (::fsync(fd) != 0) throw_errno("fsync " + tmp.string());
    } catch (...) {
      ::close(fd);
      throw;
    }
    ::close(fd);
    if (::rename(tmp.c_str(), final_path.c_str()) != 0) throw_errno("rename " + tmp.string());
    fsync_dir(options_.dir);
  } catch (const std::system_error& e) {
    throw std::runtime_error(std::string("spool checkpoint: ") + e.what());
  }
}

SpoolStats Spool::stats() const {
  std::lock_guard lock(mutex_);
  SpoolStats s;
  s.bytes = bytes_;
  s.records = records_;
  s.segments = segments_.size();
  s.failed = failed_;
  s.checkpoint_failing = checkpoint_failing_;
  if (records_ > 0 && oldest_appended_us_ > 0) {
    s.oldest_record_age_seconds =
        std::max<double>(0.0, static_cast<double>(now_us() - oldest_appended_us_) / 1e6);
  }
  return s;
}

}  // namespace meshhook::bridge
