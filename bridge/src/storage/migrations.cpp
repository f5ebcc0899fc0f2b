#include "meshhook/bridge/storage/migrations.h"

#include <openssl/evp.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <charconv>
#include <map>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>

#include "detail/embedded_sql.h"

namespace meshhook::bridge {
namespace {

// pg_advisory_lock key for schema changes: "mhsmigr" in ASCII, unlikely to clash with
// MeshHook's own locks.
constexpr long long kMigrationLockKey = 0x6d68736d696772LL;

constexpr std::string_view kCreateMigrationsTable = R"sql(
create table if not exists meshhook_stats_migrations (
    version    integer     primary key,
    name       text        not null,
    applied_at timestamptz not null default now(),
    checksum   text        not null
))sql";

std::string sha256_hex(std::string_view data) {
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int length = 0;
  if (EVP_Digest(data.data(), data.size(), digest, &length, EVP_sha256(), nullptr) != 1) {
    throw std::runtime_error("SHA-256 failed");
  }
  static constexpr char kHex[] = "0123456789abcdef";
  std::string out;
  out.reserve(length * 2);
  for (unsigned int i = 0; i < length; ++i) {
    out.push_back(kHex[digest[i] >> 4]);
    out.push_back(kHex[digest[i] & 0xf]);
  }
  return out;
}

std::vector<Migration> load_migrations() {
  std::vector<Migration> out;
  constexpr std::string_view kPrefix = "migrations/";
  for (std::size_t i = 0; i < detail::kEmbeddedSqlCount; ++i) {
    const auto& file = detail::kEmbeddedSql[i];
    std::string_view path = file.path;
    if (!path.starts_with(kPrefix) || !path.ends_with(".sql")) continue;
    std::string_view base = path.substr(kPrefix.size());
    base.remove_suffix(4);
    Migration m;
    auto [end, ec] = std::from_chars(base.data(), base.data() + base.size(), m.version);
    if (ec != std::errc{} || end == base.data() || *end != '_' || m.version <= 0) {
      throw std::logic_error("migration file name must be NNNN_name.sql: " + std::string(path));
    }
    m.name = std::string(end + 1, base.data() + base.size());
    m.sql = file.text();
    m.checksum = sha256_hex(m.sql);
    out.push_back(std::move(m));
  }
  std::sort(out.begin(), out.end(),
            [](const Migration& a, const Migration& b) { return a.version < b.version; });
  for (std::size_t i = 1; i < out.size(); ++i) {
    if (out[i].version == out[i - 1].version) {
      throw std::logic_error("two migrations share version " + std::to_string(out[i].version));
    }
  }
  return out;
}

struct Recorded {
  std::string name;
  std::string checksum;
};

std::map<int, Recorded> recorded_migrations(pqxx::transaction_base& tx) {
  std::map<int, Recorded> out;
  for (const auto& row : tx.exec("select version, name, checksum from meshhook_stats_migrations")) {
    out[row[0].as<int>()] = Recorded{row[1].as<std::string>(), row[2].as<std::string>()};
  }
  return out;
}

}  // namespace

const std::vector<Migration>& migrations() {
  static const std::vector<Migration> all = load_migrations();
  return all;
}

int required_schema_version() {
  const auto& all = migrations();
  return all.empty() ? 0 : all.back().version;
}

int migrate(const std::string& url) {
  pqxx::connection conn(url);
  // A session lock: held across the per-migration transactions, released on return or
  // when the connection drops.
  {
    pqxx::nontransaction tx(conn);
    tx.exec_params("select pg_advisory_lock($1)", kMigrationLockKey);
  }
  struct Unlock {
    pqxx::connection& conn;
    ~Unlock() {
      try {
        pqxx::nontransaction tx(conn);
        tx.exec_params("select pg_advisory_unlock($1)", kMigrationLockKey);
      } catch (const std::exception&) {
        // The session ends right after; Postgres releases the lock with it.
      }
    }
  } unlock{conn};

  {
    pqxx::work tx(conn);
    tx.exec(std::string(kCreateMigrationsTable));
    tx.commit();
  }
  std::map<int, Recorded> recorded;
  {
    pqxx::read_transaction tx(conn);
    recorded = recorded_migrations(tx);
  }

  int applied = 0;
  for (const auto& m : migrations()) {
    if (auto it = recorded.find(m.version); it != recorded.end()) {
      if (it->second.checksum != m.checksum) {
        spdlog::warn(
            "migration {:04d}_{} was applied with checksum {} but this build ships {}; "
            "migrations must not be edited once released",
            m.version, m.name, it->second.checksum, m.checksum);
      }
      continue;
    }
    spdlog::info("applying migration {:04d}_{}", m.version, m.name);
    try {
      pqxx::work tx(conn);
      tx.exec(std::string(m.sql));
      tx.exec_params(
          "insert into meshhook_stats_migrations (version, name, checksum) values ($1, $2, $3)",
          m.version, m.name, m.checksum);
      tx.commit();
    } catch (const pqxx::broken_connection&) {
      throw;
    } catch (const pqxx::sql_error& e) {
      throw std::runtime_error("migration " + std::to_string(m.version) + "_" + m.name +
                               " failed (SQLSTATE " + e.sqlstate() + "): " + e.what());
    }
    ++applied;
  }
  if (applied == 0) {
    spdlog::info("database schema is current (version {})", required_schema_version());
  } else {
    spdlog::info("applied {} migration(s); schema is at version {}", applied,
                 required_schema_version());
  }
  return applied;
}

