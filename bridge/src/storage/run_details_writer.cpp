#include "detail/run_details_writer.h"

#include <algorithm>
#include <pqxx/pqxx>
#include <string>
#include <string_view>
#include <tuple>
#include <unordered_set>
#include <vector>

namespace meshhook::bridge::detail {
namespace {

// Per connection, like meshhook_stats_incoming: rows arrive by COPY and leave at commit.
constexpr const char* kCreateIncoming = R"sql(
create temporary table if not exists meshhook_stats_incoming_queue (
    run_id      uuid   not null,
    project_id  uuid   not null,
    workflow_id uuid   not null,
    status      text   not null,
    queued_us   bigint not null,
    started_us  bigint not null,
    finished_us bigint not null
) on commit delete rows;
create temporary table if not exists meshhook_stats_incoming_steps (
    run_id      uuid    not null,
    project_id  uuid    not null,
    workflow_id uuid    not null,
    step_id     text    not null,
    step_type   text    not null,
    status      text    not null,
    attempts    integer not null,
    started_us  bigint  not null,
    finished_us bigint  not null
) on commit delete rows)sql";

// A run over HTTP is one job: jobs = 1 and its wait is both the queue wait and the start wait.
// Milliseconds are microseconds rounded half up, as for execution_time_ms.
//
// "Not stored yet" is one index probe per incoming row (the lateral ... limit 1): as a plain
// NOT EXISTS the planner, without statistics on the temporary table, hashes the whole of
// execution_time_statistics for every batch, which grows with the table (2.6 s per batch at
// 300,000 rows on the development machine, against 1.0 s for the probes of 60,000 steps).
constexpr const char* kInsertQueue = R"sql(
insert into queue_time_statistics
    (run_id, project_id, workflow_id, status, finished_at, queued_at, started_at, jobs,
     queue_wait_ms, start_wait_ms, source)
select i.run_id, i.project_id, i.workflow_id, i.status,
       timestamptz 'epoch' + i.finished_us * interval '1 microsecond',
       timestamptz 'epoch' + i.queued_us * interval '1 microsecond',
       timestamptz 'epoch' + i.started_us * interval '1 microsecond',
       1,
       (greatest(i.started_us - i.queued_us, 0) + 500) / 1000,
       (greatest(i.started_us - i.queued_us, 0) + 500) / 1000,
       'ingest'
from meshhook_stats_incoming_queue i
left join lateral (select true as stored from execution_time_statistics e
                   where e.run_id = i.run_id limit 1) e on true
where e.stored is null
on conflict (run_id) do nothing)sql";

constexpr const char* kInsertSteps = R"sql(
insert into step_time_statistics
    (run_id, step_id, step_type, project_id, workflow_id, status, attempts, started_at,
     finished_at, duration_ms, source)
select i.run_id, i.step_id, i.step_type, i.project_id, i.workflow_id, i.status, i.attempts,
       timestamptz 'epoch' + i.started_us * interval '1 microsecond',
       timestamptz 'epoch' + i.finished_us * interval '1 microsecond',
       (greatest(i.finished_us - i.started_us, 0) + 500) / 1000,
       'ingest'
from meshhook_stats_incoming_steps i
left join lateral (select true as stored from execution_time_statistics e
                   where e.run_id = i.run_id limit 1) e on true
where e.stored is null
on conflict (run_id, step_id) do nothing)sql";

// The runs of the batch that carry details, each run once (its first occurrence).
std::vector<const RunEvent*> runs_with_details(std::span<const RunEvent> events) {
  std::vector<const RunEvent*> out;
  std::unordered_set<std::string_view> seen;
  for (const RunEvent& e : events) {
    if (!e.has_details()) continue;
    const auto& id = e.run_id.bytes;
    if (seen.emplace(reinterpret_cast<const char*>(id.data()), id.size()).second) {
      out.push_back(&e);
    }
  }
  return out;
}

// The three keys of a run as text, for COPY.
struct RunKeys {
  std::string run_id = std::string(36, '\0');
  std::string project_id = std::string(36, '\0');
  std::string workflow_id = std::string(36, '\0');

  void set(const RunEvent& e) {
    e.run_id.write(run_id.data());
    e.project_id.write(project_id.data());
    e.workflow_id.write(workflow_id.data());
  }
};

void copy_queue(pqxx::work& tx, const std::vector<const RunEvent*>& runs) {
  pqxx::stream_to copy(tx, "meshhook_stats_incoming_queue",
                       std::vector<std::string>{"run_id", "project_id", "workflow_id", "status",
                                                "queued_us", "started_us", "finished_us"});
  RunKeys keys;
  for (const RunEvent* e : runs) {
    if (e->queued_at_us == 0) continue;
    keys.set(*e);
    copy << std::make_tuple(
        keys.run_id, keys.project_id, keys.workflow_id, std::string(to_string(e->status)),
        static_cast<long long>(e->queued_at_us), static_cast<long long>(e->started_at_us),
        static_cast<long long>(e->finished_at_us));
  }
  copy.complete();
}

void copy_steps(pqxx::work& tx, const std::vector<const RunEvent*>& runs) {
  pqxx::stream_to copy(
      tx, "meshhook_stats_incoming_steps",
      std::vector<std::string>{"run_id", "project_id", "workflow_id", "step_id", "step_type",
                               "status", "attempts", "started_us", "finished_us"});
  RunKeys keys;
  for (const RunEvent* e : runs) {
    if (e->steps.empty()) continue;
    keys.set(*e);
    for (const RunStep& s : e->steps) {
      copy << std::make_tuple(keys.run_id, keys.project_id, keys.workflow_id, s.id, s.type,
                              std::string(to_string(s.status)), static_cast<long long>(s.attempts),
                              static_cast<long long>(s.started_at_us),
                              static_cast<long long>(s.finished_at_us));
    }
  }
  copy.complete();
}

}  // namespace

void prepare_run_details(pqxx::connection_base& conn) {
  {
    pqxx::nontransaction tx(conn);
    tx.exec(kCreateIncoming);
  }
  conn.prepare("meshhook_stats_insert_queue", kInsertQueue);
  conn.prepare("meshhook_stats_insert_steps", kInsertSteps);
}

void write_run_details(pqxx::work& tx, std::span<const RunEvent> events) {
  const auto runs = runs_with_details(events);
  if (runs.empty()) return;
  const bool queue =
      std::any_of(runs.begin(), runs.end(), [](const RunEvent* e) { return e->queued_at_us != 0; });
  const bool steps =
      std::any_of(runs.begin(), runs.end(), [](const RunEvent* e) { return !e->steps.empty(); });
  if (queue) {
    copy_queue(tx, runs);
    tx.exec_prepared("meshhook_stats_insert_queue");
  }
  if (steps) {
    copy_steps(tx, runs);
    tx.exec_prepared("meshhook_stats_insert_steps");
  }
}

}  // namespace meshhook::bridge::detail
