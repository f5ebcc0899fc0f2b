#include "meshhook/bridge/storage/tailer.h"

#include <spdlog/spdlog.h>

#include <map>
#include <pqxx/pqxx>
#include <vector>

#include "detail/conninfo.h"

namespace meshhook::bridge {
namespace {

constexpr const char* kCursorName = "tailer";
// The position up to which captured runs have their queue waits and steps recorded.
constexpr const char* kDetailsCursorName = "tailer:details";

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

// Installed by sql/integrations/meshhook/capture.sql where job_tracking and workflow_events
// exist.
constexpr const char* kDetailsInstalled =
    "select to_regprocedure('meshhook_stats_record_run_details(uuid[], text)') is not null";

// Captured runs whose details are not recorded yet, all below the final cursor.
constexpr const char* kSelectCaptured = R"sql(
select id, run_id::text, project_id::text, workflow_id::text,
       extract(epoch from finished_at)::float8
from execution_time_statistics
where id > $1 and id <= $2 and source = 'capture'
order by id
limit $3)sql";

// Records the runs' queue waits and steps; returns the rows it inserted (step_id null: the
// queue row, duration_ms its wait).
constexpr const char* kRecordDetails = R"sql(
select run_id::text, step_id, status, duration_ms
from meshhook_stats_record_run_details($1::uuid[], 'capture'))sql";

std::string_view text(const pqxx::field& f) { return {f.c_str(), f.size()}; }

// Observes the queue waits and steps the details function inserted (recorded) for the first
// `ready` runs of `captured`, one observation per run.
void observe_recorded(exporter::RunMetrics& metrics, const pqxx::result& captured,
                      std::size_t ready, const pqxx::result& recorded) {
  struct RunDetails {
    double queue_seconds = -1;
    std::vector<exporter::StepObservation> steps;
  };
  std::map<std::string_view, RunDetails> by_run;
  for (const auto& row : recorded) {
    auto& d = by_run[text(row[0])];
    const double seconds = static_cast<double>(row[3].as<long long>()) / 1000.0;
    if (row[1].is_null()) {
      d.queue_seconds = seconds;
    } else {
      d.steps.push_back({text(row[1]), text(row[2]), seconds});
    }
  }
  for (std::size_t i = 0; i < ready && !by_run.empty(); ++i) {
    const auto& row = captured[static_cast<pqxx::result::size_type>(i)];
    const auto it = by_run.find(text(row[1]));
    if (it == by_run.end()) continue;
    exporter::RunObservation obs;
    obs.run_id = text(row[1]);
    obs.tenant = text(row[2]);
    obs.workflow = text(row[3]);
    obs.finished_at_seconds = row[4].as<double>();
    obs.queue_seconds = it->second.queue_seconds;
    obs.steps = it->second.steps;
    metrics.observe_details(obs);
  }
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
        // The details start where the runs do the first time (later: their own cursor).
        tx.exec_params(
            "insert into meshhook_stats_cursors (name, last_id) values ($1, $2) "
            "on conflict (name) do nothing",
            kDetailsCursorName, static_cast<long long>(position_.load()));
        details_position_ =
            tx.exec_params1("select last_id from meshhook_stats_cursors where name = $1",
                            kDetailsCursorName)[0]
                .as<long long>();
        active_ = true;
        pending_.reset();
        seen_above_.clear();
        details_seen_.clear();
        details_warned_ = false;
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
// The one assumption: a transaction holds its xid before it takes an id. The rows observed here
// (source 'capture') come from the compactor's move, which deletes before it inserts.
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
  const bool details_full = poll_details(raw);
  return full || details_full;
}

// Records the queue waits and steps of the captured runs below the cursor once each has
// settled (details_delay after this replica first saw it), in id order, and observes what was
// inserted. The details cursor moves in the same transaction that inserts them, so a crash or a
// handover records and observes nothing twice and loses nothing. Errors other than a lost
// connection are logged and retried at the next poll; the runs are observed regardless.
bool Tailer::poll_details(void* raw) {
  auto& conn = *static_cast<pqxx::connection*>(raw);
  const std::int64_t from = details_position_;
  const std::int64_t to = position_;
  if (from >= to) return false;
  try {
    pqxx::work tx(conn);
    if (!tx.exec1(kDetailsInstalled)[0].as<bool>()) {
      if (!details_warned_) {
        spdlog::warn(
            "tailer: queue waits and steps are not recorded: meshhook_stats_record_run_details "
            "is missing (run `meshhook-stats migrate` where job_tracking and workflow_events "
            "exist); they will be once it is installed");
        details_warned_ = true;
      }
      return false;
    }
    const auto batch = options_.details_batch_runs;
    const auto captured = tx.exec_params(kSelectCaptured, static_cast<long long>(from),
                                         static_cast<long long>(to), static_cast<long long>(batch));
    // Everything up to `to` is read unless the batch is full.
    std::int64_t next = captured.size() < batch ? to : captured.back()[0].as<long long>();
    const auto now = std::chrono::steady_clock::now();
    std::size_t ready = 0;
    std::string ids = "{";
    for (const auto& row : captured) {
      const std::int64_t id = row[0].as<long long>();
      const auto seen = details_seen_.try_emplace(id, now).first->second;
      if (now - seen < options_.details_delay) {
        next = id - 1;
        break;
      }
      if (ready++ > 0) ids += ',';
      ids += text(row[1]);
    }
    ids += '}';
    pqxx::result recorded;
    if (ready > 0) recorded = tx.exec_params(kRecordDetails, ids);
    if (next > from) {
      tx.exec_params(
          "update meshhook_stats_cursors set last_id = $2, updated_at = now() where name = $1",
          kDetailsCursorName, static_cast<long long>(next));
    }
    tx.commit();
    details_position_ = std::max(from, next);
    std::erase_if(details_seen_, [&](const auto& entry) { return entry.first <= next; });
    details_warned_ = false;

    observe_recorded(metrics_, captured, ready, recorded);
    details_observed_ += recorded.size();
    return ready == batch;
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    if (!details_warned_) {
      spdlog::warn("tailer: recording queue waits and steps failed (SQLSTATE {}), retrying: {}",
                   e.sqlstate(), std::string(e.what()).substr(0, 300));
      details_warned_ = true;
    }
    return false;
  }
}

}  // namespace meshhook::bridge
