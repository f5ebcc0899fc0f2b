#include "meshhook/bridge/storage/batch_writer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <optional>
#include <pqxx/pqxx>
#include <random>
#include <tuple>

#include "detail/conninfo.h"
#include "detail/family_options.h"
#include "detail/run_copy.h"
#include "detail/run_details_writer.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/rollup_deltas.h"

namespace meshhook::bridge {
namespace {

// Per connection: rows arrive here by COPY and leave at commit.
constexpr const char* kCreateIncoming = R"sql(
create temporary table if not exists meshhook_stats_incoming (
    run_id      uuid   not null,
    project_id  uuid   not null,
    workflow_id uuid   not null,
    status      text   not null,
    started_us  bigint not null,
    finished_us bigint not null,
    workflow_name text not null default ''
) on commit delete rows)sql";

// The rollup deltas the writer computed for its batch, on their way to
// execution_time_rollup_deltas when row level security applies to the login (COPY into that
// table would be refused).
constexpr const char* kCreateIncomingDeltas = R"sql(
create temporary table if not exists meshhook_stats_incoming_deltas (
    project_id   uuid        not null,
    workflow_id  uuid        not null,
    status       text        not null,
    bucket_start timestamptz not null,
    run_count    bigint      not null,
    sum_ms       numeric     not null,
    min_ms       bigint      not null,
    max_ms       bigint      not null,
    zero_count   bigint      not null,
    sketch       int4[]      not null
) on commit delete rows)sql";

constexpr const char* kInsertIncomingDeltas = R"sql(
insert into execution_time_rollup_deltas
    (project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
     zero_count, sketch)
select project_id, workflow_id, status, bucket_start, run_count, sum_ms, min_ms, max_ms,
       zero_count, sketch
from meshhook_stats_incoming_deltas)sql";

// For this transaction only: its inserts into execution_time_statistics come with their
// deltas, and meshhook_stats_rollups_append (0017) returns at once.
constexpr const char* kDeltasWritten =
    "select set_config('meshhook_stats.deltas_written', 'on', true)";

// Whether this login's sessions are ones the trigger trusts with the setting above (members
// of the role owning the trigger function, as 0017 checks) and may append deltas.
constexpr const char* kMayAppendDeltas = R"sql(
select pg_has_role(session_user, p.proowner, 'member')
       and has_table_privilege('execution_time_rollup_deltas', 'insert')
from pg_proc p
where p.oid = 'meshhook_stats_rollups_append()'::regprocedure)sql";

// The server's sketch index against ours at every bucket boundary the writer can meet
// (execution times below 2^44 ms: the direct times' bound): there a last-bit difference
// between two libm's ln would put a value in the next bucket. Counts the disagreements.
constexpr const char* kSketchIndexDisagreements = R"sql(
select count(*) from unnest($1::bigint[], $2::bigint[]) as u(v, i)
where meshhook_stats_sketch_index(v) is distinct from i)sql";

std::string bigint_array(const std::vector<std::int64_t>& values) {
  std::string out = "{";
  for (std::size_t k = 0; k < values.size(); ++k) {
    if (k != 0) out += ',';
    out += std::to_string(values[k]);
  }
  return out + "}";
}

bool may_append_deltas(pqxx::transaction_base& tx) {
  if (!tx.exec1(kMayAppendDeltas)[0].as<bool>()) return false;
  const auto values = sketch_index_boundary_values(std::int64_t{1} << 44);
  std::vector<std::int64_t> ours;
  ours.reserve(values.size());
  for (auto v : values) ours.push_back(sketch_index(v));
  const auto disagreements =
      tx.exec_params1(kSketchIndexDisagreements, bigint_array(values), bigint_array(ours))[0]
          .as<long long>();
  if (disagreements != 0) {
    spdlog::warn(
        "writer: the server's meshhook_stats_sketch_index disagrees with the writer's at {} "
        "bucket boundaries; the trigger appends every rollup delta",
        disagreements);
    return false;
  }
  return true;
}

// Times travel as Unix microseconds and become timestamptz by exact integer arithmetic.
// execution_time_ms: microseconds rounded half up; a negative duration (clock skew at the
// producer) is stored as 0 rather than failing the batch.
constexpr const char* kInsertIncoming = R"sql(
insert into execution_time_statistics
    (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms, source)
select run_id, project_id, workflow_id, status,
       timestamptz 'epoch' + started_us * interval '1 microsecond',
       timestamptz 'epoch' + finished_us * interval '1 microsecond',
       (greatest(finished_us - started_us, 0) + 500) / 1000,
       'ingest'
