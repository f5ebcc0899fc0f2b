#include "meshhook/bridge/storage/compactor.h"

#include <spdlog/spdlog.h>

#include <map>
#include <pqxx/pqxx>

#include "detail/conninfo.h"
#include "detail/family_options.h"

namespace meshhook::bridge {
namespace {

constexpr const char* kCompact =
    "select folded, coalesce(oldest_age_seconds, 0) from meshhook_stats_compact($1)";
constexpr const char* kRejected =
    "select source, count(*) from execution_time_rejected_runs group by source";

using detail::family;

}  // namespace

struct Compactor::Metrics {
  static constexpr std::span<const std::string_view> kNoLabels{};
  exporter::Counter& folded;
  exporter::Histogram& lag;
  exporter::Gauge& active;
  exporter::GaugeFamily& rejected;

  explicit Metrics(exporter::Registry& r)
      : folded(r.add_counter(family("meshhook_stats_compaction_deltas_total",
                                    "Rollup deltas folded into the compacted rollups."))
                   .with(kNoLabels)),
        lag(r.add_histogram(family("meshhook_stats_compaction_lag_seconds",
                                   "Age of the oldest delta folded by each compaction round "
                                   "(from its insert to its fold).",
                                   "seconds"),
                            {0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300})
                .with(kNoLabels)),
        active(r.add_gauge(family("meshhook_stats_compactor_active",
                                  "1 when this replica's last compaction round held the lock."))
                   .with(kNoLabels)),
        rejected(r.add_gauge(family("meshhook_stats_rejected_runs",
                                    "Runs kept in execution_time_rejected_runs (dead letters), "
                                    "by the path that refused them (ingest, capture, backfill).",
                                    "", {"source"}))) {}
};

Compactor::Compactor(CompactorOptions options, exporter::Registry& registry)
    : options_(std::move(options)), metrics_(std::make_unique<Metrics>(registry)) {}

Compactor::~Compactor() { stop(); }

void Compactor::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void Compactor::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool Compactor::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, d, [&] { return stopping_; });
}

int Compactor::compact_once(const std::string& database_url, int max_deltas) {
  pqxx::connection conn(detail::with_connect_timeout(database_url));
  pqxx::work tx(conn);
  auto row = tx.exec_params1(kCompact, max_deltas);
  tx.commit();
  return row[0].as<int>();
}

void Compactor::run() {
  std::unique_ptr<pqxx::connection> conn;
  auto next_rejected = std::chrono::steady_clock::now();
  bool warned = false;
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    auto pause = options_.interval;
    try {
      if (!conn) {
        conn =
            std::make_unique<pqxx::connection>(detail::with_connect_timeout(options_.database_url));
        conn->prepare("meshhook_stats_compact", kCompact);
      }
      int folded = 0;
      double oldest = 0;
      {
        pqxx::work tx(*conn);
        auto row = tx.exec_prepared1("meshhook_stats_compact", options_.batch_deltas);
        tx.commit();
        folded = row[0].as<int>();
        oldest = row[1].as<double>();
      }
      metrics_->active.set(folded >= 0 ? 1 : 0);
      if (folded > 0) {
        folded_ += static_cast<std::uint64_t>(folded);
        metrics_->folded.inc(static_cast<double>(folded));
        metrics_->lag.observe(oldest);
        if (folded >= options_.batch_deltas) pause = std::chrono::milliseconds(0);
      }
      if (std::chrono::steady_clock::now() >= next_rejected) {
        next_rejected = std::chrono::steady_clock::now() + options_.rejected_refresh;
        pqxx::read_transaction tx(*conn);
        for (const auto& row : tx.exec(kRejected)) {
          const std::string source = row[0].c_str();
          const std::string_view labels[] = {source};
          metrics_->rejected.with(labels).set(row[1].as<double>());
        }
      }
      warned = false;
    } catch (const std::exception& e) {
      // The next round starts over on a fresh session; nothing folded is lost (the round's
      // transaction rolled back with its deletes).
      if (!warned) spdlog::warn("compaction: {}", std::string(e.what()).substr(0, 300));
      warned = true;
      conn.reset();
      metrics_->active.set(0);
      pause = std::chrono::milliseconds(1000);
    }
    if (pause.count() > 0 && !sleep_for(pause)) break;
  }
}

}  // namespace meshhook::bridge
