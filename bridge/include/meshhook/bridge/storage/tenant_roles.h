#pragma once
// Tenant roles: Postgres roles that read one tenant's statistics over SQL (Grafana's Postgres
// data source), decided by role membership rather than by any setting the session controls.
// The work is migration 0007's meshhook_stats_grant_tenant / meshhook_stats_revoke_tenant;
// these open one connection each and call them.

#include <stdexcept>
#include <string>

namespace meshhook::bridge {

/// What Postgres refused, said for people (no connection details, no SQL).
class TenantGrantError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Lets `role` (created NOLOGIN when absent) and every login granted it read `project_id`'s
/// rows. Idempotent. Throws TenantGrantError when Postgres refuses (a superuser or
/// BYPASSRLS role, one of meshhook-stats' own roles, no right to create the role, schema not
/// migrated), pqxx::broken_connection when the database is unreachable.
void grant_tenant(const std::string& url, const std::string& role, const std::string& project_id);

/// Undoes one grant_tenant. False when `role` had no grant for `project_id`. Throws as above.
bool revoke_tenant(const std::string& url, const std::string& role, const std::string& project_id);

}  // namespace meshhook::bridge