from meshhook_stats_incoming)sql";
// A replay: runs already stored are skipped (the plain insert above saves the speculative
// insertion this costs every row).
const std::string kInsertIncomingSkippingStored =
    std::string(kInsertIncoming) + "\non conflict (run_id) do nothing";

// The latest name each workflow of the batch was reported with (runs without one leave it
// alone). Rows are taken in workflow_id order, so concurrent writers lock them in one order;
// an unchanged name is not rewritten.
constexpr const char* kUpsertNames = R"sql(
insert into execution_time_workflows as w (workflow_id, project_id, name)
select distinct on (workflow_id) workflow_id, project_id, workflow_name
from meshhook_stats_incoming
where workflow_name <> ''
order by workflow_id, finished_us desc
on conflict (workflow_id) do update
    set name = excluded.name, updated_at = now()
    -- A workflow belongs to the tenant that first named it: a run of another project that
    -- carries the same workflow id neither renames nor moves it.
    where w.project_id = excluded.project_id and w.name is distinct from excluded.name)sql";

// A run Postgres refuses as data (class 22: a value out of range; class 23: a check the
// table makes) fails the same way on every retry: it is poison, not an outage.
bool is_data_error(const pqxx::sql_error& e) {
  const std::string& state = e.sqlstate();
  return state.size() == 5 && (state.compare(0, 2, "22") == 0 || state.compare(0, 2, "23") == 0);
}

// A refused run, kept with the reason (the dead letters) so that it can be seen and put back.
constexpr const char* kInsertRejected = R"sql(
insert into execution_time_rejected_runs (run_id, project_id, source, sqlstate, reason, payload)
values ($1::uuid, $2::uuid, 'ingest', $3, $4,
        jsonb_build_object('run_id', $1::text, 'project_id', $2::text, 'workflow_id', $5::text,
                           'status', $6::text, 'started_at_us', $7::bigint,
                           'finished_at_us', $8::bigint, 'workflow_name', $9::text)))sql";

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

using detail::family;

}  // namespace

struct BatchWriter::Metrics {
  exporter::Gauge& spool_bytes;
  exporter::Gauge& spool_records;
  exporter::Gauge& spool_oldest_age;
  exporter::CounterFamily& batches;
  exporter::Counter& batches_ok;
  exporter::Counter& batches_error;
  exporter::CounterFamily& rejected;
  exporter::CounterFamily& paths;
  exporter::Counter& path_direct;
  exporter::Counter& path_staged;
  exporter::Counter& path_replay;
  exporter::Counter& rows;
  exporter::Histogram& duration;
  exporter::Gauge& database_up;

  static constexpr std::span<const std::string_view> kNoLabels{};

  static exporter::Gauge& gauge(exporter::Registry& r, exporter::FamilyOptions o) {
    return r.add_gauge(std::move(o)).with(kNoLabels);
  }

  explicit Metrics(exporter::Registry& r)
      : spool_bytes(gauge(r, family("meshhook_stats_spool_bytes",
                                    "Bytes of accepted runs in the spool not yet stored in "
                                    "Postgres.",
                                    "bytes"))),
        spool_records(gauge(r, family("meshhook_stats_spool_records",
                                      "Accepted runs in the spool not yet stored in Postgres."))),
        spool_oldest_age(gauge(r, family("meshhook_stats_spool_oldest_record_age_seconds",
                                         "Age of the oldest run in the spool not yet stored in "
                                         "Postgres; 0 when the spool is empty.",
                                         "seconds"))),
        batches(r.add_counter(family("meshhook_stats_write_batches_total",
                                     "Batches written to Postgres, by result (ok, error).", "",
                                     {"result"}))),
        batches_ok(batches.with({"ok"})),
        batches_error(batches.with({"error"})),
        rejected(r.add_counter(family("meshhook_stats_write_rejected_runs_total",
                                      "Runs Postgres refused as data, kept in "
                                      "execution_time_rejected_runs, by SQLSTATE.",
                                      "", {"reason"}))),
        paths(r.add_counter(family("meshhook_stats_write_path_batches_total",
                                   "Batches committed, by path: direct (binary COPY into "
                                   "execution_time_statistics), staged (through a temporary "
                                   "table), replay (staged, skipping runs already stored).",
                                   "", {"path"}))),
        path_direct(paths.with({"direct"})),
        path_staged(paths.with({"staged"})),
        path_replay(paths.with({"replay"})),
        rows(r.add_counter(family("meshhook_stats_write_rows_total",
                                  "Rows inserted into execution_time_statistics (replays "
                                  "skipped by run_id are not counted)."))
                 .with(kNoLabels)),
        duration(r.add_histogram(
                      family("meshhook_stats_write_duration_seconds",
                             "Time to write one batch to Postgres (COPY, insert, "
                             "commit).",
                             "seconds"),
                      {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10})
                     .with(kNoLabels)),
        database_up(gauge(r, family("meshhook_stats_database_up",
                                    "1 when the last connection or write to Postgres "
                                    "succeeded, else 0."))) {}
};

