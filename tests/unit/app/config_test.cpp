#include "config.h"

#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "meshhook/exporter/run_metrics.h"

using meshhook::app::Config;
using meshhook::app::ConfigError;
using meshhook::app::load_config;

namespace {

const std::string kFixtures = std::string(MESHHOOK_FIXTURES_DIR) + "/config";

std::string expected_error(const std::filesystem::path& file) {
  std::ifstream in(file);
  std::string first;
  std::getline(in, first);
  const std::string marker = "# error: ";
  REQUIRE(first.rfind(marker, 0) == 0);
  return first.substr(marker.size());
}

struct Env {
  std::vector<std::string> storage;
  std::vector<char*> pointers;
  explicit Env(std::vector<std::string> entries) : storage(std::move(entries)) {
    for (auto& s : storage) pointers.push_back(s.data());
    pointers.push_back(nullptr);
  }
  char** get() { return pointers.data(); }
};

}  // namespace

TEST_CASE("the shipped config file equals the built-in defaults", "[config]") {
  const Config defaults = load_config("", nullptr);
  const Config shipped =
      load_config(std::string(MESHHOOK_SOURCE_DIR) + "/config/meshhook-stats.yaml", nullptr);
  CHECK(shipped.api.listen == defaults.api.listen);
  CHECK(shipped.api.threads == defaults.api.threads);
  CHECK(shipped.api.request_timeout_ms == defaults.api.request_timeout_ms);
  CHECK(shipped.metrics.listen == defaults.metrics.listen);
  CHECK(shipped.metrics.threads == defaults.metrics.threads);
  CHECK(shipped.metrics_path == defaults.metrics_path);
  CHECK(shipped.log_level == defaults.log_level);
  CHECK(shipped.log_format == defaults.log_format);
  CHECK(shipped.buckets == defaults.buckets);
  CHECK(shipped.buckets == meshhook::exporter::RunMetricsOptions::default_buckets());
  CHECK(shipped.max_series_per_family == defaults.max_series_per_family);
  CHECK(shipped.max_label_value_length == defaults.max_label_value_length);
  CHECK(shipped.exemplars == defaults.exemplars);
  CHECK(shipped.duplicate_window_runs == defaults.duplicate_window_runs);
  CHECK(shipped.duplicate_window_seconds == defaults.duplicate_window_seconds);
  CHECK(shipped.ingest_token_sha256 == defaults.ingest_token_sha256);
  CHECK(shipped.ingest_max_body_bytes == defaults.ingest_max_body_bytes);
  CHECK(shipped.ingest_max_batch == defaults.ingest_max_batch);
  CHECK(shipped.database_url == defaults.database_url);
  CHECK(shipped.database_pool_size == defaults.database_pool_size);
  CHECK(shipped.spool_dir == defaults.spool_dir);
  CHECK(shipped.spool_max_bytes == defaults.spool_max_bytes);
  CHECK(shipped.spool_segment_bytes == defaults.spool_segment_bytes);
  CHECK(shipped.spool_group_commit_us == defaults.spool_group_commit_us);
  CHECK(shipped.writer_batch_rows == defaults.writer_batch_rows);
  CHECK(shipped.writer_batch_interval_ms == defaults.writer_batch_interval_ms);
  CHECK(shipped.writer_max_backoff_ms == defaults.writer_max_backoff_ms);
  CHECK(shipped.retention_days == defaults.retention_days);
  CHECK(shipped.tail_enabled == defaults.tail_enabled);
  CHECK(shipped.tail_interval_ms == defaults.tail_interval_ms);
  CHECK(shipped.tail_details_delay_ms == defaults.tail_details_delay_ms);
  CHECK(shipped.compactor_enabled == defaults.compactor_enabled);
  CHECK(shipped.compactor_interval_ms == defaults.compactor_interval_ms);
  CHECK(shipped.compactor_batch_deltas == defaults.compactor_batch_deltas);
  CHECK(shipped.ui_enabled == defaults.ui_enabled);
  CHECK(shipped.ui_dir == defaults.ui_dir);
  CHECK(shipped.api.max_header_bytes == defaults.api.max_header_bytes);
  CHECK(shipped.jwt_algorithm == defaults.jwt_algorithm);
  CHECK(shipped.jwt_secret == defaults.jwt_secret);
  CHECK(shipped.jwt_secret_file == defaults.jwt_secret_file);
  CHECK(shipped.jwt_public_key_file == defaults.jwt_public_key_file);
  CHECK(shipped.jwt_audience == defaults.jwt_audience);
  CHECK(shipped.jwt_issuer == defaults.jwt_issuer);
  CHECK(shipped.jwt_leeway_seconds == defaults.jwt_leeway_seconds);
  CHECK(shipped.project_ids_claim == defaults.project_ids_claim);
  CHECK(shipped.statistics_request_timeout_ms == defaults.statistics_request_timeout_ms);
  CHECK(shipped.statistics_max_buckets == defaults.statistics_max_buckets);
  CHECK(shipped.statistics_max_rollup_rows == defaults.statistics_max_rollup_rows);
  CHECK(shipped.statistics_max_in_flight_per_caller ==
        defaults.statistics_max_in_flight_per_caller);
  CHECK(shipped.allowed_roles == defaults.allowed_roles);
}

