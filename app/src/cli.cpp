#include "cli.h"

#include <signal.h>
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <stdexcept>

#include "config.h"
#include "logging.h"
#include "meshhook/bridge/common/rfc3339.h"
#include "meshhook/bridge/common/uuid.h"
#include "meshhook/bridge/storage/backfill.h"
#include "meshhook/bridge/storage/migrations.h"
#include "meshhook/bridge/storage/run_event.h"
#include "meshhook/bridge/storage/tenant_roles.h"
#include "service.h"

namespace meshhook::app {

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine cl;
  std::size_t i = 1;
  if (i < args.size() && !args[i].empty() && args[i][0] != '-') {
    cl.command = args[i++];
    if (cl.command != "serve" && cl.command != "migrate" && cl.command != "backfill" &&
        cl.command != "grant-tenant" && cl.command != "revoke-tenant") {
      throw UsageError("unknown command \"" + cl.command +
                       "\" (commands: serve, migrate, backfill, grant-tenant, revoke-tenant)");
    }
  }
  auto value = [&](const std::string& flag) -> std::string {
    if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
    return args[++i];
  };
  const bool tenant_command = cl.command == "grant-tenant" || cl.command == "revoke-tenant";
  for (; i < args.size(); ++i) {
    const std::string& a = args[i];
    const auto eq = a.find('=');
    const std::string flag = a.substr(0, eq);
    auto arg = [&]() { return eq != std::string::npos ? a.substr(eq + 1) : value(flag); };
    if (a == "-h" || a == "--help") {
      cl.help = true;
    } else if (a == "-V" || a == "--version") {
      cl.version = true;
    } else if (a == "--check-config") {
      cl.check_config = true;
    } else if (flag == "-c" || flag == "--config") {
      cl.config_path = arg();
    } else if (flag == "--since" && cl.command == "backfill") {
      cl.since = arg();
    } else if (flag == "--until" && cl.command == "backfill") {
      cl.until = arg();
    } else if (flag == "--project" && tenant_command) {
      cl.project = arg();
    } else if (flag == "--role" && tenant_command) {
      cl.tenant_role = arg();
    } else {
      throw UsageError("unknown option \"" + a + "\" (see --help)");
    }
  }
  if (cl.command == "backfill" && cl.since.empty() && !cl.help) {
    throw UsageError("backfill needs --since DATE");
  }
  if (tenant_command && !cl.help) {
    if (cl.project.empty() || cl.tenant_role.empty()) {
      throw UsageError(cl.command + " needs --project UUID and --role NAME");
    }
    if (!bridge::Uuid::parse(cl.project)) {
      throw UsageError(
          "--project: expected a project uuid like "
          "aaaaaaaa-aaaa-4aaa-8aaa-aaaaaaaaaaaa, got \"" +
          cl.project + "\"");
    }
    const auto& r = cl.tenant_role;
    const bool ok =
        r.size() <= 63 &&
        std::all_of(
            r.begin(), r.end(),
            [](char c) { return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_'; }) &&
        !(r[0] >= '0' && r[0] <= '9') && !r.starts_with("pg_");
    if (!ok) {
      throw UsageError(
          "--role: a role name is lower-case letters, digits and _, at most 63, "
          "not starting with a digit or pg_ (got \"" +
          r + "\")");
    }
  }
  return cl;
}

std::string usage() {
  std::string text =
      "meshhook-stats " MESHHOOK_VERSION
      " - execution-time statistics for MeshHook workflow runs\n"
      "\n"
      "Usage:\n"
      "  meshhook-stats [serve] [--config FILE]     serve /metrics and the REST API\n"
      "  meshhook-stats migrate [--config FILE]     bring the database schema up to date\n"
      "  meshhook-stats backfill --since DATE [--until DATE] [--config FILE]\n"
      "                                             import finished runs from workflow_runs\n"
      "  meshhook-stats grant-tenant --project UUID --role NAME [--config FILE]\n"
      "                                             let Postgres role NAME (and every login\n"
      "                                             granted it) read that project's statistics\n"
      "                                             over SQL, e.g. Grafana's Postgres data\n"
      "                                             source; creates NAME (NOLOGIN) if absent\n"
      "  meshhook-stats revoke-tenant --project UUID --role NAME [--config FILE]\n"
      "                                             undo one grant-tenant\n"
      "  meshhook-stats --check-config [--config FILE]\n"
      "                                             validate the configuration and exit\n"
      "\n"
      "Options:\n"
      "  -c, --config FILE   YAML configuration (default: built-in defaults; the shipped\n"
      "                      config/meshhook-stats.yaml documents every setting)\n"
      "      --check-config  load and validate the configuration, print it, exit 0 or 2\n"
      "  -h, --help          show this help\n"
      "  -V, --version       show the version\n"
      "\n"
      "Every setting can be overridden by an environment variable:\n";
  for (const auto& key : config_keys()) text += "  " + env_name(key) + "  (" + key + ")\n";
  text +=
      "\n"
      "Exit status: 0 success, 1 runtime failure, 2 bad command line or configuration.\n"
      "Signals: SIGTERM or SIGINT stop accepting requests, finish those in flight, exit 0.\n";
  return text;
}

namespace {

int serve(const Config& config) {
  // Block the stop signals in every thread; this one waits for them below.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  spdlog::info("meshhook-stats {} ({}) starting with config {}", MESHHOOK_VERSION,
               MESHHOOK_REVISION, config.source.empty() ? "(built-in defaults)" : config.source);
  Service service(config);
  service.start();
  spdlog::info("ready");

  int sig = 0;
  sigwait(&stop_signals, &sig);
  spdlog::info("received {}, stopping: no new requests, finishing those in flight",
               sig == SIGTERM ? "SIGTERM" : "SIGINT");
  service.stop();
  spdlog::info("stopped");
  return 0;
}

int migrate(const Config& config) {
  if (config.database_url.empty()) {
    spdlog::error("migrate needs a database: set database.url (or MESHHOOK_STATS_DATABASE_URL)");
    return 2;
  }
  bridge::migrate(config.database_url);  // logs what it applied
  const bool logical = config.capture_mode == "logical";
  if (!bridge::install_meshhook_capture(config.database_url, !logical)) return 0;
  if (!logical) {
    spdlog::info("MeshHook's workflow_runs found: capture trigger installed (or refreshed)");
    return 0;
  }
  spdlog::info("capture.mode logical: no capture trigger on MeshHook's workflow_runs");
  try {
    bridge::install_meshhook_logical_capture(config.database_url, config.capture_slot);
    spdlog::info("replication slot {} and publication meshhook_stats_capture ready",
                 config.capture_slot);
  } catch (const std::exception& e) {
    spdlog::warn(
        "could not create the replication slot {} as this login ({}): run "
        "sql/integrations/meshhook/capture_logical.sql as a role with REPLICATION that owns "
        "workflow_runs (docs/meshhook.md)",
        config.capture_slot, std::string(e.what()).substr(0, 300));
  }
  return 0;
}

// "2026-01-31" (midnight UTC) or an RFC 3339 date-time.
std::optional<std::int64_t> parse_date(const std::string& text) {
  if (auto us = bridge::parse_rfc3339_us(text)) return us;
  if (text.size() == 10) return bridge::parse_rfc3339_us(text + "T00:00:00Z");
  return std::nullopt;
}

int backfill(const Config& config, const CommandLine& cl) {
  if (config.database_url.empty()) {
    spdlog::error("backfill needs a database: set database.url (or MESHHOOK_STATS_DATABASE_URL)");
    return 2;
  }
  const auto since = parse_date(cl.since);
  std::optional<std::int64_t> until;
  if (!since) {
    spdlog::error("--since: expected YYYY-MM-DD or an RFC 3339 date-time, got \"{}\"", cl.since);
    return 2;
  }
  if (!cl.until.empty()) {
    until = parse_date(cl.until);
    if (!until) {
      spdlog::error("--until: expected YYYY-MM-DD or an RFC 3339 date-time, got \"{}\"", cl.until);
      return 2;
    }
  }
  // A bar on a terminal, a line every few seconds otherwise (logs, CI).
  const bool tty = isatty(STDERR_FILENO) != 0;
  auto start = std::chrono::steady_clock::now();
  auto last_line = start;
  auto stage = bridge::BackfillStage::runs;
  auto report = [&](const bridge::BackfillProgress& p) {
    auto now = std::chrono::steady_clock::now();
    if (p.stage != stage) {  // the rate and ETA of each stage on its own
      if (tty) std::fputs("\n", stderr);
      stage = p.stage;
      start = last_line = now;
    }
    const bool details = p.stage == bridge::BackfillStage::details;
    const char* what = details ? "queue waits and steps" : "runs";
    const double secs = std::chrono::duration<double>(now - start).count();
    const double rate = secs > 0 ? static_cast<double>(p.rows_scanned) / secs : 0;
    const double eta = rate > 0 && p.rows_total > p.rows_scanned
                           ? static_cast<double>(p.rows_total - p.rows_scanned) / rate
                           : 0;
    const double frac =
        p.rows_total ? static_cast<double>(p.rows_scanned) / static_cast<double>(p.rows_total)
                     : 1.0;
    if (tty) {
      const int width = 30;
      const int filled = static_cast<int>(std::lround(frac * width));
      std::fprintf(stderr, "\r%s [%s%s] %5.1f%% %llu/%llu rows, %llu new, %.0f rows/s, ETA %.0fs ",
                   what, std::string(static_cast<std::size_t>(filled), '#').c_str(),
                   std::string(static_cast<std::size_t>(width - filled), '.').c_str(), frac * 100,
                   static_cast<unsigned long long>(p.rows_scanned),
                   static_cast<unsigned long long>(p.rows_total),
                   static_cast<unsigned long long>(p.rows_inserted), rate, eta);
    } else if (now - last_line >= std::chrono::seconds(5) || p.rows_scanned == p.rows_total) {
      last_line = now;
      if (details) {
        spdlog::info(
            "backfill: {}: {}/{} runs done ({:.1f}%), {} queue and {} step rows new, {:.0f} "
            "runs/s, ETA {:.0f}s",
            what, p.rows_scanned, p.rows_total, frac * 100, p.queue_rows_inserted,
            p.step_rows_inserted, rate, eta);
      } else {
        spdlog::info(
            "backfill: {}: {}/{} rows scanned ({:.1f}%), {} new, {:.0f} rows/s, ETA {:.0f}s", what,
            p.rows_scanned, p.rows_total, frac * 100, p.rows_inserted, rate, eta);
      }
    }
  };
  spdlog::info("backfill from workflow_runs, finished since {}{}",
               bridge::format_rfc3339_us(*since),
               until ? " until " + bridge::format_rfc3339_us(*until) : std::string(" until now"));
  bridge::BackfillOptions options;
  options.details_delay = std::chrono::milliseconds(config.tail_details_delay_ms);
  const auto inserted = bridge::backfill(config.database_url, *since, until, report, options);
  if (tty) std::fputs("\n", stderr);
  spdlog::info("backfill done: {} new row(s)", inserted);
  return 0;
}

int tenant_grant(const Config& config, const CommandLine& cl) {
  if (config.database_url.empty()) {
    spdlog::error("{} needs a database: set database.url (or MESHHOOK_STATS_DATABASE_URL)",
                  cl.command);
    return 2;
  }
  try {
    if (cl.command == "grant-tenant") {
      bridge::grant_tenant(config.database_url, cl.tenant_role, cl.project);
      spdlog::info("role {} (and every login granted it) may now read project {} over SQL",
                   cl.tenant_role, cl.project);
      return 0;
    }
    if (!bridge::revoke_tenant(config.database_url, cl.tenant_role, cl.project)) {
      spdlog::error("role {} has no grant for project {}: nothing revoked", cl.tenant_role,
                    cl.project);
      return 1;
    }
    spdlog::info("role {} may no longer read project {}", cl.tenant_role, cl.project);
    return 0;
  } catch (const bridge::TenantGrantError& e) {
    spdlog::error("{}: {}", cl.command, e.what());
    return 1;
  }
}

}  // namespace

int run(const std::vector<std::string>& args, char** envp) {
  CommandLine cl;
  try {
    cl = parse_command_line(args);
  } catch (const UsageError& e) {
    std::fprintf(stderr, "meshhook-stats: %s\n", e.what());
    return 2;
  }
  if (cl.help) {
    std::fputs(usage().c_str(), stdout);
    return 0;
  }
  if (cl.version) {
    std::printf("meshhook-stats %s (%s)\n", MESHHOOK_VERSION, MESHHOOK_REVISION);
    return 0;
  }
  Config config;
  try {
    config = load_config(cl.config_path, envp);
  } catch (const ConfigError& e) {
    std::fprintf(stderr, "meshhook-stats: configuration error: %s\n", e.what());
    return 2;
  }
  if (cl.check_config) {
    std::printf("configuration OK: %s\n",
                config.source.empty() ? "(built-in defaults)" : config.source.c_str());
    return 0;
  }
  setup_logging(config.log_level, config.log_format);
  try {
    if (cl.command == "migrate") return migrate(config);
    if (cl.command == "backfill") return backfill(config, cl);
    if (cl.command == "grant-tenant" || cl.command == "revoke-tenant") {
      return tenant_grant(config, cl);
    }
    return serve(config);
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}

}  // namespace meshhook::app