BatchWriter::BatchWriter(Spool& spool, BatchWriterOptions options, exporter::Registry& registry)
    : spool_(spool), options_(std::move(options)), metrics_(std::make_unique<Metrics>(registry)) {
  update_spool_gauges();
}

BatchWriter::~BatchWriter() { stop(std::chrono::milliseconds(0)); }

void BatchWriter::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void BatchWriter::stop(std::chrono::milliseconds drain) {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
    drain_deadline_ = std::chrono::steady_clock::now() + drain;
  }
  stop_cv_.notify_all();
  thread_.join();
  conn_.reset();
}

std::string BatchWriter::last_error() const {
  std::lock_guard lock(mutex_);
  return database_up_ ? std::string() : last_error_;
}

void BatchWriter::set_down(const std::string& error) {
  {
    std::lock_guard lock(mutex_);
    if (database_up_ || last_error_ != error) {
      spdlog::warn("database write failed: {}", error);
    }
    last_error_ = error;
  }
  database_up_ = false;
  metrics_->database_up.set(0);
}

bool BatchWriter::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !stop_cv_.wait_for(lock, d, [&] { return stopping_; });
}

void BatchWriter::update_spool_gauges() {
  auto s = spool_.stats();
  metrics_->spool_bytes.set(static_cast<double>(s.bytes));
  metrics_->spool_records.set(static_cast<double>(s.records));
  metrics_->spool_oldest_age.set(s.oldest_record_age_seconds);
}

void BatchWriter::connect() {
  auto conn =
      std::make_unique<detail::CopyConnection>(detail::with_connect_timeout(options_.database_url));
  {
    pqxx::read_transaction tx(*conn);
    int version = 0;
    if (tx.exec1("select to_regclass('meshhook_stats_migrations') is not null")[0].as<bool>()) {
      version =
          tx.exec1("select coalesce(max(version), 0) from meshhook_stats_migrations")[0].as<int>();
    }
    SchemaStatus status{version, required_schema_version()};
    if (!status.current()) throw std::runtime_error(status.message());
  }
  {
    pqxx::nontransaction tx(*conn);
    tx.exec(kCreateIncoming);
    tx.exec(kCreateIncomingDeltas);
    // COPY into a table refuses a login that its row level security applies to (forced for
    // the owner since 0004): only a superuser or a BYPASSRLS login may take the direct path.
    direct_allowed_ =
        !tx.exec1("select row_security_active('execution_time_statistics')")[0].as<bool>();
    client_deltas_ = may_append_deltas(tx);
  }
  conn->prepare("meshhook_stats_insert_incoming", kInsertIncoming);
  conn->prepare("meshhook_stats_insert_incoming_skipping_stored", kInsertIncomingSkippingStored);
  conn->prepare("meshhook_stats_upsert_names", kUpsertNames);
  conn->prepare("meshhook_stats_deltas_written", kDeltasWritten);
  conn->prepare("meshhook_stats_insert_incoming_deltas", kInsertIncomingDeltas);
  detail::prepare_run_details(*conn);
  conn_ = std::move(conn);
}

std::uint64_t BatchWriter::write_range(const std::vector<RunEvent>& events, std::size_t begin,
                                       std::size_t end, WritePath path) {
  // Every run of the range goes in or none (not so on the replay path), with times the
  // writer knows exactly as stored: then the deltas are the range's, computed here.
  std::optional<std::vector<RollupDelta>> deltas;
  if (client_deltas_ && path != WritePath::replay && detail::direct_times(events, begin, end)) {
    deltas = rollup_deltas(events, begin, end);
  }
  pqxx::work tx(*conn_);
  // Before the runs: it writes the details only of the runs not stored yet.
  detail::write_run_details(tx, std::span(events).subspan(begin, end - begin));
  if (deltas) tx.exec_prepared("meshhook_stats_deltas_written");
  std::uint64_t inserted = 0;
  std::string data;
  if (path == WritePath::direct) {
    detail::encode_runs(events, begin, end, data);
    detail::copy_binary(tx, *conn_, detail::kCopyRunsBinary, data);
    inserted = end - begin;
    data.clear();
    detail::encode_staged(events, latest_named(events, begin, end), data);
  } else {
    detail::encode_staged(events, begin, end, data);
  }
  detail::copy_binary(tx, *conn_, detail::kCopyStagedBinary, data);
  if (path != WritePath::direct) {
    auto result = tx.exec_prepared(path == WritePath::replay
                                       ? "meshhook_stats_insert_incoming_skipping_stored"
                                       : "meshhook_stats_insert_incoming");
    inserted = static_cast<std::uint64_t>(result.affected_rows());
  }
  if (deltas) append_deltas(tx, *deltas, path);
  tx.exec_prepared("meshhook_stats_upsert_names");
  tx.commit();
  if (deltas) ++client_delta_batches_;
  return inserted;
}

