#include "meshhook/bridge/storage/backfill.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>

#include "detail/conninfo.h"
#include "meshhook/bridge/storage/migrations.h"

namespace meshhook::bridge {
namespace {

constexpr const char* kNilUuid = "00000000-0000-0000-0000-000000000000";

// Microseconds <-> timestamptz by exact integer arithmetic.
#define MESHHOOK_TS(p) "(timestamptz 'epoch' + " p " * interval '1 microsecond')"
#define MESHHOOK_US(c) "(extract(epoch from " c ") * 1000000)::bigint"

constexpr const char* kFinishedRuns =
    "status in ('succeeded', 'failed', 'canceled')"
    " and started_at is not null and finished_at is not null"
    " and finished_at >= " MESHHOOK_TS("$1") " and finished_at < " MESHHOOK_TS("$2");

// One chunk: the next chunk_rows finished runs after the cursor (finished_at, id), inserted
// unless already stored, and the new cursor.
const std::string kChunk = std::string(
    "with chunk as ("
    "  select id, project_id, workflow_id, status, started_at, finished_at"
    "  from workflow_runs"
    "  where ") + kFinishedRuns +
    "    and (finished_at, id) > (" MESHHOOK_TS("$3") ", $4::uuid)"
    "  order by finished_at, id"
    "  limit $5"
    "), inserted as ("
    "  insert into execution_time_statistics"
    "    (run_id, project_id, workflow_id, status, started_at, finished_at, execution_time_ms,"
    "     source)"
    "  select id, project_id, workflow_id, status, started_at, finished_at,"
    "         (greatest(" MESHHOOK_US("finished_at - started_at") ", 0) + 500) / 1000,"
    "         'backfill'"
    "  from chunk"
    "  on conflict (run_id) do nothing"
    "  returning 1"
    "), last as ("
    "  select finished_at, id from chunk order by finished_at desc, id desc limit 1"
    ")"
    " select (select count(*) from chunk), (select count(*) from inserted),"
    "        (select " MESHHOOK_US("finished_at") " from last), (select id::text from last)";

// Stage details: stored runs of [$1, $2) (captured or backfilled) without any queue or step
// row. Runs that came over HTTP get theirs over HTTP.
constexpr const char* kLacksDetails =
    "s.source in ('capture', 'backfill')"
    " and s.finished_at >= " MESHHOOK_TS("$1") " and s.finished_at < " MESHHOOK_TS("$2")
    " and not exists (select 1 from queue_time_statistics q where q.run_id = s.run_id)"
    " and not exists (select 1 from step_time_statistics t where t.run_id = s.run_id)";

// A run settled (its last events are in) once it finished at least $N milliseconds ago.
#define MESHHOOK_UNSETTLED(n) "s.finished_at >= now() - " n " * interval '1 millisecond'"

const std::string kDetailsTotal =
    std::string("select count(*) from execution_time_statistics s where s.id > $3 and ") +
    kLacksDetails + " and not " MESHHOOK_UNSETTLED("$4");

// One details chunk: the next $4 rows of execution_time_statistics by id, the settled ones
// lacking details recorded; the smallest unsettled one, where the saved position must stop.
const std::string kDetailsChunk =
    std::string(
        "with scan as materialized ("
        "  select s.id, s.run_id, (") +
    kLacksDetails +
    ") as lacking, " MESHHOOK_UNSETTLED("$5") " as unsettled"
    "  from execution_time_statistics s"
    "  where s.id > $3"
    "  order by s.id"
    "  limit $4"
    "), todo as ("
    "  select run_id from scan where lacking and not unsettled"
    "), recorded as ("
    "  select d.step_id from meshhook_stats_record_run_details("
    "    (select coalesce(array_agg(run_id), '{}') from todo), 'backfill') d"
    ")"
    " select (select count(*) from scan), (select count(*) from todo),"
    "        (select count(*) from recorded where step_id is null),"
    "        (select count(*) from recorded where step_id is not null),"
    "        (select max(id) from scan), (select min(id) from scan where lacking and unsettled)";

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// Stage details: goes through execution_time_statistics in id order (the runs just imported
// have the largest ids), so each chunk is a primary key range. The saved position never passes
// a run left for later (finished too recently), so the next backfill of the range reaches it.
void backfill_details(pqxx::connection& conn, std::int64_t since_us, std::int64_t until_us,
                      const std::string& cursor_name,
                      const std::function<void(const BackfillProgress&)>& progress,
                      const BackfillOptions& options) {
  BackfillProgress p;
  p.stage = BackfillStage::details;
  const long long delay_ms = options.details_delay.count();
  long long scan_from = 0;
  {
    pqxx::read_transaction tx(conn);
    if (tx.exec1("select to_regprocedure('meshhook_stats_record_run_details(uuid[], text)') is "
                 "null")[0]
            .as<bool>()) {
      spdlog::info(
          "backfill: queue waits and steps skipped: meshhook_stats_record_run_details is not "
          "installed (`meshhook-stats migrate` installs it where job_tracking and "
          "workflow_events exist)");
      return;
    }
    auto saved = tx.exec_params(
        "select last_id from meshhook_stats_cursors where name = $1 and last_id is not null",
        cursor_name);
    if (!saved.empty()) {
      scan_from = saved[0][0].as<long long>();
      p.resumed = true;
    }
    p.rows_total = tx.exec_params1(kDetailsTotal, static_cast<long long>(since_us),
                                   static_cast<long long>(until_us), scan_from, delay_ms)[0]
                       .as<unsigned long long>();
  }
  spdlog::info("backfill: queue waits and steps of {} run(s)", p.rows_total);
  if (progress) progress(p);
  std::optional<long long> held;  // the first run left for a later backfill
  for (;;) {
    pqxx::work tx(conn);
    auto row = tx.exec_params1(kDetailsChunk, static_cast<long long>(since_us),
                               static_cast<long long>(until_us), scan_from,
                               static_cast<long long>(options.details_chunk_rows), delay_ms);
    const auto scanned = row[0].as<unsigned long long>();
    if (scanned == 0) break;
    scan_from = row[4].as<long long>();
    if (!held && !row[5].is_null()) held = row[5].as<long long>();
    tx.exec_params(
        "insert into meshhook_stats_cursors (name, last_id, updated_at) values ($1, $2, now())"
        " on conflict (name) do update set last_id = excluded.last_id, updated_at = now()",
        cursor_name, held ? *held - 1 : scan_from);
    tx.commit();
    p.rows_scanned += row[1].as<unsigned long long>();
    p.queue_rows_inserted += row[2].as<unsigned long long>();
    p.step_rows_inserted += row[3].as<unsigned long long>();
    p.rows_inserted = p.queue_rows_inserted + p.step_rows_inserted;
    if (progress) progress(p);
    if (scanned < options.details_chunk_rows) break;
  }
}

}  // namespace

std::uint64_t backfill(const std::string& url, std::int64_t since_us,
                       std::optional<std::int64_t> until_us,
                       const std::function<void(const BackfillProgress&)>& progress,
                       BackfillOptions options) {
  if (auto status = check_schema(url); !status.current()) {
    throw std::runtime_error(status.message());
  }
  std::int64_t until = until_us.value_or(now_us());
  // An open-ended backfill keeps its cursor across runs: the next one continues up to its
  // own "now".
  const std::string range =
      std::to_string(since_us) + "/" + (until_us ? std::to_string(*until_us) : std::string("now"));
  const std::string cursor_name = "backfill:" + range;

  pqxx::connection conn(detail::with_connect_timeout(url));
  BackfillProgress p;
  std::int64_t cursor_us = since_us - 1;
  std::string cursor_id = kNilUuid;
  {
    pqxx::read_transaction tx(conn);
    if (tx.exec1("select to_regclass('workflow_runs') is null")[0].as<bool>()) {
      throw std::runtime_error("this database has no workflow_runs table (is it MeshHook's?)");
    }
    auto saved = tx.exec_params(
        "select " MESHHOOK_US("last_time") ", last_uuid::text from meshhook_stats_cursors"
        " where name = $1 and last_time is not null",
        cursor_name);
    if (!saved.empty()) {
      cursor_us = saved[0][0].as<long long>();
      cursor_id = saved[0][1].as<std::string>();
      p.resumed = true;
      spdlog::info("backfill: resuming after {} (run {})", cursor_us, cursor_id);
    }
    p.rows_total =
        tx.exec_params1(std::string("select count(*) from workflow_runs where ") + kFinishedRuns +
                            " and (finished_at, id) > (" MESHHOOK_TS("$3") ", $4::uuid)",
                        static_cast<long long>(since_us), static_cast<long long>(until),
                        static_cast<long long>(cursor_us), cursor_id)[0]
            .as<unsigned long long>();
  }
  p.position_us = std::max(cursor_us, since_us);
  if (progress) progress(p);

  for (;;) {
    pqxx::work tx(conn);
    auto row = tx.exec_params1(kChunk, static_cast<long long>(since_us),
                               static_cast<long long>(until), static_cast<long long>(cursor_us),
                               cursor_id, static_cast<long long>(options.chunk_rows));
    auto scanned = row[0].as<unsigned long long>();
    if (scanned == 0) break;
    cursor_us = row[2].as<long long>();
    cursor_id = row[3].as<std::string>();
    tx.exec_params(
        "insert into meshhook_stats_cursors (name, last_time, last_uuid, updated_at)"
        " values ($1, " MESHHOOK_TS("$2") ", $3::uuid, now())"
        " on conflict (name) do update set last_time = excluded.last_time,"
        "   last_uuid = excluded.last_uuid, updated_at = now()",
        cursor_name, static_cast<long long>(cursor_us), cursor_id);
    tx.commit();
    p.rows_scanned += scanned;
    p.rows_inserted += row[1].as<unsigned long long>();
    p.position_us = cursor_us;
    if (progress) progress(p);
    if (scanned < options.chunk_rows) break;
  }
  backfill_details(conn, since_us, until, "backfill:details:" + range, progress, options);
  return p.rows_inserted;
}

}  // namespace meshhook::bridge
