#include "cli.h"

#include <catch2/catch.hpp>

using meshhook::app::parse_command_line;
using meshhook::app::UsageError;

TEST_CASE("the command line defaults to serve without a config file", "[cli]") {
  auto cl = parse_command_line({"meshhook-stats"});
  CHECK(cl.command == "serve");
  CHECK(cl.config_path.empty());
  CHECK_FALSE(cl.check_config);
}

TEST_CASE("the command line takes --config in both spellings", "[cli]") {
  CHECK(parse_command_line({"m", "--config", "a.yaml"}).config_path == "a.yaml");
  CHECK(parse_command_line({"m", "--config=b.yaml"}).config_path == "b.yaml");
  CHECK(parse_command_line({"m", "serve", "-c", "c.yaml", "--check-config"}).check_config);
}

TEST_CASE("the command line refuses unknown commands and options", "[cli]") {
  CHECK_THROWS_AS(parse_command_line({"m", "frobnicate"}), UsageError);
  CHECK_THROWS_WITH(parse_command_line({"m", "--verbose"}), Catch::Contains("unknown option"));
  CHECK_THROWS_WITH(parse_command_line({"m", "--config"}), Catch::Contains("needs a value"));
}

TEST_CASE("backfill needs --since", "[cli]") {
  CHECK_THROWS_WITH(parse_command_line({"m", "backfill"}), Catch::Contains("--since"));
  auto cl = parse_command_line({"m", "backfill", "--since", "2026-01-01", "--until=2026-02-01"});
  CHECK(cl.since == "2026-01-01");
  CHECK(cl.until == "2026-02-01");
}

TEST_CASE("help lists every environment variable", "[cli]") {
  const auto text = meshhook::app::usage();
  CHECK(text.find("MESHHOOK_STATS_INGEST_TOKEN_SHA256") != std::string::npos);
  CHECK(text.find("--check-config") != std::string::npos);
}

TEST_CASE("run exits 2 on a bad config and 0 on --check-config of a good one", "[cli]") {
  const std::string fixtures = std::string(MESHHOOK_FIXTURES_DIR) + "/config/";
  CHECK(meshhook::app::run({"m", "--check-config", "-c", fixtures + "bad-port.yaml"}, nullptr) ==
        2);
  CHECK(meshhook::app::run({"m", "--check-config", "-c", fixtures + "good.yaml"}, nullptr) == 0);
  CHECK(meshhook::app::run({"m", "--bogus"}, nullptr) == 2);
}
