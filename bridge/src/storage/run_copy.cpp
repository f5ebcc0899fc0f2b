#include "detail/run_copy.h"

#include <libpq-fe.h>

#include <algorithm>
#include <cstring>
#include <pqxx/except>

namespace meshhook::bridge::detail {
namespace {

// The handle slot of the CopyConnection being constructed: its base class builds the policy
// (and connects) before the derived part exists, so the slot travels beside the call.
thread_local std::shared_ptr<CopyHandle> t_constructing;

const std::string& with_new_slot(const std::string& options) {
  t_constructing = std::make_shared<CopyHandle>();
  return options;
}

// 2000-01-01T00:00:00Z, PostgreSQL's epoch, in Unix microseconds.
constexpr std::int64_t kPostgresEpochUs = 946'684'800'000'000;
// Within 2^53 µs (about 285 years) of 1970 the staged INSERT's `us * interval '1 microsecond'`
// is exact (it multiplies in float8); outside, the staged path decides, so both agree.
constexpr std::int64_t kExactUs = std::int64_t{1} << 53;

void put_u16(std::string& out, std::uint16_t v) {
  const char b[2] = {static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 2);
}
void put_u32(std::string& out, std::uint32_t v) {
  const char b[4] = {static_cast<char>(v >> 24), static_cast<char>(v >> 16),
                     static_cast<char>(v >> 8), static_cast<char>(v)};
  out.append(b, 4);
}
void put_i64(std::string& out, std::int64_t value) {
  auto v = static_cast<std::uint64_t>(value);
  char b[8];
  for (int i = 7; i >= 0; --i) {
    b[i] = static_cast<char>(v);
    v >>= 8;
  }
  out.append(b, 8);
}
void put_field(std::string& out, const void* data, std::size_t size) {
  put_u32(out, static_cast<std::uint32_t>(size));
  out.append(static_cast<const char*>(data), size);
}
void put_int8_field(std::string& out, std::int64_t v) {
  put_u32(out, 8);
  put_i64(out, v);
}

bool exact_time(std::int64_t us) { return us > -kExactUs && us < kExactUs; }

}  // namespace

HandleRecordingConnect::HandleRecordingConnect(const std::string& options)
    : connect_direct(options), slot_(t_constructing) {}

HandleRecordingConnect::handle HandleRecordingConnect::do_startconnect(handle orig) {
  handle h = connect_direct::do_startconnect(orig);
  if (slot_) slot_->conn = h;
  return h;
}

HandleRecordingConnect::handle HandleRecordingConnect::do_dropconnect(handle orig) noexcept {
  if (slot_) slot_->conn = nullptr;
  return connect_direct::do_dropconnect(orig);
}

HandleRecordingConnect::handle HandleRecordingConnect::do_disconnect(handle orig) noexcept {
  if (slot_) slot_->conn = nullptr;
  return connect_direct::do_disconnect(orig);
}

CopyConnection::CopyConnection(const std::string& options)
    : basic_connection_base(with_new_slot(options)), handle_(std::move(t_constructing)) {}

const char* const kCopyRunsBinary =
    "copy execution_time_statistics (run_id, project_id, workflow_id, status, started_at,"
    " finished_at, execution_time_ms) from stdin with (format binary)";
const char* const kCopyStagedBinary =
    "copy meshhook_stats_incoming (run_id, project_id, workflow_id, status, started_us,"
    " finished_us, workflow_name) from stdin with (format binary)";
const char* const kCopyDeltasBinary =
    "copy execution_time_rollup_deltas (project_id, workflow_id, status, bucket_start,"
    " run_count, sum_ms, min_ms, max_ms, zero_count, sketch) from stdin with (format binary)";
const char* const kCopyStagedDeltasBinary =
    "copy meshhook_stats_incoming_deltas (project_id, workflow_id, status, bucket_start,"
    " run_count, sum_ms, min_ms, max_ms, zero_count, sketch) from stdin with (format binary)";

namespace {

void begin_stream(std::string& out, std::size_t rows, std::size_t row_bytes) {
  static constexpr char kSignature[] = "PGCOPY\n\377\r\n";  // and its terminating \0
  out.reserve(out.size() + 19 + rows * row_bytes + 2);
  out.append(kSignature, sizeof kSignature);
  put_u32(out, 0);  // flags: no OIDs
  put_u32(out, 0);  // no header extension
}

void end_stream(std::string& out) { put_u16(out, 0xffff); }

// run_id, project_id, workflow_id, status: the first four columns of both tables.
void put_identity(std::string& out, std::uint16_t columns, const RunEvent& e) {
  const std::string_view status = to_string(e.status);
  put_u16(out, columns);
  put_field(out, e.run_id.bytes.data(), 16);
  put_field(out, e.project_id.bytes.data(), 16);
  put_field(out, e.workflow_id.bytes.data(), 16);
  put_field(out, status.data(), status.size());
}

// numeric's binary form: digit count, weight, sign, display scale, then base-10000 digits
// from the most significant.
void put_numeric_field(std::string& out, std::uint64_t v) {
  std::uint16_t digits[5];  // 2^64 < 10000^5
  std::uint16_t n = 0;
  for (; v != 0; v /= 10000) digits[n++] = static_cast<std::uint16_t>(v % 10000);
  put_u32(out, 8u + 2u * n);
  put_u16(out, n);
  put_u16(out, n == 0 ? 0 : static_cast<std::uint16_t>(n - 1));  // weight
  put_u16(out, 0);                                               // positive
  put_u16(out, 0);                                               // no decimals
  while (n > 0) put_u16(out, digits[--n]);
}

// int4[] in array_recv's form: dimensions, no nulls, element type int4 (oid 23), then each
// dimension's length and lower bound, then the elements; {} has no dimensions.
void put_sketch_field(std::string& out, const std::vector<std::pair<int, std::int32_t>>& sketch) {
  constexpr std::uint32_t kInt4Oid = 23;
  if (sketch.empty()) {
    put_u32(out, 12);
    put_u32(out, 0);
    put_u32(out, 0);
    put_u32(out, kInt4Oid);
    return;
  }
  put_u32(out, static_cast<std::uint32_t>(28 + sketch.size() * 16));
  put_u32(out, 2);
  put_u32(out, 0);
  put_u32(out, kInt4Oid);
  put_u32(out, static_cast<std::uint32_t>(sketch.size()));
  put_u32(out, 1);
  put_u32(out, 2);
  put_u32(out, 1);
  for (const auto& [index, count] : sketch) {
    put_u32(out, 4);
    put_u32(out, static_cast<std::uint32_t>(index));
    put_u32(out, 4);
    put_u32(out, static_cast<std::uint32_t>(count));
  }
}

void put_staged(std::string& out, const RunEvent& e) {
  put_identity(out, 7, e);
  put_int8_field(out, e.started_at_us);
  put_int8_field(out, e.finished_at_us);
  put_field(out, e.workflow_name.data(), e.workflow_name.size());
}

}  // namespace

bool direct_times(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end) {
  for (std::size_t i = begin; i < end; ++i) {
    if (!exact_time(events[i].started_at_us) || !exact_time(events[i].finished_at_us)) {
      return false;
    }
  }
  return true;
}

void encode_runs(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end,
                 std::string& out) {
  begin_stream(out, end - begin, 110);
  for (std::size_t i = begin; i < end; ++i) {
    const RunEvent& e = events[i];
    put_identity(out, 7, e);
    put_int8_field(out, e.started_at_us - kPostgresEpochUs);
    put_int8_field(out, e.finished_at_us - kPostgresEpochUs);
    put_int8_field(out, stored_execution_time_ms(e));
  }
  end_stream(out);
}

void encode_staged(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end,
                   std::string& out) {
  begin_stream(out, end - begin, 120);
  for (std::size_t i = begin; i < end; ++i) put_staged(out, events[i]);
  end_stream(out);
}

void encode_staged(const std::vector<RunEvent>& events, const std::vector<std::size_t>& which,
                   std::string& out) {
  begin_stream(out, which.size(), 120);
  for (std::size_t i : which) put_staged(out, events[i]);
  end_stream(out);
}

void encode_deltas(const std::vector<RollupDelta>& deltas, std::string& out) {
  begin_stream(out, deltas.size(), 160);
  for (const RollupDelta& d : deltas) {
    const std::string_view status = to_string(d.status);
    put_u16(out, 10);
    put_field(out, d.project_id.bytes.data(), 16);
    put_field(out, d.workflow_id.bytes.data(), 16);
    put_field(out, status.data(), status.size());
    put_int8_field(out, d.bucket_start_us - kPostgresEpochUs);
    put_int8_field(out, static_cast<std::int64_t>(d.run_count));
    put_numeric_field(out, d.sum_ms);
    put_int8_field(out, d.min_ms);
    put_int8_field(out, d.max_ms);
    put_int8_field(out, static_cast<std::int64_t>(d.zero_count));
    put_sketch_field(out, d.sketch);
  }
  end_stream(out);
}

void copy_binary(pqxx::transaction_base& tx, CopyConnection& conn, const char* statement,
                 const std::string& data) {
  tx.exec(statement);  // the connection is now in COPY IN
  PGconn* pg = conn.raw();
  if (pg == nullptr) throw pqxx::broken_connection("binary COPY: the connection has no handle");
  constexpr std::size_t kChunk = 256 * 1024;
  for (std::size_t at = 0; at < data.size(); at += kChunk) {
    auto size = static_cast<int>(std::min(kChunk, data.size() - at));
    if (PQputCopyData(pg, data.data() + at, size) != 1) {
      throw pqxx::broken_connection(std::string("binary COPY: ") + PQerrorMessage(pg));
    }
  }
  if (PQputCopyEnd(pg, nullptr) != 1) {
    throw pqxx::broken_connection(std::string("binary COPY: ") + PQerrorMessage(pg));
  }
  std::string error, sqlstate;
  bool failed = false;
  while (PGresult* res = PQgetResult(pg)) {
    if (PQresultStatus(res) != PGRES_COMMAND_OK && !failed) {
      failed = true;
      error = PQresultErrorMessage(res);
      const char* state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
      sqlstate = state ? state : "";
    }
    PQclear(res);
  }
  if (failed) {
    if (PQstatus(pg) != CONNECTION_OK) throw pqxx::broken_connection(error);
    throw pqxx::sql_error(error, statement, sqlstate.empty() ? nullptr : sqlstate.c_str());
  }
}

}  // namespace meshhook::bridge::detail
