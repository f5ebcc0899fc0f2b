#pragma once
// A MeshHook database with the logical capture installed, as the logical capture's tests
// share it.

#include <chrono>
#include <string>

#include "db_support.h"
#include "meshhook/bridge/storage/logical_capture.h"
#include "meshhook/bridge/storage/migrations.h"

namespace meshhook::testing {

inline constexpr const char* kCaptureProject = "11111111-1111-4111-8111-111111111111";
inline constexpr const char* kCaptureWorkflow = "22222222-2222-4222-8222-222222222222";

// MeshHook's tables with one project and workflow, capture.sql's functions but no trigger (as
// `migrate` leaves them with capture.mode: logical), the slot and the publication. Slot names
// are the server's: each test database gets its own (dropped with the database).
inline bridge::LogicalCaptureOptions make_meshhook_logical(const TestDatabase& db) {
  using namespace std::chrono_literals;
  bridge::migrate(db.url());
  db.exec_file("tests/fixtures/meshhook_schema.sql");
  db.exec(std::string("insert into projects (id, owner, name) values ('") + kCaptureProject +
          "', gen_random_uuid(), 'demo');"
          "insert into workflow_definitions (id, project_id, slug, name) values ('" +
          kCaptureWorkflow + "', '" + kCaptureProject + "', 'checkout', 'Checkout')");
  REQUIRE(bridge::install_meshhook_capture(db.url(), false));
  REQUIRE(bridge::install_meshhook_logical_capture(db.url(), db.name()));
  bridge::LogicalCaptureOptions o;
  o.database_url = db.url();
  o.slot = db.name();
  o.interval = 50ms;
  o.retry = 100ms;
  return o;
}

}  // namespace meshhook::testing