std::string SchemaStatus::message() const {
  if (current()) return {};
  return "database schema is at version " + std::to_string(current_version) +
         ", this build needs " + std::to_string(required_version) +
         ": run `meshhook-stats migrate`";
}

SchemaStatus check_schema(const std::string& url) {
  SchemaStatus status;
  status.required_version = required_schema_version();
  pqxx::connection conn(url);
  pqxx::read_transaction tx(conn);
  auto exists = tx.exec1("select to_regclass('meshhook_stats_migrations') is not null");
  if (exists[0].as<bool>()) {
    auto row = tx.exec1("select coalesce(max(version), 0) from meshhook_stats_migrations");
    status.current_version = row[0].as<int>();
  }
  return status;
}

std::string_view embedded_sql(std::string_view relative_path) {
  for (std::size_t i = 0; i < detail::kEmbeddedSqlCount; ++i) {
    if (relative_path == detail::kEmbeddedSql[i].path) return detail::kEmbeddedSql[i].text();
  }
  throw std::out_of_range("no embedded SQL file " + std::string(relative_path));
}

bool install_meshhook_logical_capture(const std::string& url, const std::string& slot) {
  pqxx::connection conn(url);
  pqxx::nontransaction tx(conn);
  if (tx.exec1("select to_regclass('workflow_runs') is null")[0].as<bool>()) return false;
  tx.exec_params("select set_config('meshhook_stats.slot', $1, false)", slot);
  // Outside a transaction block: the slot is created before the publication is written.
  // Postgres 15 can fail creating a slot from PL/pgSQL while it waits for concurrent
  // transactions ("snapshot reference ... is not owned by resource owner", SQLSTATE XX000,
  // seen when parallel test databases were busy). The script is safe to repeat (a slot that
  // was made before the error is found and kept), so it is run again.
  const std::string script(embedded_sql("integrations/meshhook/capture_logical.sql"));
  for (int attempt = 1;; ++attempt) {
    try {
      tx.exec(script);
      return true;
    } catch (const pqxx::sql_error& e) {
      const bool snapshot_bug =
          e.sqlstate() == "XX000" &&
          std::string_view(e.what()).find("not owned by resource owner") != std::string_view::npos;
      if (!snapshot_bug || attempt == 5) throw;
      spdlog::warn(
          "logical capture: Postgres failed creating the replication slot ({}); "
          "trying again",
          std::string(e.what()).substr(0, 120));
    }
  }
}

bool install_meshhook_capture(const std::string& url, bool trigger) {
  if (auto status = check_schema(url); !status.current()) {
    throw std::runtime_error(status.message());
  }
  pqxx::connection conn(url);
  pqxx::work tx(conn);
  if (tx.exec1("select to_regclass('workflow_runs') is null")[0].as<bool>()) {
    return false;
  }
  tx.exec(std::string(embedded_sql("integrations/meshhook/capture.sql")));
  if (!trigger) {
    // capture.mode logical: MeshHook's transactions keep no trigger of ours.
    tx.exec("drop trigger if exists meshhook_stats_capture_run on workflow_runs");
    tx.exec("drop trigger if exists meshhook_stats_capture_run_insert on workflow_runs");
  }
  const bool details =
      tx.exec1(
            "select to_regprocedure('meshhook_stats_record_run_details(uuid[], text)') is not "
            "null")[0]
          .as<bool>();
  tx.commit();
  if (details) {
    spdlog::info(
        "MeshHook's job_tracking and workflow_events found: queue waits and steps are "
        "recorded by the tailer and backfill");
  } else {
    spdlog::info(
        "MeshHook's job_tracking or workflow_events not found: queue waits and steps "
        "are not captured");
  }
  return true;
}

}  // namespace meshhook::bridge
