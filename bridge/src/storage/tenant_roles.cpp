#include "meshhook/bridge/storage/tenant_roles.h"

#include <pqxx/pqxx>

#include "meshhook/bridge/storage/migrations.h"

namespace meshhook::bridge {
namespace {

void require_schema(const std::string& url) {
  if (auto status = check_schema(url); !status.current()) {
    throw TenantGrantError(status.message());
  }
}

// The function's own message (it names the role and the reason); the SQLSTATE says the kind.
[[noreturn]] void refused(const pqxx::sql_error& e) {
  std::string message = e.what();
  if (const auto nl = message.find('\n'); nl != std::string::npos) message.resize(nl);
  if (message.starts_with("ERROR:  ")) message.erase(0, 8);
  throw TenantGrantError(message + " (SQLSTATE " + e.sqlstate() + ")");
}

}  // namespace

void grant_tenant(const std::string& url, const std::string& role, const std::string& project_id) {
  require_schema(url);
  pqxx::connection conn(url);
  try {
    pqxx::work tx(conn);
    tx.exec_params("select meshhook_stats_grant_tenant($1::name, $2::uuid)", role, project_id);
    tx.commit();
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    refused(e);
  }
}

bool revoke_tenant(const std::string& url, const std::string& role, const std::string& project_id) {
  require_schema(url);
  pqxx::connection conn(url);
  try {
    pqxx::work tx(conn);
    const bool revoked = tx.exec_params1("select meshhook_stats_revoke_tenant($1::name, $2::uuid)",
                                         role, project_id)[0]
                             .as<bool>();
    tx.commit();
    return revoked;
  } catch (const pqxx::broken_connection&) {
    throw;
  } catch (const pqxx::sql_error& e) {
    refused(e);
  }
}

}  // namespace meshhook::bridge