void BatchWriter::append_deltas(pqxx::transaction_base& tx, const std::vector<RollupDelta>& deltas,
                                WritePath path) {
  std::string data;
  detail::encode_deltas(deltas, data);
  if (path == WritePath::direct) {
    // Row level security does not apply to this login: straight into the table.
    detail::copy_binary(tx, *conn_, detail::kCopyDeltasBinary, data);
  } else {
    detail::copy_binary(tx, *conn_, detail::kCopyStagedDeltasBinary, data);
    tx.exec_prepared("meshhook_stats_insert_incoming_deltas");
  }
}

// The run that carries the latest name of each workflow of events[begin, end) (as
// kUpsertNames chooses them from the staged rows), so that the direct path stages only those.
std::vector<std::size_t> BatchWriter::latest_named(const std::vector<RunEvent>& events,
                                                   std::size_t begin, std::size_t end) {
  std::vector<std::size_t> named;
  for (std::size_t i = begin; i < end; ++i) {
    if (!events[i].workflow_name.empty()) named.push_back(i);
  }
  std::sort(named.begin(), named.end(), [&](std::size_t a, std::size_t b) {
    const RunEvent& x = events[a];
    const RunEvent& y = events[b];
    if (x.workflow_id.bytes != y.workflow_id.bytes)
      return x.workflow_id.bytes < y.workflow_id.bytes;
    return x.finished_at_us > y.finished_at_us;
  });
  named.erase(std::unique(named.begin(), named.end(),
                          [&](std::size_t a, std::size_t b) {
                            return events[a].workflow_id.bytes == events[b].workflow_id.bytes;
                          }),
              named.end());
  return named;
}

void BatchWriter::reject(const RunEvent& e, const pqxx::sql_error& error) {
  // Only the SQLSTATE and run id are logged; the values stay in the table for the operator.
  spdlog::error(
      "run {} rejected: Postgres refuses it (SQLSTATE {}); kept in "
      "execution_time_rejected_runs",
      e.run_id.to_string(), error.sqlstate());
  std::string reason = error.what();
  if (auto nl = reason.find('\n'); nl != std::string::npos) reason.resize(nl);
  if (reason.starts_with("ERROR:  ")) reason.erase(0, 8);
  pqxx::work tx(*conn_);
  tx.exec_params(kInsertRejected, e.run_id.to_string(), e.project_id.to_string(), error.sqlstate(),
                 reason, e.workflow_id.to_string(), std::string(to_string(e.status)),
                 static_cast<long long>(e.started_at_us), static_cast<long long>(e.finished_at_us),
                 e.workflow_name);
  tx.commit();
  const std::string_view labels[] = {error.sqlstate()};
  metrics_->rejected.with(labels).inc();
}

std::uint64_t BatchWriter::write(const std::vector<RunEvent>& events) {
  if (!conn_) connect();
  if (!replaying_) {
    WritePath path = direct_allowed_ && detail::direct_times(events, 0, events.size())
                         ? WritePath::direct
                         : WritePath::staged;
    try {
      auto inserted = write_range(events, 0, events.size(), path);
      count_path(path);
      return inserted;
    } catch (const pqxx::sql_error& e) {
      if (!is_data_error(e)) throw;
      // A run already stored (23505) or one Postgres refuses: nothing of the batch was
      // written. The replay path below skips the first kind and isolates the second.
      spdlog::info(
          "writer: a batch was refused (SQLSTATE {}); skipping runs already stored until a "
          "batch meets none",
          e.sqlstate());
      replaying_ = true;
    }
  }
  // A row Postgres refuses as data (SQLSTATE 22 or 23: e.g. a time out of range) would block
  // the spool forever. Halve the batch until the bad rows are alone, keep each of them in the
  // dead-letter table with the reason, and write every good neighbour.
  struct Range {
    std::size_t begin, end;
  };
  std::vector<Range> todo{{0, events.size()}};
  std::uint64_t inserted = 0;
  std::uint64_t rejected = 0;
  while (!todo.empty()) {
    Range r = todo.back();
    todo.pop_back();
    try {
      inserted += write_range(events, r.begin, r.end, WritePath::replay);
      count_path(WritePath::replay);
    } catch (const pqxx::sql_error& e) {
      if (!is_data_error(e)) throw;
      if (r.end - r.begin == 1) {
        reject(events[r.begin], e);
        ++rejected;
        continue;
      }
      std::size_t mid = r.begin + (r.end - r.begin) / 2;
      todo.push_back({mid, r.end});
      todo.push_back({r.begin, mid});
    }
  }
  // Every run inserted or refused, none already stored: the replay (if it was one) is over.
  replaying_ = inserted + rejected < events.size();
  return inserted;
}

