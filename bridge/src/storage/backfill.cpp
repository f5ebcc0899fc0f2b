#include "meshhook/bridge/storage/backfill.h"

#include <spdlog/spdlog.h>

#include <chrono>
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

std::int64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
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
  std::string cursor_name = "backfill:" + std::to_string(since_us) + "/" +
                            (until_us ? std::to_string(*until_us) : std::string("now"));

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
  return p.rows_inserted;
}

}  // namespace meshhook::bridge
