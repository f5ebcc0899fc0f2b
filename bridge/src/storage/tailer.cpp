#include "meshhook/bridge/storage/tailer.h"

#include <spdlog/spdlog.h>

#include <pqxx/pqxx>

#include "detail/conninfo.h"

namespace meshhook::bridge {
namespace {

constexpr const char* kCursorName = "tailer";

// Rows in id order past the cursor. Identity values are handed out before commit, so a smaller
// id can become visible after a larger one: see poll_once for when an id is final.
constexpr const char* kSelectRows = R"sql(
select id, run_id::text, project_id::text, workflow_id::text, status, source,
       extract(epoch from (finished_at - started_at))::float8,
       extract(epoch from finished_at)::float8
from execution_time_statistics
where id > $1
order by id
limit $2)sql";

// The highest id handed out so far (committed, aborted or still in flight). Read before the
// snapshot, it bounds every id that a transaction of that snapshot's in-progress list may
// still make visible.
constexpr const char* kAllocated = R"sql(
select coalesce(pg_sequence_last_value(pg_get_serial_sequence('execution_time_statistics', 'id')), 0))sql";

// A fresh transaction id, taken after reading that bound: every transaction that had taken an
// id up to the bound already has a transaction id below it. (A snapshot's in-progress list
// does not do: a transaction holding the newest transaction id is at the snapshot's xmax and
// in no list.) One id per poll that finds new rows, none when idle.
constexpr const char* kHorizon = "select pg_current_xact_id()::text::bigint";

// The oldest transaction still running at this transaction's snapshot: once it is at or past
// a horizon, every transaction below that horizon has ended.
constexpr const char* kOldestRunning =
    "select pg_snapshot_xmin(pg_current_snapshot())::text::bigint";

std::string_view text(const pqxx::field& f) { return {f.c_str(), f.size()}; }

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
        pending_.reset();
        seen_above_.clear();
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
  // Before the lock goes to another replica, let the cursor catch up with what this one has
  // observed above it (it waits only for transactions that were in flight), so that a
  // handover observes nothing twice. Bounded: a transaction left open only costs a replay.
  if (active_ && conn) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
    try {
      while (!seen_above_.empty() && std::chrono::steady_clock::now() < deadline) {
        poll_once(conn.get());
        if (!seen_above_.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
    } catch (const std::exception& e) {
      spdlog::warn("tailer: while handing over: {}", std::string(e.what()).substr(0, 300));
    }
  }
  active_ = false;
  conn.reset();
}

// An id is final (no smaller one can still appear) once every transaction that had taken an
// id up to it has ended. Each poll that finds new ids reads the highest id handed out, then
// takes a fresh transaction id (the horizon): every transaction holding an id up to that bound
// has a transaction id below the horizon. When the oldest transaction still running at the
// poll's snapshot is at or past the horizon, all of them have ended and the bound is final;
// otherwise the bound and its horizon are checked again at later polls. Rows above the final
// bound are observed as soon as they are visible and remembered until the cursor passes them,
// so nothing waits for the cursor and nothing is observed twice.
bool Tailer::poll_once(void* raw) {
  auto& conn = *static_cast<pqxx::connection*>(raw);
  const std::int64_t from = position_;
  std::int64_t final_bound = from;
  std::int64_t last_read = from;
  std::size_t rows = 0;
  {
    const auto allocated = pqxx::nontransaction(conn).exec1(kAllocated)[0].as<long long>();
    std::optional<long long> horizon;
    if (allocated > from) horizon = pqxx::nontransaction(conn).exec1(kHorizon)[0].as<long long>();
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        conn);
    const auto oldest_running = tx.exec1(kOldestRunning)[0].as<long long>();
    if (pending_ && oldest_running >= pending_->horizon) {
      final_bound = std::max(final_bound, pending_->bound);
      pending_.reset();
    }
    if (horizon && oldest_running >= *horizon) {
      final_bound = std::max<std::int64_t>(final_bound, allocated);
      pending_.reset();
    } else if (horizon && !pending_ && allocated > final_bound) {
      pending_ = Pending{allocated, *horizon};
    }
    auto result = tx.exec_params(kSelectRows, static_cast<long long>(from),
                                 static_cast<long long>(options_.batch_rows));
    rows = result.size();
    for (const auto& row : result) {
      const std::int64_t id = row[0].as<long long>();
      const bool is_final = id <= final_bound;
      if (!is_final && seen_above_.size() >= kMaxSeenAbove) break;  // wait for the cursor
      last_read = id;
      if (seen_above_.count(id)) continue;  // observed at an earlier poll
      if (!is_final) seen_above_.insert(id);
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
  // A full batch may have stopped short of the final bound.
  const bool full = rows == options_.batch_rows;
  const std::int64_t next = full ? std::min(final_bound, last_read) : final_bound;
  if (next > from) {
    pqxx::work tx(conn);
    tx.exec_params(
        "update meshhook_stats_cursors set last_id = $2, updated_at = now() where name = $1",
        kCursorName, static_cast<long long>(next));
    tx.commit();
    position_ = next;
    std::erase_if(seen_above_, [&](std::int64_t id) { return id <= next; });
  }
  return full;
}

}  // namespace meshhook::bridge