void BatchWriter::count_path(WritePath path) {
  switch (path) {
    case WritePath::direct:
      ++direct_batches_;
      metrics_->path_direct.inc();
      break;
    case WritePath::staged:
      ++staged_batches_;
      metrics_->path_staged.inc();
      break;
    case WritePath::replay:
      ++replay_batches_;
      metrics_->path_replay.inc();
      break;
  }
}

void BatchWriter::run() {
  std::vector<RunEvent> batch;
  SpoolPosition end{};
  auto batch_started = std::chrono::steady_clock::now();
  auto backoff = options_.initial_backoff;
  std::mt19937_64 rng(std::random_device{}());

  for (;;) {
    bool stopping = false;
    bool past_deadline = false;
    {
      std::lock_guard lock(mutex_);
      stopping = stopping_;
      past_deadline = stopping_ && std::chrono::steady_clock::now() >= drain_deadline_;
    }
    if (past_deadline) break;

    if (batch.size() < options_.batch_rows) {
      auto wait = std::chrono::milliseconds(0);
      if (!stopping) {
        if (batch.empty()) {
          // Not connected (at start, or after a failure): connect first, so /readyz turns
          // ready as soon as Postgres answers (the backoff below paces the retries).
          wait = conn_ ? options_.batch_interval : std::chrono::milliseconds(0);
        } else {
          auto due = batch_started + options_.batch_interval;
          auto now = std::chrono::steady_clock::now();
          if (due > now) wait = std::chrono::duration_cast<std::chrono::milliseconds>(due - now);
        }
      }
      auto more = spool_.read(options_.batch_rows - batch.size(), wait);
      if (!more.events.empty()) {
        if (batch.empty()) batch_started = std::chrono::steady_clock::now();
        batch.insert(batch.end(), std::make_move_iterator(more.events.begin()),
                     std::make_move_iterator(more.events.end()));
        end = more.end;
      }
    }
    update_spool_gauges();
    if (batch.empty()) {
      if (stopping) break;
      spool_.retry_checkpoint();  // after a failed acknowledgement (a full disk, say)
      // Keep the database state fresh while idle: connect if we are not connected.
      if (!conn_) {
        try {
          connect();
          database_up_ = true;
          metrics_->database_up.set(1);
        } catch (const std::exception& e) {
          set_down(e.what());
          conn_.reset();
          if (!sleep_for(backoff)) continue;
          backoff = std::min(backoff * 2, options_.max_backoff);
        }
      }
      continue;
    }
    bool due = batch.size() >= options_.batch_rows || stopping ||
               std::chrono::steady_clock::now() >= batch_started + options_.batch_interval;
    if (!due) continue;

    auto started = std::chrono::steady_clock::now();
    try {
      auto inserted = write(batch);
      metrics_->duration.observe(seconds_since(started));
      metrics_->batches_ok.inc();
      metrics_->rows.inc(static_cast<double>(inserted));
      rows_written_ += inserted;
      if (!database_up_) spdlog::info("database writes resumed");
      database_up_ = true;
      metrics_->database_up.set(1);
      backoff = options_.initial_backoff;
      try {
        spool_.ack(end);
      } catch (const std::exception& e) {
        // The rows are stored; a later acknowledgement covers them, and a replay after a
        // restart is skipped by run_id.
        spdlog::error("{}", e.what());
      }
      batch.clear();
      update_spool_gauges();
    } catch (const std::exception& e) {
      metrics_->batches_error.inc();
      set_down(e.what());
      conn_.reset();        // whatever state it is in, start over with a fresh session
      if (stopping) break;  // what is left stays in the spool for the next start
      // Full jitter on the upper half: spreads reconnects of many daemons.
      std::uniform_int_distribution<long long> jitter(backoff.count() / 2, backoff.count());
      sleep_for(std::chrono::milliseconds(jitter(rng)));
      backoff = std::min(backoff * 2, options_.max_backoff);
    }
  }
  update_spool_gauges();
}

}  // namespace meshhook::bridge