TEST_CASE("statistics bounds load from the file and the environment", "[config]") {
  const Config defaults = load_config("", nullptr);
  CHECK(defaults.statistics_request_timeout_ms == 5000);
  CHECK(defaults.statistics_max_in_flight_per_caller == 4);
  Env env({"MESHHOOK_STATS_STATISTICS_REQUEST_TIMEOUT_MS=1",
           "MESHHOOK_STATS_STATISTICS_MAX_BUCKETS=100",
           "MESHHOOK_STATS_STATISTICS_MAX_ROLLUP_ROWS=5000",
           "MESHHOOK_STATS_STATISTICS_MAX_IN_FLIGHT_PER_CALLER=2"});
  const Config c = load_config(kFixtures + "/good.yaml", env.get());
  CHECK(c.statistics_request_timeout_ms == 1);
  CHECK(c.statistics_max_buckets == 100);
  CHECK(c.statistics_max_rollup_rows == 5000);
  CHECK(c.statistics_max_in_flight_per_caller == 2);
  Env bad({"MESHHOOK_STATS_STATISTICS_MAX_ROLLUP_ROWS=10"});
  CHECK_THROWS_WITH(load_config("", bad.get()),
                    Catch::Contains("statistics.max_rollup_rows: must be an integer from 1000"));
}

TEST_CASE("auth.allowed_roles defaults to authenticated and names bad roles", "[config]") {
  CHECK(load_config("", nullptr).allowed_roles == std::vector<std::string>{"authenticated"});
  Env env({"MESHHOOK_STATS_AUTH_ALLOWED_ROLES=authenticated, service_role"});
  CHECK(load_config("", env.get()).allowed_roles ==
        std::vector<std::string>{"authenticated", "service_role"});
  Env bad({"MESHHOOK_STATS_AUTH_ALLOWED_ROLES=anon;drop"});
  CHECK_THROWS_WITH(load_config("", bad.get()),
                    Catch::Contains("auth.allowed_roles") && Catch::Contains("not a role name"));
}

TEST_CASE("the good config fixture loads", "[config]") {
  const Config c = load_config(kFixtures + "/good.yaml", nullptr);
  CHECK(c.source == kFixtures + "/good.yaml");
  CHECK(c.api.listen == "127.0.0.1:9470");
  CHECK(c.tail_details_delay_ms == 2500);
}

TEST_CASE("compactor settings load from the file and the environment", "[config]") {
  const Config file = load_config(kFixtures + "/good.yaml", nullptr);
  CHECK(file.compactor_enabled);
  CHECK(file.compactor_interval_ms == 500);
  CHECK(file.compactor_batch_deltas == 5000);
  Env env({"MESHHOOK_STATS_COMPACTOR_ENABLED=false", "MESHHOOK_STATS_COMPACTOR_BATCH_DELTAS=100"});
  const Config c = load_config(kFixtures + "/good.yaml", env.get());
  CHECK_FALSE(c.compactor_enabled);
  CHECK(c.compactor_batch_deltas == 100);
}

