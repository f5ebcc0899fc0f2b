#pragma once
// Where an ingested run's time went: its queue wait (queue_time_statistics) and its steps
// (step_time_statistics), written by the batch writer in the transaction that stores the runs.

#include <pqxx/connection>
#include <pqxx/transaction>
#include <span>

#include "meshhook/bridge/storage/run_event.h"

namespace meshhook::bridge::detail {

/// Creates this connection's temporary tables for the details and prepares their inserts.
void prepare_run_details(pqxx::connection_base& conn);

/// Writes the queue row and step rows of every run in events that carries them and is not in
/// execution_time_statistics yet, with source 'ingest'. Call it in the batch's transaction
/// before the runs themselves are inserted: a run that is already stored (re-posted, replayed
/// from the spool, or captured from MeshHook) adds nothing, and of a run given twice in one
/// batch only the first counts. Does nothing, and costs nothing, when no event has details.
/// Throws pqxx errors like the writer's own statements.
void write_run_details(pqxx::work& tx, std::span<const RunEvent> events);

}  // namespace meshhook::bridge::detail
