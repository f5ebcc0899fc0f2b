#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace meshhook::app {

struct CommandLine {
  std::string command = "serve";  // serve, migrate, backfill, grant-tenant, revoke-tenant
  std::string config_path;        // empty: built-in defaults
  bool check_config = false;
  bool help = false;
  bool version = false;
  std::string since;        // backfill
  std::string until;        // backfill
  std::string project;      // grant-tenant, revoke-tenant: the project uuid
  std::string tenant_role;  // grant-tenant, revoke-tenant: the Postgres role
};

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// Parses argv. Throws UsageError with a message for people.
CommandLine parse_command_line(const std::vector<std::string>& args);

/// The --help text.
std::string usage();

/// Runs the program; returns the process exit status (0 ok, 1 failure, 2 usage or config).
int run(const std::vector<std::string>& args, char** envp);

}  // namespace meshhook::app
