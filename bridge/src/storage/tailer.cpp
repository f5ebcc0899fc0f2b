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

// The highest id handed out so far (committed, aborted or still in flight).
constexpr const char* kAllocated = R"sql(
select coalesce(pg_sequence_last_value(pg_get_serial_sequence('execution_time_statistics', 'id')), 0))sql";

// An xid of the poll's own, taken after reading that: every transaction that had taken an id
// by then, and held an xid, has a smaller one.
constexpr const char* kOwnXid = "select pg_current_xact_id()::text";

// Whether every transaction with an xid up to $1 has ended: the oldest one still running is
// newer. (A snapshot's in-progress list alone is not enough: it leaves out transactions whose
// xid is at or above the snapshot's xmax, which is the newest completed xid plus one, so a lone
// open transaction is often missing from it.)
constexpr const char* kEndedUpTo = "select pg_snapshot_xmin(pg_current_snapshot()) > $1::xid8";

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

// An id is final (no smaller one can still appear) once every transaction that held an id up
// to it has ended. A poll that finds new ids reads the highest id handed out, then takes an xid
// of its own: a transaction that took an id before holds a smaller xid, so once the oldest
// running xid is newer than the poll's (checked at a later poll), that bound is final and the
// cursor may move to it. Rows above the final bound are observed as soon as they are visible
// and remembered until the cursor passes them, so nothing waits for the cursor and nothing is
// observed twice. The one assumption: a transaction holds its xid before it takes an id. The
// rows observed here (source 'capture') come from the compactor's move, which deletes before
// it inserts; a capture row inserted by hand as the first write of its transaction could, in
// the microseconds between taking its id and its xid, be passed over.
bool Tailer::poll_once(void* raw) {
  auto& conn = *static_cast<pqxx::connection*>(raw);
  const std::int64_t from = position_;
  std::int64_t final_bound = from;
  std::int64_t last_read = from;
  std::size_t rows = 0;
  {
    const auto allocated = pqxx::nontransaction(conn).exec1(kAllocated)[0].as<long long>();
    pqxx::transaction<pqxx::isolation_level::repeatable_read, pqxx::readwrite_policy::read_only> tx(
        conn);
    if (pending_ && tx.exec_params1(kEndedUpTo, pending_->xid)[0].as<bool>()) {
      final_bound = std::max(final_bound, pending_->bound);
      pending_.reset();
    }
    if (!pending_ && allocated > final_bound) {
      pending_ = Pending{allocated, tx.exec1(kOwnXid)[0].as<std::string>()};
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
