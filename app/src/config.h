#pragma once
// The daemon's settings: defaults, the YAML file, then MESHHOOK_STATS_<PATH> environment
// variables, in that order. Every problem is a ConfigError naming file, line and field.

#include <cstddef>
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>
#include <vector>

namespace meshhook::app {

class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ListenerConfig {
  std::string listen;  // "host:port"; empty = disabled (metrics then served on the API listener)
  int threads = 8;
  int request_timeout_ms = 10000;  // headers, and then the body, must each arrive within this
  int max_body_readers = 4;        // requests reading a body at once; must be below threads
  std::string tls_certificate;     // PEM with key; empty = plain HTTP
  int max_header_bytes = 16384;    // request line and headers; larger requests are refused
};

struct Config {
  std::string source;                          // the file it came from ("" = defaults only)
  std::map<std::string, std::string> origins;  // setting -> "file:line" or the variable

  ListenerConfig api{"127.0.0.1:9470", 32, 10000, 16, ""};
  ListenerConfig metrics{"127.0.0.1:9471", 2, 10000, 1, ""};
  std::string metrics_path = "/metrics";
  std::string metrics_bearer_token_sha256;  // empty = no auth on /metrics

  std::string log_level = "info";   // trace, debug, info, warn, error, critical, off
  std::string log_format = "text";  // text or json

  std::vector<double> buckets;  // seconds; default: RunMetricsOptions::default_buckets()
  std::size_t max_series_per_family = 10000;
  std::size_t max_label_value_length = 128;
  bool exemplars = true;
  // Run ids remembered so that a producer's retry is not counted twice: the last N, at most
  // this many seconds old; 0 runs = off.
  std::size_t duplicate_window_runs = 1000000;
  int duplicate_window_seconds = 86400;

  // Read API auth: the caller's JWT (Supabase's HS256 secret, or an RS256/ES256 public key).
  std::string jwt_algorithm = "HS256";  // HS256, RS256 or ES256; no other is ever accepted
  std::string jwt_secret;               // HS256 secret (or jwt_secret_file); "" = none
  std::string jwt_secret_file;
  std::string jwt_public_key_file;  // RS256/ES256: PEM public key
  std::string jwt_audience;         // "" = aud not checked
  std::string jwt_issuer;           // "" = iss not checked
  int jwt_leeway_seconds = 30;
  std::string project_ids_claim;  // standalone: the claim listing the caller's project ids
  // The JWT `role` claims that may read statistics (Supabase's anon key has role "anon"); a
  // token without a role claim counts as "authenticated".
  std::vector<std::string> allowed_roles{"authenticated"};

  std::vector<std::string> ingest_token_sha256;  // lower-case hex SHA-256 of each token
  // For some of those tokens, the only projects (uuids) they may write; others write any.
  std::map<std::string, std::vector<std::string>> ingest_token_projects;
  std::size_t ingest_max_body_bytes = 4 * 1024 * 1024;
  std::size_t ingest_max_batch = 5000;

  std::string database_url;  // empty = metrics only, nothing stored
  int database_pool_size = 4;
  std::string spool_dir = "var/spool";
  std::uint64_t spool_max_bytes = 1ull << 30;
  std::uint64_t spool_segment_bytes = 64ull << 20;
  int spool_group_commit_us = 1000;
  std::size_t writer_batch_rows = 20000;
  int writer_batch_interval_ms = 200;
  int writer_max_backoff_ms = 10000;
  int retention_days = 0;  // 0 = keep forever
  bool tail_enabled = false;
  int tail_interval_ms = 1000;
  int tail_details_delay_ms = 5000;    // queue waits and steps of a captured run: after this
  bool compactor_enabled = true;       // fold rollup deltas (one replica at a time)
  int compactor_interval_ms = 1000;    // pause after a round that found less than a batch
  int compactor_batch_deltas = 20000;  // deltas folded per transaction at most
  // How MeshHook's finished runs are captured: "trigger" (capture.sql, in MeshHook's
  // transactions) or "logical" (a replication slot read by this daemon: capture_logical.sql).
  std::string capture_mode = "trigger";
  std::string capture_slot = "meshhook_stats_capture";
  std::string capture_replication_url;    // the slot's login (REPLICATION); "" = database.url
  int capture_interval_ms = 1000;         // a round: read the slot, store, confirm
  std::size_t capture_batch_runs = 5000;  // about the most runs a store transaction takes

  // Bounds on one statistics request.
  int statistics_request_timeout_ms = 5000;     // one deadline for all of a request's statements
  std::uint64_t statistics_max_buckets = 2500;  // time buckets per period
  std::uint64_t statistics_max_rollup_rows = 200000;  // rollup rows merged per period
  std::size_t statistics_max_in_flight_per_caller = 4;

  bool ui_enabled = true;  // serve the dashboard page at /ui/
  std::string ui_dir;      // its files; "" = this build's dashboards/svelte/dist
};

/// Loads path (defaults when path is empty), then applies the environment (envp-style
/// entries, usually `environ`). Throws ConfigError.
Config load_config(const std::string& path, char** envp);

/// Every setting's dotted path, for --help and the docs.
std::vector<std::string> config_keys();

/// MESHHOOK_STATS_<PATH>: "ingest.max_body_bytes" -> "MESHHOOK_STATS_INGEST_MAX_BODY_BYTES".
std::string env_name(const std::string& key);

}  // namespace meshhook::app
