#pragma once
// Runs COPYed in PostgreSQL's binary format straight into execution_time_statistics, for the
// batch writer's fast path. libpqxx 6.4 streams text only, and text costs both sides: the
// client escapes every field, the server parses every uuid and timestamp back.

#include <cstdint>
#include <memory>
#include <pqxx/connection>
#include <pqxx/transaction_base>
#include <string>
#include <vector>

#include "meshhook/bridge/storage/rollup_deltas.h"
#include "meshhook/bridge/storage/run_event.h"

struct pg_conn;

namespace meshhook::bridge::detail {

/// Where a CopyConnection keeps its libpq handle (null while it has none).
struct CopyHandle {
  pg_conn* conn = nullptr;
};

/// connect_direct that also records the libpq handle of the connection being built each time
/// libpqxx opens or drops one (libpqxx 6.4 keeps the handle private).
class HandleRecordingConnect : public pqxx::connect_direct {
 public:
  explicit HandleRecordingConnect(const std::string& options);
  handle do_startconnect(handle orig) override;
  handle do_dropconnect(handle orig) noexcept override;
  handle do_disconnect(handle orig) noexcept override;

 private:
  std::shared_ptr<CopyHandle> slot_;
};

/// A libpqxx connection whose libpq handle binary COPY can use. One thread at a time.
class CopyConnection : public pqxx::basic_connection_base<HandleRecordingConnect> {
 public:
  explicit CopyConnection(const std::string& options);
  pg_conn* raw() const noexcept { return handle_->conn; }

 private:
  std::shared_ptr<CopyHandle> handle_;
};

/// The COPY statements the encoders below write for: straight into
/// execution_time_statistics, and into the writer's per-session staging table.
extern const char* const kCopyRunsBinary;
extern const char* const kCopyStagedBinary;
/// And for the rollup deltas the writer computes: straight into execution_time_rollup_deltas,
/// and into the per-session staging table of deltas.
extern const char* const kCopyDeltasBinary;
extern const char* const kCopyStagedDeltasBinary;

/// True when every time of events[begin, end) lies within 2^53 µs of 1970, where the staged
/// INSERT's `us * interval '1 microsecond'` is exact (it multiplies in float8): only such
/// events take the direct path, so both paths store the same values.
bool direct_times(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end);

/// Appends events[begin, end) to out as one binary COPY stream for kCopyRunsBinary, with the
/// values the staged INSERT computes (times exact, execution_time_ms rounded half up,
/// negative durations 0). Requires direct_times().
void encode_runs(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end,
                 std::string& out);

/// Appends events[begin, end), or the events at the given indices, as one binary COPY
/// stream for kCopyStagedBinary.
void encode_staged(const std::vector<RunEvent>& events, std::size_t begin, std::size_t end,
                   std::string& out);
void encode_staged(const std::vector<RunEvent>& events, const std::vector<std::size_t>& which,
                   std::string& out);

/// Appends deltas as one binary COPY stream for kCopyDeltasBinary or kCopyStagedDeltasBinary.
void encode_deltas(const std::vector<RollupDelta>& deltas, std::string& out);

/// Runs the COPY in tx and sends data. Throws pqxx::sql_error with Postgres' SQLSTATE when
/// Postgres refuses it (the transaction is then aborted), pqxx::broken_connection when the
/// connection fails.
void copy_binary(pqxx::transaction_base& tx, CopyConnection& conn, const char* statement,
                 const std::string& data);

}  // namespace meshhook::bridge::detail
