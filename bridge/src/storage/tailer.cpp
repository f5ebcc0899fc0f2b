#include "meshhook/bridge/storage/tailer.h"

#include <spdlog/spdlog.h>

#include <pqxx/pqxx>

#include "detail/conninfo.h"

namespace meshhook::bridge {
namespace {

constexpr const char* kCursorName = "tailer";

// Rows in id order past the cursor, with the id of the transaction that inserted each.
// Identity values are handed out before commit, so a smaller id can become visible after a
// larger one. A row is only safe to pass once every transaction that might still insert a
// smaller id has finished: we stop at the first row whose inserting transaction is not older
// than the oldest transaction still running (the snapshot's xmin).
constexpr const char* kSelectRows = R"sql(
select id, run_id::text, project_id::text, workflow_id::text, status, source,
       extract(epoch from (finished_at - started_at))::float8,
       extract(epoch from finished_at)::float8,
       xmin::text::bigint
from execution_time_statistics
where id > $1
order by id
limit $2)sql";

// True when transaction xid committed or aborted before the snapshot whose xmin is horizon
// (both as 32-bit transaction ids, compared modulo 2^32 as Postgres does).
std::string_view text(const pqxx::field& f) { return {f.c_str(), f.size()}; }

bool precedes(std::uint32_t xid, std::uint32_t horizon) {
  if (xid < 3) return true;  // frozen or bootstrap: long finished
  return static_cast<std::int32_t>(xid - horizon) < 0;
}

}  // namespace

Tailer::Tailer(TailerOptions options, exporter::RunMetrics& metrics)
    : options_(std::move(options)), metrics_(metrics) {}

Tailer::~Tailer() { stop(); }

void Tailer::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Tailer::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Tailer::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, d, [&] { return stopping_; });
}

void Tailer::run() {
  std::unique_ptr<pqxx::connection> conn;
  bool warned = false;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    try {
      if (!conn) {
        conn =
            std::make_unique<pqxx::connection>(detail::with_connect_timeout(options_.database_url));
      }
      if (!active_) {
        // A session lock on this dedicated connection: held until the session ends, so a
        // crashed or partitioned replica hands over as soon as Postgres notices.
        pqxx::nontransaction tx(*conn);
        if (!tx.exec_params1("select pg_try_advisory_lock($1)", kLockKey)[0].as<bool>()) {
          sleep_for(options_.interval);
          continue;
        }
        tx.exec_params(
            "insert into meshhook_stats_cursors (name, last_id) "
            "select $1, coalesce(max(id), 0) from execution_time_statistics "
            "on conflict (name) do nothing",
            kCursorName);
        position_ = tx.exec_params1("select last_id from meshhook_stats_cursors where name = $1",
                                    kCursorName)[0]
                        .as<long long>();
        active_ = true;
        warned = false;
        spdlog::info("tailer: active (holding the lock), resuming after id {}", position_.load());
      }
      if (!poll_once(conn.get())) sleep_for(options_.interval);
    } catch (const std::exception& e) {
      if (!warned) {
        spdlog::warn("tailer: {}", std::string(e.what()).substr(0, 300));
        warned = true;
      }
      if (active_) spdlog::info("tailer: lost the session; standing by");
      active_ = false;
      conn.reset();  // ends the session, and with it our lock
      sleep_for(options_.interval);
    }
  }
  active_ = false;
  conn.reset();
}

bool Tailer::poll_once(void* raw) {
  auto& conn = *static_cast<pqxx::connection*>(raw);
  std::int64_t from = position_;
  std::int64_t last = from;
  std::size_t rows = 0;
  {
    // One snapshot for the horizon and the rows.
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        conn);
    auto horizon = static_cast<std::uint32_t>(
        tx.exec1("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint")[0]
            .as<long long>() &
        0xffffffffLL);
    auto result = tx.exec_params(kSelectRows, static_cast<long long>(from),
                                 static_cast<long long>(options_.batch_rows));
    rows = result.size();
    for (const auto& row : result) {
      auto xid = static_cast<std::uint32_t>(row[8].as<long long>() & 0xffffffffLL);
      if (!precedes(xid, horizon)) {
        rows = 0;  // an older id may still appear: wait for the next poll
        break;
      }
      last = row[0].as<long long>();
      // Runs that came through ingest were observed when they arrived; only the trigger's
      // rows are new to the histograms.
      if (text(row[5]) != "capture") continue;
      exporter::RunObservation obs;
      obs.run_id = text(row[1]);
      obs.tenant = text(row[2]);
      obs.workflow = text(row[3]);
      obs.status = text(row[4]);
      obs.duration_seconds = std::max(0.0, row[6].as<double>());
      obs.finished_at_seconds = row[7].as<double>();
      metrics_.observe(obs);
      ++observed_;
    }
  }
  if (last != from) {
    pqxx::work tx(conn);
    tx.exec_params(
        "update meshhook_stats_cursors set last_id = $2, updated_at = now() where name = $1",
        kCursorName, static_cast<long long>(last));
    tx.commit();
    position_ = last;
  }
  return rows == options_.batch_rows;
}

}  // namespace meshhook::bridge
