#pragma once
// The database schema: forward-only numbered migrations compiled into the binary from
// sql/migrations/, applied in order, each in its own transaction and recorded in
// meshhook_stats_migrations(version, name, applied_at, checksum).

#include <string>
#include <string_view>
#include <vector>

namespace meshhook::bridge {

/// One migration as shipped in this build.
struct Migration {
  int version = 0;       // from the file name: 0001_create_x.sql -> 1
  std::string name;      // "create_x"
  std::string_view sql;  // the file's text (static storage)
  std::string checksum;  // lower-case hex SHA-256 of the file's bytes
};

/// This build's migrations, in version order. Thread-safe.
const std::vector<Migration>& migrations();
/// The version this build needs: the highest of migrations().
int required_schema_version();

/// Applies every migration not yet recorded, in order, each in its own transaction, while
/// holding a Postgres advisory lock so that two daemons never migrate at once (the second
/// waits, then finds nothing to do). Returns how many it applied (0 when current).
/// A recorded migration whose checksum differs from this build's is logged, not re-applied.
/// Throws pqxx::broken_connection when the database is unreachable, std::runtime_error
/// (with the SQL error) when a migration fails.
int migrate(const std::string& url);

struct SchemaStatus {
  int current_version = 0;   // highest recorded version; 0 = never migrated
  int required_version = 0;  // required_schema_version()
  /// True when every migration of this build is applied. A newer schema (a newer daemon
  /// migrated first during a rolling upgrade) is accepted: migrations only add.
  bool current() const noexcept { return current_version >= required_version; }
  /// "database schema is at version N, this build needs M: run `meshhook-stats migrate`",
  /// or empty when current().
  std::string message() const;
};

/// Reads the recorded schema version (read-only). Throws pqxx::broken_connection when the
/// database is unreachable.
SchemaStatus check_schema(const std::string& url);

/// The text of a file compiled in from sql/ (e.g. "integrations/meshhook/capture.sql").
/// Throws std::out_of_range when there is no such file.
std::string_view embedded_sql(std::string_view relative_path);

/// Installs the MeshHook capture trigger (sql/integrations/meshhook/capture.sql) in the
/// database at url, in one transaction. Returns false, installing nothing, when the database
/// has no workflow_runs table. Requires a current schema (throws std::runtime_error if not).
/// With trigger false (capture.mode logical) it installs the functions of capture.sql but no
/// trigger on workflow_runs (and removes one installed before).
bool install_meshhook_capture(const std::string& url, bool trigger = true);

/// Creates the logical capture's replication slot and publication
/// (sql/integrations/meshhook/capture_logical.sql) in the database at url; safe to repeat.
/// Needs a login that may create both (REPLICATION, owner of workflow_runs); throws what
/// Postgres said otherwise. Returns false when the database has no workflow_runs table.
bool install_meshhook_logical_capture(const std::string& url, const std::string& slot);

}  // namespace meshhook::bridge
