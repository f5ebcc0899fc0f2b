#include "meshhook/bridge/storage/spool.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <random>
#include <set>
#include <thread>
#include <vector>

using meshhook::bridge::RunEvent;
using meshhook::bridge::RunSink;
using meshhook::bridge::RunStatus;
using meshhook::bridge::Spool;
using meshhook::bridge::SpoolOptions;
namespace fs = std::filesystem;

namespace {

// A fresh directory per test, removed afterwards.
struct TempDir {
  fs::path path;
  TempDir() {
    std::random_device rd;
    path = fs::temp_directory_path() /
           ("meshhook-spool-test-" + std::to_string(::getpid()) + "-" + std::to_string(rd()));
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

RunEvent make_event(std::uint64_t n, std::string name = "") {
  RunEvent e;
  for (int i = 0; i < 8; ++i) {
    e.run_id.bytes[static_cast<std::size_t>(i)] = static_cast<std::uint8_t>(n >> (8 * i));
  }
  e.run_id.bytes[15] = 0x42;
  e.workflow_id.bytes[0] = 7;
  e.project_id.bytes[0] = 9;
  e.status = n % 2 ? RunStatus::failed : RunStatus::succeeded;
  e.started_at_us = 1'700'000'000'000'000 + static_cast<std::int64_t>(n);
  e.finished_at_us = e.started_at_us + 1500 + static_cast<std::int64_t>(n);
  e.workflow_name = std::move(name);
  return e;
}

std::uint64_t number_of(const RunEvent& e) {
  std::uint64_t n = 0;
  for (int i = 0; i < 8; ++i) {
    n |= static_cast<std::uint64_t>(e.run_id.bytes[static_cast<std::size_t>(i)]) << (8 * i);
  }
  return n;
}

SpoolOptions options_for(const TempDir& dir) {
  SpoolOptions o;
  o.dir = dir.path;
  o.max_bytes = 64 << 20;
  o.segment_bytes = 1 << 20;
  o.group_commit_us = 200;
  return o;
}

std::vector<fs::path> segments(const TempDir& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir.path)) {
    if (e.path().extension() == ".spool") out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// Every record readable now, without acknowledging.
std::vector<RunEvent> read_all(Spool& spool) {
  std::vector<RunEvent> out;
  for (;;) {
    auto batch = spool.read(1000, std::chrono::milliseconds(0));
    if (batch.events.empty()) return out;
    out.insert(out.end(), batch.events.begin(), batch.events.end());
  }
}

// Reads n records (a read stops at a segment's end), without acknowledging.
meshhook::bridge::SpoolBatch read_up_to(Spool& spool, std::size_t n) {
  meshhook::bridge::SpoolBatch all;
  while (all.events.size() < n) {
    auto batch = spool.read(n - all.events.size(), std::chrono::milliseconds(0));
    if (batch.events.empty()) break;
    all.events.insert(all.events.end(), batch.events.begin(), batch.events.end());
    all.end = batch.end;
  }
  return all;
}

}  // namespace

TEST_CASE("spool returns appended events in order with every field intact", "[spool]") {
  TempDir dir;
  Spool spool(options_for(dir));
  std::vector<RunEvent> events{make_event(1, "checkout"), make_event(2), make_event(3, "x")};
  REQUIRE(spool.accept(events).outcome == RunSink::Outcome::accepted);

  auto batch = spool.read(10, std::chrono::milliseconds(100));
  REQUIRE(batch.events.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) {
    CHECK(batch.events[i].run_id == events[i].run_id);
    CHECK(batch.events[i].workflow_id == events[i].workflow_id);
    CHECK(batch.events[i].project_id == events[i].project_id);
    CHECK(batch.events[i].status == events[i].status);
    CHECK(batch.events[i].started_at_us == events[i].started_at_us);
    CHECK(batch.events[i].finished_at_us == events[i].finished_at_us);
    CHECK(batch.events[i].workflow_name == events[i].workflow_name);
  }
  auto stats = spool.stats();
  CHECK(stats.records == 3);
  CHECK(stats.bytes == Spool::record_size(events[0]) + Spool::record_size(events[1]) +
                           Spool::record_size(events[2]));
}

TEST_CASE("spool resumes after the last acknowledged position when reopened", "[spool]") {
  TempDir dir;
  {
    Spool spool(options_for(dir));
    for (std::uint64_t n = 0; n < 10; ++n) {
      RunEvent e = make_event(n);
      REQUIRE(spool.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
    }
    auto first = spool.read(4, std::chrono::milliseconds(100));
    REQUIRE(first.events.size() == 4);
    spool.ack(first.end);
    auto second = spool.read(3, std::chrono::milliseconds(100));
    REQUIRE(second.events.size() == 3);  // read but never acknowledged: must come back
    CHECK(spool.stats().records == 6);
  }
  Spool reopened(options_for(dir));
  CHECK(reopened.stats().records == 6);
  auto rest = read_all(reopened);
  REQUIRE(rest.size() == 6);
  for (std::size_t i = 0; i < rest.size(); ++i) CHECK(number_of(rest[i]) == 4 + i);
}

TEST_CASE("spool rewind re-reads what was not acknowledged", "[spool]") {
  TempDir dir;
  Spool spool(options_for(dir));
  std::vector<RunEvent> events{make_event(1), make_event(2)};
  REQUIRE(spool.accept(events).outcome == RunSink::Outcome::accepted);
  REQUIRE(read_all(spool).size() == 2);
  spool.rewind();
  CHECK(read_all(spool).size() == 2);
}

TEST_CASE("spool deletes segments once every record in them is acknowledged", "[spool]") {
  TempDir dir;
  auto options = options_for(dir);
  options.segment_bytes = 4096;
  Spool spool(options);
  for (std::uint64_t n = 0; n < 300; ++n) {
    RunEvent e = make_event(n);
    REQUIRE(spool.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
  }
  CHECK(segments(dir).size() > 5);
  std::size_t total = 0;
  for (;;) {
    auto batch = spool.read(50, std::chrono::milliseconds(0));
    if (batch.events.empty()) break;
    for (auto& e : batch.events) CHECK(number_of(e) == total++);
    spool.ack(batch.end);
  }
  CHECK(total == 300);
  CHECK(segments(dir).size() <= 2);
  auto stats = spool.stats();
  CHECK(stats.records == 0);
  CHECK(stats.bytes == 0);
  CHECK(stats.oldest_record_age_seconds == 0);
}

TEST_CASE("a checkpoint that cannot be written still frees consumed segments and is retried",
          "[spool]") {
  TempDir dir;
  auto options = options_for(dir);
  options.segment_bytes = 4096;
  std::size_t before = 0;
  {
    Spool spool(options);
    for (std::uint64_t n = 0; n < 300; ++n) {
      RunEvent e = make_event(n);
      REQUIRE(spool.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
    }
    before = segments(dir).size();
    REQUIRE(before > 5);
    // The temporary checkpoint file cannot be created where a directory stands (as on a
    // full or failing disk, and unlike a permission, also for root).
    fs::create_directory(dir.path / "checkpoint.tmp");
    auto first = read_up_to(spool, 250);
    REQUIRE(first.events.size() == 250);
    CHECK_THROWS_AS(spool.ack(first.end), std::runtime_error);
    auto stats = spool.stats();
    CHECK(stats.checkpoint_failing);
    CHECK(stats.records == 50);  // consumed all the same: ingest is not held back
    CHECK(segments(dir).size() < before);
    CHECK_FALSE(spool.retry_checkpoint());
    CHECK(spool.stats().checkpoint_failing);

    fs::remove(dir.path / "checkpoint.tmp");
    CHECK(spool.retry_checkpoint());
    CHECK_FALSE(spool.stats().checkpoint_failing);
  }
  // Reopened, it resumes at the retried checkpoint: only the 50 unconsumed runs remain.
  Spool reopened(options);
  auto rest = read_all(reopened);
  REQUIRE(rest.size() == 50);
  CHECK(number_of(rest.front()) == 250);
}

TEST_CASE("a crash before the checkpoint is written replays only from the oldest kept segment",
          "[spool]") {
  TempDir dir;
  auto options = options_for(dir);
  options.segment_bytes = 4096;
  {
    Spool spool(options);
    for (std::uint64_t n = 0; n < 300; ++n) {
      RunEvent e = make_event(n);
      REQUIRE(spool.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
    }
    fs::create_directory(dir.path / "checkpoint.tmp");
    auto first = read_up_to(spool, 250);
    REQUIRE(first.events.size() == 250);
    CHECK_THROWS(spool.ack(first.end));
  }
  fs::remove(dir.path / "checkpoint.tmp");
  // The old checkpoint names a deleted segment: every record from the oldest remaining one is
  // read again (the writer skips what is stored by run_id), and none after 250 is lost.
  Spool reopened(options);
  auto rest = read_all(reopened);
  REQUIRE(rest.size() >= 50);
  CHECK(rest.size() < 250);
  CHECK(number_of(rest.back()) == 299);
  CHECK(number_of(rest.front()) <= 250);
}

TEST_CASE("spool group commit keeps every event accepted from many threads", "[spool]") {
  TempDir dir;
  auto options = options_for(dir);
  options.segment_bytes = 64 << 10;  // also crosses segment boundaries under contention
  constexpr int kThreads = 8;
  constexpr int kPerThread = 200;
  {
    Spool spool(options);
    std::atomic<int> accepted{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        for (int i = 0; i < kPerThread; ++i) {
          std::vector<RunEvent> events{
              make_event(static_cast<std::uint64_t>(t * 100000 + i * 2)),
              make_event(static_cast<std::uint64_t>(t * 100000 + i * 2 + 1))};
          if (spool.accept(events).outcome == RunSink::Outcome::accepted) ++accepted;
        }
      });
    }
    for (auto& th : threads) th.join();
    CHECK(accepted == kThreads * kPerThread);
    CHECK(spool.stats().records == 2u * kThreads * kPerThread);
  }
  Spool reopened(options);
  auto all = read_all(reopened);
  REQUIRE(all.size() == 2u * kThreads * kPerThread);
  std::set<std::uint64_t> seen;
  for (auto& e : all) seen.insert(number_of(e));
  CHECK(seen.size() == all.size());
  // A request's events are written together, in order.
  for (std::size_t i = 0; i + 1 < all.size(); i += 2)
    CHECK(number_of(all[i]) + 1 == number_of(all[i + 1]));
}

TEST_CASE("a full spool answers full and writes nothing", "[spool]") {
  TempDir dir;
  auto options = options_for(dir);
  RunEvent e = make_event(0);
  options.max_bytes = Spool::record_size(e) * 5;
  Spool spool(options);
  std::vector<RunEvent> three{make_event(1), make_event(2), make_event(3)};
  REQUIRE(spool.accept(three).outcome == RunSink::Outcome::accepted);
  auto size_before = fs::file_size(segments(dir).back());

  auto result = spool.accept(three);  // 6 > 5: none of the three may be kept
  CHECK(result.outcome == RunSink::Outcome::full);
  CHECK_FALSE(result.message.empty());
  CHECK(fs::file_size(segments(dir).back()) == size_before);
  CHECK(spool.stats().records == 3);

  std::vector<RunEvent> two{make_event(4), make_event(5)};
  CHECK(spool.accept(two).outcome == RunSink::Outcome::accepted);  // exactly at the limit
  CHECK(spool.accept({&e, 1}).outcome == RunSink::Outcome::full);

  // Draining makes room again.
  auto batch = spool.read(100, std::chrono::milliseconds(0));
  REQUIRE(batch.events.size() == 5);
  spool.ack(batch.end);
  CHECK(spool.accept(three).outcome == RunSink::Outcome::accepted);
}

TEST_CASE("a torn tail is cut off on reopen and the records before it are kept", "[spool]") {
  TempDir dir;
  {
    Spool spool(options_for(dir));
    for (std::uint64_t n = 0; n < 5; ++n) {
      RunEvent e = make_event(n, "wf");
      REQUIRE(spool.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
    }
  }
  // A crash in the middle of writing the sixth record: only part of it reached the disk.
  auto last = segments(dir).back();
  for (auto& seg : segments(dir)) {
    if (fs::file_size(seg) > 8) last = seg;
  }
  auto good_size = fs::file_size(last);
  auto record = Spool::record_size(make_event(0, "wf"));
  {
    std::ifstream in(last, std::ios::binary);
    std::string bytes((std::istreambuf_iterator<char>(in)), {});
    std::ofstream out(last, std::ios::binary | std::ios::app);
    out.write(bytes.data() + 8, static_cast<std::streamsize>(record / 2));  // half a record
  }
  Spool reopened(options_for(dir));
  CHECK(fs::file_size(last) == good_size);
  auto all = read_all(reopened);
  REQUIRE(all.size() == 5);
  CHECK(number_of(all.back()) == 4);
  // And the spool keeps working.
  RunEvent e = make_event(99);
  CHECK(reopened.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
  CHECK(read_all(reopened).size() == 1);
}

TEST_CASE("a corrupt record is detected by its checksum on reopen", "[spool]") {
  TempDir dir;
  {
    Spool spool(options_for(dir));
    std::vector<RunEvent> events{make_event(1), make_event(2), make_event(3)};
    REQUIRE(spool.accept(events).outcome == RunSink::Outcome::accepted);
  }
  auto seg = segments(dir).back();
  auto record = Spool::record_size(make_event(1));
  {
    // Flip one byte inside the second record's payload.
    std::fstream f(seg, std::ios::binary | std::ios::in | std::ios::out);
    f.seekp(static_cast<std::streamoff>(8 + record + 20));
    f.put('\x5a');
  }
  Spool reopened(options_for(dir));
  auto all = read_all(reopened);
  REQUIRE(all.size() == 1);
  CHECK(number_of(all[0]) == 1);
  CHECK(fs::file_size(seg) == 8 + record);
}

TEST_CASE("a damaged checkpoint replays the spool rather than failing", "[spool]") {
  TempDir dir;
  {
    Spool spool(options_for(dir));
    std::vector<RunEvent> events{make_event(1), make_event(2)};
    REQUIRE(spool.accept(events).outcome == RunSink::Outcome::accepted);
    auto batch = spool.read(1, std::chrono::milliseconds(0));
    spool.ack(batch.end);
  }
  {
    std::ofstream out(dir.path / "checkpoint", std::ios::binary | std::ios::trunc);
    out << "garbage";
  }
  Spool reopened(options_for(dir));
  CHECK(read_all(reopened).size() == 2);
}

TEST_CASE("spool reports the age of its oldest unwritten record", "[spool]") {
  TempDir dir;
  Spool spool(options_for(dir));
  CHECK(spool.stats().oldest_record_age_seconds == 0);
  RunEvent e = make_event(1);
  REQUIRE(spool.accept({&e, 1}).outcome == RunSink::Outcome::accepted);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  auto age = spool.stats().oldest_record_age_seconds;
  CHECK(age >= 0.02);
  CHECK(age < 5);
}

TEST_CASE("spool read waits for data and wakes when a record arrives", "[spool]") {
  TempDir dir;
  Spool spool(options_for(dir));
  std::thread producer([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    RunEvent e = make_event(5);
    spool.accept({&e, 1});
  });
  auto start = std::chrono::steady_clock::now();
  auto batch = spool.read(10, std::chrono::milliseconds(5000));
  producer.join();
  CHECK(batch.events.size() == 1);
  CHECK(std::chrono::steady_clock::now() - start < std::chrono::seconds(4));
}

namespace {

using meshhook::bridge::RunStep;
using meshhook::bridge::StepStatus;

RunEvent event_with_details(std::uint64_t n) {
  RunEvent e = make_event(n, "checkout");
  e.queued_at_us = e.started_at_us - 250'000;
  e.steps.push_back(
      {"fetch-order", "http", StepStatus::succeeded, 1, e.started_at_us, e.started_at_us + 400});
  e.steps.push_back({std::string(RunStep::kMaxIdBytes, 'i'),
                     std::string(RunStep::kMaxTypeBytes, 't'), StepStatus::failed, 1000,
                     e.started_at_us + 500, e.finished_at_us});
  e.steps.push_back({"notify", "", StepStatus::succeeded, 2, e.finished_at_us, e.finished_at_us});
  return e;
}

void check_same_details(const RunEvent& got, const RunEvent& want) {
  CHECK(got.run_id == want.run_id);
  CHECK(got.workflow_name == want.workflow_name);
  CHECK(got.queued_at_us == want.queued_at_us);
  REQUIRE(got.steps.size() == want.steps.size());
  for (std::size_t i = 0; i < want.steps.size(); ++i) {
    CHECK(got.steps[i].id == want.steps[i].id);
    CHECK(got.steps[i].type == want.steps[i].type);
    CHECK(got.steps[i].status == want.steps[i].status);
    CHECK(got.steps[i].attempts == want.steps[i].attempts);
    CHECK(got.steps[i].started_at_us == want.steps[i].started_at_us);
    CHECK(got.steps[i].finished_at_us == want.steps[i].finished_at_us);
  }
}

// CRC-32 (IEEE, as zlib's crc32), bit by bit: the test writes records as an earlier release
// did without sharing the spool's code.
std::uint32_t crc32_of(const std::string& data) {
  std::uint32_t crc = 0xffffffffu;
  for (unsigned char c : data) {
    crc ^= c;
    for (int k = 0; k < 8; ++k) crc = (crc >> 1) ^ (0xedb88320u & (0u - (crc & 1u)));
  }
  return ~crc;
}

template <typename T>
void append(std::string& out, T v) {
  out.append(reinterpret_cast<const char*>(&v), sizeof v);
}

// A record in the format of the release before run details (format version 1).
std::string version1_record(const RunEvent& e) {
  std::string payload;
  append<std::uint8_t>(payload, 1);
  append<std::int64_t>(payload, 1'700'000'000'000'000);  // appended at
  payload.append(reinterpret_cast<const char*>(e.run_id.bytes.data()), 16);
  payload.append(reinterpret_cast<const char*>(e.workflow_id.bytes.data()), 16);
  payload.append(reinterpret_cast<const char*>(e.project_id.bytes.data()), 16);
  append<std::uint8_t>(payload, static_cast<std::uint8_t>(e.status));
  append<std::int64_t>(payload, e.started_at_us);
  append<std::int64_t>(payload, e.finished_at_us);
  append<std::uint16_t>(payload, static_cast<std::uint16_t>(e.workflow_name.size()));
  payload += e.workflow_name;
  std::string record;
  append<std::uint32_t>(record, static_cast<std::uint32_t>(payload.size()));
  append<std::uint32_t>(record, crc32_of(payload));
  return record + payload;
}

}  // namespace

TEST_CASE("spool keeps a run's queue time and steps intact", "[spool]") {
  TempDir dir;
  std::vector<RunEvent> events{event_with_details(1), make_event(2), event_with_details(3)};
  {
    Spool spool(options_for(dir));
    REQUIRE(spool.accept(events).outcome == RunSink::Outcome::accepted);
    auto batch = spool.read(10, std::chrono::milliseconds(100));
    REQUIRE(batch.events.size() == 3);
    for (std::size_t i = 0; i < 3; ++i) check_same_details(batch.events[i], events[i]);
    CHECK(spool.stats().bytes == Spool::record_size(events[0]) + Spool::record_size(events[1]) +
                                     Spool::record_size(events[2]));
    CHECK(Spool::record_size(events[0]) > Spool::record_size(events[1]) + 300);
  }
  // And after a restart, validated by the recovery scan.
  Spool reopened(options_for(dir));
  auto all = read_all(reopened);
  REQUIRE(all.size() == 3);
  for (std::size_t i = 0; i < 3; ++i) check_same_details(all[i], events[i]);
}

TEST_CASE("spool replays records written by the release before run details", "[spool]") {
  TempDir dir;
  const std::vector<RunEvent> old{make_event(1, "nightly"), make_event(2)};
  {
    std::ofstream out(dir.path / "segment-00000000000000000001.spool", std::ios::binary);
    out.write("MHSPOOL1", 8);
    for (const auto& e : old) {
      const auto record = version1_record(e);
      out.write(record.data(), static_cast<std::streamsize>(record.size()));
    }
  }
  Spool spool(options_for(dir));
  CHECK(spool.stats().records == 2);
  // New records go after the old ones, in the new format.
  RunEvent fresh = event_with_details(3);
  REQUIRE(spool.accept({&fresh, 1}).outcome == RunSink::Outcome::accepted);
  auto all = read_all(spool);
  REQUIRE(all.size() == 3);
  for (std::size_t i = 0; i < 2; ++i) {
    CHECK(all[i].run_id == old[i].run_id);
    CHECK(all[i].status == old[i].status);
    CHECK(all[i].started_at_us == old[i].started_at_us);
    CHECK(all[i].finished_at_us == old[i].finished_at_us);
    CHECK(all[i].workflow_name == old[i].workflow_name);
    CHECK_FALSE(all[i].has_details());
  }
  check_same_details(all[2], fresh);
}
