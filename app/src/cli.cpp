#include "cli.h"

#include <signal.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <stdexcept>

#include "config.h"
#include "logging.h"
#include "service.h"

namespace meshhook::app {

CommandLine parse_command_line(const std::vector<std::string>& args) {
  CommandLine cl;
  std::size_t i = 1;
  if (i < args.size() && !args[i].empty() && args[i][0] != '-') {
    cl.command = args[i++];
    if (cl.command != "serve" && cl.command != "migrate" && cl.command != "backfill") {
      throw UsageError("unknown command \"" + cl.command + "\" (commands: serve, migrate, backfill)");
    }
  }
  auto value = [&](const std::string& flag) -> std::string {
    if (i + 1 >= args.size()) throw UsageError(flag + " needs a value");
    return args[++i];
  };
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
    } else {
      throw UsageError("unknown option \"" + a + "\" (see --help)");
    }
  }
  if (cl.command == "backfill" && cl.since.empty() && !cl.help) {
    throw UsageError("backfill needs --since DATE");
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
    if (cl.command == "serve") return serve(config);
    spdlog::error("{} is not available in this build", cl.command);
    return 1;
  } catch (const std::exception& e) {
    spdlog::critical("{}", e.what());
    return 1;
  }
}

}  // namespace meshhook::app