TEST_CASE("every bad config fixture fails with the error its first line names", "[config]") {
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(kFixtures)) {
    const auto name = entry.path().filename().string();
    if (name.rfind("bad-", 0) != 0) continue;
    const std::string want = expected_error(entry.path());
    INFO(name);
    try {
      load_config(entry.path().string(), nullptr);
      FAIL("loaded without an error");
    } catch (const ConfigError& e) {
      const std::string got = e.what();
      INFO(got);
      // The message names the file and line first, then field and reason.
      CHECK(got.rfind(entry.path().string() + ":", 0) == 0);
      CHECK(got.find(want) != std::string::npos);
    }
    ++checked;
  }
  CHECK(checked >= 8);
}

TEST_CASE("ingest tokens may be limited to projects, from the environment too", "[config]") {
  const std::string a(64, 'a'), b(64, 'b');
  Env env({"MESHHOOK_STATS_INGEST_TOKEN_SHA256=" + a + "," + b,
           "MESHHOOK_STATS_INGEST_TOKEN_PROJECTS=" + a + ":11111111-2222-4333-8444-555555555555, " +
               a + ":AAAAAAAA-2222-4333-8444-555555555555"});
  const Config c = load_config(kFixtures + "/good.yaml", env.get());
  REQUIRE(c.ingest_token_projects.size() == 1);
  CHECK(c.ingest_token_projects.at(a) ==
        std::vector<std::string>{"11111111-2222-4333-8444-555555555555",
                                 "aaaaaaaa-2222-4333-8444-555555555555"});
  Env bad({"MESHHOOK_STATS_INGEST_TOKEN_SHA256=" + a,
           "MESHHOOK_STATS_INGEST_TOKEN_PROJECTS=" + a + "=11111111-2222-4333-8444-555555555555"});
  CHECK_THROWS_WITH(load_config(kFixtures + "/good.yaml", bad.get()),
                    Catch::Contains("ingest.token_projects: each item must be SHA256:PROJECT_ID"));
}

TEST_CASE("a missing config file is an error naming the file", "[config]") {
  CHECK_THROWS_WITH(load_config("/nonexistent/meshhook-stats.yaml", nullptr),
                    Catch::StartsWith("/nonexistent/meshhook-stats.yaml: cannot read the file"));
}

TEST_CASE("environment variables override the file", "[config]") {
  Env env(
      {"MESHHOOK_STATS_API_LISTEN=0.0.0.0:8080", "MESHHOOK_STATS_INGEST_MAX_BATCH=7",
       "MESHHOOK_STATS_HISTOGRAMS_BUCKETS=0.5, 1,2",
       "MESHHOOK_STATS_INGEST_TOKEN_SHA256=" + std::string(64, 'a') + "," + std::string(64, 'b'),
       "MESHHOOK_STATS_TAILER_ENABLED=true", "UNRELATED=1"});
  const Config c = load_config(kFixtures + "/good.yaml", env.get());
  CHECK(c.api.listen == "0.0.0.0:8080");
  CHECK(c.ingest_max_batch == 7);
  CHECK(c.buckets == std::vector<double>{0.5, 1, 2});
  CHECK(c.ingest_token_sha256.size() == 2);
  CHECK(c.tail_enabled);
}

TEST_CASE("a bad environment value names the variable", "[config]") {
  Env env({"MESHHOOK_STATS_API_THREADS=0"});
  CHECK_THROWS_WITH(
      load_config("", env.get()),
      Catch::StartsWith(
          "environment variable MESHHOOK_STATS_API_THREADS: api.threads: must be an integer"));
}

TEST_CASE("an unknown MESHHOOK_STATS_ variable is an error", "[config]") {
  Env env({"MESHHOOK_STATS_API_LISTN=1"});
  CHECK_THROWS_WITH(load_config("", env.get()),
                    Catch::Contains("MESHHOOK_STATS_API_LISTN: unknown setting"));
}

TEST_CASE("env names are the dotted path in upper case", "[config]") {
  CHECK(meshhook::app::env_name("ingest.max_body_bytes") == "MESHHOOK_STATS_INGEST_MAX_BODY_BYTES");
}

TEST_CASE("docs/config.md documents every setting", "[config]") {
  std::ifstream in(std::string(MESHHOOK_SOURCE_DIR) + "/docs/config.md");
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  REQUIRE_FALSE(doc.empty());
  for (const auto& key : meshhook::app::config_keys()) {
    INFO(key);
    CHECK(doc.find("`" + key + "`") != std::string::npos);
  }
}
