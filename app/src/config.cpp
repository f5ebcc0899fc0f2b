#include "config.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cmath>
#include <cstring>
#include <functional>
#include <limits>

#include "meshhook/bridge/common/uuid.h"
#include "meshhook/exporter/histogram.h"
#include "meshhook/exporter/run_metrics.h"

namespace meshhook::app {
namespace {

// Where a value came from, for error messages: "file:line" or "environment variable X".
struct Origin {
  std::string where;
};

[[noreturn]] void fail(const Origin& origin, const std::string& key, const std::string& reason) {
  throw ConfigError(origin.where + ": " + key + ": " + reason);
}

std::string scalar(const YAML::Node& node, const Origin& origin, const std::string& key) {
  if (!node.IsScalar()) fail(origin, key, "must be a single value, not a list or a mapping");
  return node.Scalar();
}

// An optional text setting: null (`~` or no value) means unset, i.e. empty.
std::string scalar_or_empty(const YAML::Node& node, const Origin& origin, const std::string& key) {
  return node.IsNull() ? std::string() : scalar(node, origin, key);
}

template <typename Int>
Int integer(const YAML::Node& node, const Origin& origin, const std::string& key, Int min,
            Int max) {
  const std::string s = scalar(node, origin, key);
  Int v{};
  auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  if (ec != std::errc() || end != s.data() + s.size() || v < min || v > max) {
    fail(origin, key,
         "must be an integer from " + std::to_string(min) + " to " + std::to_string(max) +
             " (got \"" + s + "\")");
  }
  return v;
}

bool boolean(const YAML::Node& node, const Origin& origin, const std::string& key) {
  const std::string s = scalar(node, origin, key);
  if (s == "true" || s == "yes" || s == "on" || s == "1") return true;
  if (s == "false" || s == "no" || s == "off" || s == "0") return false;
  fail(origin, key, "must be true or false (got \"" + s + "\")");
}

std::string one_of(const YAML::Node& node, const Origin& origin, const std::string& key,
                   std::initializer_list<const char*> allowed) {
  const std::string s = scalar(node, origin, key);
  std::string list;
  for (const char* a : allowed) {
    if (s == a) return s;
    list += list.empty() ? a : std::string(", ") + a;
  }
  fail(origin, key, "must be one of " + list + " (got \"" + s + "\")");
}

std::string listen_address(const YAML::Node& node, const Origin& origin, const std::string& key,
                           bool may_be_empty) {
  const std::string s = node.IsNull() ? std::string() : scalar(node, origin, key);
  if (s.empty()) {
    if (may_be_empty) return s;
    fail(origin, key, "must be host:port, e.g. 127.0.0.1:9470");
  }
  const auto colon = s.rfind(':');
  int port = 0;
  if (colon == std::string::npos || colon == 0) {
    fail(origin, key, "must be host:port, e.g. 127.0.0.1:9470 (got \"" + s + "\")");
  }
  auto [end, ec] = std::from_chars(s.data() + colon + 1, s.data() + s.size(), port);
  if (ec != std::errc() || end != s.data() + s.size() || port < 1 || port > 65535) {
    fail(origin, key, "port must be from 1 to 65535 (got \"" + s + "\")");
  }
  return s;
}

std::vector<std::string> sha256_list(const YAML::Node& node, const Origin& origin,
                                     const std::string& key) {
  std::vector<std::string> out;
  if (node.IsNull()) return out;
  auto check = [&](const std::string& h) {
    const bool hex = h.size() == 64 && std::all_of(h.begin(), h.end(), [](char c) {
                       return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
                     });
    if (!hex) {
      fail(origin, key,
           "must be the lower-case hex SHA-256 of a token (64 characters; make one with "
           "`printf %s TOKEN | sha256sum`)");
    }
    out.push_back(h);
  };
  if (node.IsSequence()) {
    for (const auto& item : node) check(scalar(item, origin, key));
  } else if (const auto s = scalar(node, origin, key); !s.empty()) {
    check(s);
  }
  if (out.size() > 8) fail(origin, key, "at most 8 tokens may be valid at once");
  return out;
}

// ingest.token_projects: a mapping from a token's SHA-256 to the project ids it may write
// (a list or one id); from the environment, a comma-separated list of SHA256:PROJECT_ID.
std::map<std::string, std::vector<std::string>> token_projects(const YAML::Node& node,
                                                               const Origin& origin,
                                                               const std::string& key) {
  std::map<std::string, std::vector<std::string>> out;
  auto add = [&](const std::string& hash, const std::string& project) {
    if (sha256_list(YAML::Node(hash), origin, key).size() != 1) {
      fail(origin, key, "must map a token's SHA-256 to project ids");
    }
    auto id = bridge::canonical_uuid(project);
    if (!id) fail(origin, key, "\"" + project.substr(0, 64) + "\" is not a project id (a uuid)");
    out[hash].push_back(*id);
  };
  if (node.IsNull()) return out;
  if (node.IsMap()) {
    for (const auto& entry : node) {
      const std::string hash = scalar(entry.first, origin, key);
      if (entry.second.IsSequence()) {
        if (entry.second.size() == 0) fail(origin, key, "a token's project list must not be empty");
        for (const auto& item : entry.second) add(hash, scalar(item, origin, key));
      } else {
        add(hash, scalar(entry.second, origin, key));
      }
    }
  } else if (node.IsSequence()) {
    for (const auto& item : node) {
      const std::string pair = scalar(item, origin, key);
      const auto colon = pair.find(':');
      if (colon == std::string::npos) fail(origin, key, "each item must be SHA256:PROJECT_ID");
      add(pair.substr(0, colon), pair.substr(colon + 1));
    }
  } else {
    fail(origin, key, "must be a mapping from a token's SHA-256 to its project ids");
  }
  return out;
}

std::vector<double> buckets(const YAML::Node& node, const Origin& origin, const std::string& key) {
  if (!node.IsSequence()) fail(origin, key, "must be a list of upper bounds in seconds");
  std::vector<double> out;
  for (const auto& item : node) {
    const std::string s = scalar(item, origin, key);
    double v = 0;
    auto [end, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
    if (ec != std::errc() || end != s.data() + s.size()) {
      fail(origin, key, "\"" + s + "\" is not a number");
    }
    out.push_back(v);
  }
  if (out.empty() || out.size() > 64) fail(origin, key, "must have from 1 to 64 bounds");
  if (auto why = exporter::Histogram::check_bounds(out); !why.empty()) fail(origin, key, why);
  return out;
}

using Setter = std::function<void(const YAML::Node&, const Origin&, const std::string&, Config&)>;

struct Setting {
  const char* key;
  bool list;  // from the environment, a comma-separated list
  Setter set;
};

const std::vector<Setting>& settings() {
  using N = const YAML::Node&;
  using O = const Origin&;
  using K = const std::string&;
  static const std::vector<Setting> kSettings = {
      {"api.listen", false,
       [](N n, O o, K k, Config& c) { c.api.listen = listen_address(n, o, k, false); }},
      {"api.threads", false,
       [](N n, O o, K k, Config& c) { c.api.threads = integer(n, o, k, 1, 1024); }},
      {"api.request_timeout_ms", false,
       [](N n, O o, K k, Config& c) { c.api.request_timeout_ms = integer(n, o, k, 100, 600000); }},
      {"api.max_body_readers", false,
       [](N n, O o, K k, Config& c) { c.api.max_body_readers = integer(n, o, k, 1, 1023); }},
      {"api.tls_certificate", false,
       [](N n, O o, K k, Config& c) { c.api.tls_certificate = scalar_or_empty(n, o, k); }},
      {"api.max_header_bytes", false,
       [](N n, O o, K k, Config& c) { c.api.max_header_bytes = integer(n, o, k, 1024, 1 << 20); }},
      {"auth.jwt_algorithm", false,
       [](N n, O o, K k, Config& c) {
         c.jwt_algorithm = one_of(n, o, k, {"HS256", "RS256", "ES256"});
       }},
      {"auth.jwt_secret", false,
       [](N n, O o, K k, Config& c) {
         c.jwt_secret = scalar_or_empty(n, o, k);
         if (!c.jwt_secret.empty() && c.jwt_secret.size() < 32)
           fail(o, k, "must be at least 32 bytes");
       }},
      {"auth.jwt_secret_file", false,
       [](N n, O o, K k, Config& c) { c.jwt_secret_file = scalar_or_empty(n, o, k); }},
      {"auth.jwt_public_key_file", false,
       [](N n, O o, K k, Config& c) { c.jwt_public_key_file = scalar_or_empty(n, o, k); }},
      {"auth.jwt_audience", false,
       [](N n, O o, K k, Config& c) { c.jwt_audience = scalar_or_empty(n, o, k); }},
      {"auth.jwt_issuer", false,
       [](N n, O o, K k, Config& c) { c.jwt_issuer = scalar_or_empty(n, o, k); }},
      {"auth.jwt_leeway_seconds", false,
       [](N n, O o, K k, Config& c) { c.jwt_leeway_seconds = integer(n, o, k, 0, 600); }},
      {"auth.project_ids_claim", false,
       [](N n, O o, K k, Config& c) {
         c.project_ids_claim = scalar_or_empty(n, o, k);
         const auto& v = c.project_ids_claim;
         const bool ok = v.size() <= 128 && std::all_of(v.begin(), v.end(), [](char ch) {
                           return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' ||
                                  ch == '.' || ch == '-';
                         });
         if (!ok || v.starts_with(".") || v.ends_with(".") || v.find("..") != std::string::npos) {
           fail(o, k, "must be a claim name or dotted path, e.g. app_metadata.project_ids");
         }
       }},
      {"auth.allowed_roles", true,
       [](N n, O o, K k, Config& c) {
         std::vector<std::string> roles;
         auto add = [&](const std::string& r) {
           const bool ok =
               !r.empty() && r.size() <= 63 && std::all_of(r.begin(), r.end(), [](char ch) {
                 return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_' || ch == '-';
               });
           if (!ok) {
             fail(o, k, "\"" + r + "\" is not a role name (letters, digits, _ and -, at most 63)");
           }
           roles.push_back(r);
         };
         if (n.IsSequence()) {
           for (const auto& item : n) add(scalar(item, o, k));
         } else {
           add(scalar(n, o, k));
         }
         if (roles.empty()) {
           fail(o, k,
                "must list at least one role (e.g. [authenticated]); no role would "
                "refuse every caller");
         }
         c.allowed_roles = std::move(roles);
       }},
      {"metrics.listen", false,
       [](N n, O o, K k, Config& c) { c.metrics.listen = listen_address(n, o, k, true); }},
      {"metrics.threads", false,
       [](N n, O o, K k, Config& c) { c.metrics.threads = integer(n, o, k, 1, 64); }},
      {"metrics.path", false,
       [](N n, O o, K k, Config& c) {
         c.metrics_path = scalar(n, o, k);
         if (c.metrics_path.empty() || c.metrics_path[0] != '/' ||
             c.metrics_path.rfind("/api/", 0) == 0) {
           fail(o, k, "must start with / and not with /api/");
         }
       }},
      {"metrics.bearer_token_sha256", false,
       [](N n, O o, K k, Config& c) {
         auto v = sha256_list(n, o, k);
         if (v.size() > 1) fail(o, k, "takes one token hash");
         c.metrics_bearer_token_sha256 = v.empty() ? "" : v[0];
       }},
      {"log.level", false,
       [](N n, O o, K k, Config& c) {
         c.log_level =
             one_of(n, o, k, {"trace", "debug", "info", "warn", "error", "critical", "off"});
       }},
      {"log.format", false,
       [](N n, O o, K k, Config& c) {
         c.log_format = one_of(n, o, k, {"text", "json"});
       }},
      {"histograms.buckets", true, [](N n, O o, K k, Config& c) { c.buckets = buckets(n, o, k); }},
      {"histograms.max_series_per_family", false,
       [](N n, O o, K k, Config& c) {
         c.max_series_per_family = integer<std::size_t>(n, o, k, 1, 10000000);
       }},
      {"histograms.max_label_value_length", false,
       [](N n, O o, K k, Config& c) {
         c.max_label_value_length = integer<std::size_t>(n, o, k, 36, 4096);
       }},
      {"histograms.exemplars", false,
       [](N n, O o, K k, Config& c) { c.exemplars = boolean(n, o, k); }},
      {"histograms.duplicate_window_runs", false,
       [](N n, O o, K k, Config& c) {
         c.duplicate_window_runs = integer<std::size_t>(n, o, k, 0, 100000000);
       }},
      {"histograms.duplicate_window_seconds", false,
       [](N n, O o, K k, Config& c) {
         c.duplicate_window_seconds = integer(n, o, k, 1, 7 * 86400);
       }},
      {"ingest.token_sha256", true,
       [](N n, O o, K k, Config& c) { c.ingest_token_sha256 = sha256_list(n, o, k); }},
      {"ingest.token_projects", true,
       [](N n, O o, K k, Config& c) { c.ingest_token_projects = token_projects(n, o, k); }},
      {"ingest.max_body_bytes", false,
       [](N n, O o, K k, Config& c) {
         c.ingest_max_body_bytes = integer<std::size_t>(n, o, k, 1024, 256u << 20);
       }},
      {"ingest.max_batch", false,
       [](N n, O o, K k, Config& c) {
         c.ingest_max_batch = integer<std::size_t>(n, o, k, 1, 100000);
       }},
      {"database.url", false,
       [](N n, O o, K k, Config& c) { c.database_url = scalar_or_empty(n, o, k); }},
      {"database.pool_size", false,
       [](N n, O o, K k, Config& c) { c.database_pool_size = integer(n, o, k, 1, 64); }},
      {"spool.dir", false,
       [](N n, O o, K k, Config& c) {
         c.spool_dir = scalar(n, o, k);
         if (c.spool_dir.empty()) fail(o, k, "must not be empty");
       }},
      {"spool.max_bytes", false,
       [](N n, O o, K k, Config& c) {
         c.spool_max_bytes = integer<std::uint64_t>(n, o, k, 1 << 20, std::uint64_t{1} << 44);
       }},
      {"spool.segment_bytes", false,
       [](N n, O o, K k, Config& c) {
         c.spool_segment_bytes = integer<std::uint64_t>(n, o, k, 64 << 10, std::uint64_t{1} << 32);
       }},
      {"spool.group_commit_us", false,
       [](N n, O o, K k, Config& c) { c.spool_group_commit_us = integer(n, o, k, 0, 100000); }},
      {"writer.batch_rows", false,
       [](N n, O o, K k, Config& c) {
         c.writer_batch_rows = integer<std::size_t>(n, o, k, 1, 1000000);
       }},
      {"writer.batch_interval_ms", false,
       [](N n, O o, K k, Config& c) { c.writer_batch_interval_ms = integer(n, o, k, 1, 60000); }},
      {"writer.max_backoff_ms", false,
       [](N n, O o, K k, Config& c) { c.writer_max_backoff_ms = integer(n, o, k, 10, 600000); }},
      {"compactor.enabled", false,
       [](N n, O o, K k, Config& c) { c.compactor_enabled = boolean(n, o, k); }},
      {"compactor.interval_ms", false,
       [](N n, O o, K k, Config& c) { c.compactor_interval_ms = integer(n, o, k, 10, 600000); }},
      {"compactor.batch_deltas", false,
       [](N n, O o, K k, Config& c) { c.compactor_batch_deltas = integer(n, o, k, 100, 1000000); }},
      {"capture.mode", false,
       [](N n, O o, K k, Config& c) { c.capture_mode = one_of(n, o, k, {"trigger", "logical"}); }},
      {"capture.slot", false,
       [](N n, O o, K k, Config& c) {
         c.capture_slot = scalar(n, o, k);
         const bool ok = !c.capture_slot.empty() && c.capture_slot.size() <= 63 &&
                         c.capture_slot.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789_") ==
                             std::string::npos;
         if (!ok) fail(o, k, "must be 1-63 lower-case letters, digits or underscores (a slot name)");
       }},
      {"capture.replication_url", false,
       [](N n, O o, K k, Config& c) { c.capture_replication_url = scalar_or_empty(n, o, k); }},
      {"capture.interval_ms", false,
       [](N n, O o, K k, Config& c) { c.capture_interval_ms = integer(n, o, k, 10, 60000); }},
      {"capture.batch_runs", false,
       [](N n, O o, K k, Config& c) {
         c.capture_batch_runs = integer<std::size_t>(n, o, k, 1, 100000);
       }},
      {"retention.days", false,
       [](N n, O o, K k, Config& c) { c.retention_days = integer(n, o, k, 0, 36500); }},
      {"tailer.enabled", false,
       [](N n, O o, K k, Config& c) { c.tail_enabled = boolean(n, o, k); }},
      {"ui.enabled", false, [](N n, O o, K k, Config& c) { c.ui_enabled = boolean(n, o, k); }},
      {"ui.dir", false, [](N n, O o, K k, Config& c) { c.ui_dir = scalar_or_empty(n, o, k); }},
      {"tailer.interval_ms", false,
       [](N n, O o, K k, Config& c) { c.tail_interval_ms = integer(n, o, k, 10, 600000); }},
      {"tailer.details_delay_ms", false,
       [](N n, O o, K k, Config& c) { c.tail_details_delay_ms = integer(n, o, k, 0, 3600000); }},
      {"statistics.request_timeout_ms", false,
       [](N n, O o, K k,
          Config& c) { c.statistics_request_timeout_ms = integer(n, o, k, 1, 600000); }},
      {"statistics.max_buckets", false,
       [](N n, O o, K k,
          Config& c) { c.statistics_max_buckets = integer<std::uint64_t>(n, o, k, 1, 1000000); }},
      {"statistics.max_rollup_rows", false,
       [](N n, O o, K k,
          Config&
              c) { c.statistics_max_rollup_rows = integer<std::uint64_t>(n, o, k, 1000, 100000000); }},
      {"statistics.max_in_flight_per_caller", false,
       [](N n, O o, K k,
          Config&
              c) { c.statistics_max_in_flight_per_caller = integer<std::size_t>(n, o, k, 1, 1024); }},
  };
  return kSettings;
}

const Setting* find_setting(const std::string& key) {
  for (const auto& s : settings()) {
    if (key == s.key) return &s;
  }
  return nullptr;
}

bool is_section(const std::string& prefix) {
  for (const auto& s : settings()) {
    if (std::string_view(s.key).starts_with(prefix + ".")) return true;
  }
  return false;
}

std::string where(const std::string& path, const YAML::Mark& mark) {
  return path + ":" + std::to_string(mark.line + 1);
}

void apply_mapping(const YAML::Node& map, const std::string& prefix, const std::string& path,
                   Config& config) {
  for (const auto& entry : map) {
    const std::string name = entry.first.Scalar();
    const std::string key = prefix.empty() ? name : prefix + "." + name;
    const Origin origin{where(path, entry.first.Mark())};
    if (const Setting* s = find_setting(key)) {
      Origin at{
          where(path, entry.second.Mark().line >= 0 ? entry.second.Mark() : entry.first.Mark())};
      s->set(entry.second, at, key, config);
      config.origins[key] = at.where;
    } else if (is_section(key)) {
      if (!entry.second.IsMap()) fail(origin, key, "must be a mapping of settings");
      apply_mapping(entry.second, key, path, config);
    } else {
      fail(origin, key, "unknown setting (see docs/config.md for the list)");
    }
  }
}

YAML::Node env_node(const Setting& s, const std::string& value) {
  if (!s.list) return YAML::Node(value);
  YAML::Node seq(YAML::NodeType::Sequence);
  std::size_t start = 0;
  while (start <= value.size()) {
    auto comma = value.find(',', start);
    if (comma == std::string::npos) comma = value.size();
    std::string item = value.substr(start, comma - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) seq.push_back(item);
    start = comma + 1;
  }
  return seq;
}

}  // namespace

std::string env_name(const std::string& key) {
  std::string out = "MESHHOOK_STATS_";
  for (char c : key) out += c == '.' ? '_' : static_cast<char>(std::toupper(c));
  return out;
}

std::vector<std::string> config_keys() {
  std::vector<std::string> out;
  for (const auto& s : settings()) out.emplace_back(s.key);
  return out;
}

Config load_config(const std::string& path, char** envp) {
  Config config;
  config.buckets = exporter::RunMetricsOptions::default_buckets();
  if (!path.empty()) {
    config.source = path;
    YAML::Node root;
    try {
      root = YAML::LoadFile(path);
    } catch (const YAML::BadFile&) {
      throw ConfigError(path + ": cannot read the file: " + std::strerror(errno));
    } catch (const YAML::ParserException& e) {
      throw ConfigError(where(path, e.mark) + ": not valid YAML: " + e.msg);
    }
    if (root.IsDefined() && !root.IsNull()) {
      if (!root.IsMap()) throw ConfigError(path + ":1: the file must be a mapping of settings");
      try {
        apply_mapping(root, "", path, config);
      } catch (const YAML::Exception& e) {
        throw ConfigError(where(path, e.mark) + ": " + e.msg);
      }
    }
  }
  for (char** e = envp; e && *e; ++e) {
    std::string_view entry(*e);
    if (!entry.starts_with("MESHHOOK_STATS_")) continue;
    const auto eq = entry.find('=');
    if (eq == std::string_view::npos) continue;
    const std::string name(entry.substr(0, eq));
    const std::string value(entry.substr(eq + 1));
    const Setting* match = nullptr;
    for (const auto& s : settings()) {
      if (env_name(s.key) == name) match = &s;
    }
    if (!match) {
      throw ConfigError("environment variable " + name +
                        ": unknown setting (see docs/config.md for the list)");
    }
    match->set(env_node(*match, value), Origin{"environment variable " + name}, match->key, config);
    config.origins[match->key] = "environment variable " + name;
  }
  // Settings that must agree with each other, named where the later one was set.
  for (const auto& [hash, projects] : config.ingest_token_projects) {
    if (std::find(config.ingest_token_sha256.begin(), config.ingest_token_sha256.end(), hash) ==
        config.ingest_token_sha256.end()) {
      fail(Origin{config.origins["ingest.token_projects"]}, "ingest.token_projects",
           "names a token that is not in ingest.token_sha256 (" + hash.substr(0, 12) + "...)");
    }
  }
  if (config.api.max_body_readers >= config.api.threads) {
    const auto at = config.origins.count("api.max_body_readers")
                        ? config.origins["api.max_body_readers"]
                    : config.origins.count("api.threads") ? config.origins["api.threads"]
                                                          : std::string("defaults");
    fail(Origin{at}, "api.max_body_readers",
         "must be less than api.threads (" + std::to_string(config.api.threads) +
             ") so requests without a body always find a worker");
  }
  return config;
}

}  // namespace meshhook::app
