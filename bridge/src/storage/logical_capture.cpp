#include "meshhook/bridge/storage/logical_capture.h"

#include <libpq-fe.h>
#include <poll.h>
#include <spdlog/spdlog.h>

#include <array>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <pqxx/pqxx>
#include <stdexcept>
#include <string_view>
#include <vector>

#include "detail/conninfo.h"
#include "detail/family_options.h"

namespace meshhook::bridge {
namespace {

using detail::family;
using Lsn = std::uint64_t;

constexpr const char* kStore = R"sql(
select stored, rejected
from meshhook_stats_store_captured_runs($1::text[], $2::text[], $3::text[], $4::text[],
                                        $5::text[], $6::text[]))sql";

constexpr const char* kSlot = R"sql(
select s.plugin, s.database, s.active_pid,
       coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), s.confirmed_flush_lsn), 0)::float8
from pg_replication_slots s where s.slot_name = $1)sql";

// The columns of workflow_runs the capture reads, in the order of Run's fields.
constexpr std::array<std::string_view, 6> kColumns = {"id",     "project_id", "workflow_id",
                                                      "status", "started_at", "finished_at"};

struct Run {
  std::array<std::optional<std::string>, 6> values;  // kColumns; nullopt = SQL null
};

// The rule of the capture trigger's WHEN clause (capture.sql): a terminal status with
// started_at and finished_at set. The trigger also skips updates that changed neither the
// status nor finished_at; the slot sends no old row to tell, so such a run is delivered again
// and on conflict (run_id) do nothing keeps its first row.
bool finished(const Run& r) {
  const auto& status = r.values[3];
  return r.values[0] && r.values[1] && r.values[2] && r.values[4] && r.values[5] && status &&
         (*status == "succeeded" || *status == "failed" || *status == "canceled");
}

std::string lsn_text(Lsn lsn) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%X/%X", static_cast<unsigned>(lsn >> 32),
                static_cast<unsigned>(lsn & 0xffffffffu));
  return buf;
}

Lsn parse_lsn(std::string_view text) {
  const auto slash = text.find('/');
  if (slash == std::string_view::npos) throw std::runtime_error("bad LSN " + std::string(text));
  return (std::stoull(std::string(text.substr(0, slash)), nullptr, 16) << 32) |
         std::stoull(std::string(text.substr(slash + 1)), nullptr, 16);
}

// Big-endian fields of the replication protocol and of pgoutput's messages.
class Bytes {
 public:
  explicit Bytes(std::string_view s) : s_(s) {}
  std::uint8_t u8() { return static_cast<std::uint8_t>(take(1)[0]); }
  std::uint64_t uint(std::size_t n) {
    std::uint64_t v = 0;
    for (char c : take(n)) v = (v << 8) | static_cast<std::uint8_t>(c);
    return v;
  }
  std::string_view cstring() {
    const auto end = s_.find('\0', pos_);
    if (end == std::string_view::npos) throw std::runtime_error("pgoutput: unterminated string");
    auto v = s_.substr(pos_, end - pos_);
    pos_ = end + 1;
    return v;
  }
  std::string_view take(std::size_t n) {
    if (s_.size() - pos_ < n) throw std::runtime_error("pgoutput: message cut short");
    auto v = s_.substr(pos_, n);
    pos_ += n;
    return v;
  }

 private:
  std::string_view s_;
  std::size_t pos_ = 0;
};

// pgoutput, protocol version 1, text values: the transactions the slot sends, reduced to the
// finished runs of each committed one and the LSN up to which everything was received.
class Decoder {
 public:
  void message(std::string_view payload) {
    Bytes b(payload);
    switch (b.u8()) {
      case 'B':
        in_tx_ = true;
        tx_runs_.clear();
        break;
      case 'C': {
        b.u8();                     // flags
        b.uint(8);                  // the commit record's LSN
        const Lsn end = b.uint(8);  // the end of the commit: where a reader resumes
        for (auto& r : tx_runs_) pending_.push_back(std::move(r));
        tx_runs_.clear();
        in_tx_ = false;
        received_ = std::max(received_, end);
        break;
      }
      case 'R':
        relation(b);
        break;
      case 'I':
        row(b, b.uint(4));
        break;
      case 'U': {
        const auto oid = static_cast<std::uint32_t>(b.uint(4));
        auto kind = b.u8();
        if (kind == 'K' || kind == 'O') {  // the old key or row, then the new row
          skip_tuple(b);
          kind = b.u8();
        }
        if (kind != 'N') throw std::runtime_error("pgoutput: update without a new row");
        tuple(b, oid);
        break;
      }
      default:
        break;  // deletes, truncates, types, origins: nothing a run's finish needs
    }
  }

  /// The server has sent everything before walend (a keepalive): outside a transaction, all of
  /// it is received.
  void sent_up_to(Lsn walend) {
    if (!in_tx_) received_ = std::max(received_, walend);
  }

  bool in_transaction() const { return in_tx_; }
  Lsn received() const { return received_; }
  std::vector<Run>& pending() { return pending_; }
  std::size_t delivered = 0;

 private:
  struct Relation {
    bool runs = false;
    std::vector<int> field;  // column number -> index into kColumns, or -1
  };

  void relation(Bytes& b) {
    const auto oid = static_cast<std::uint32_t>(b.uint(4));
    b.cstring();  // namespace: the publication names the table
    Relation rel;
    rel.runs = b.cstring() == "workflow_runs";
    b.u8();  // replica identity
    const auto columns = b.uint(2);
    for (std::uint64_t i = 0; i < columns; ++i) {
      b.u8();  // flags
      const auto name = b.cstring();
      b.uint(4);  // type
      b.uint(4);  // typmod
      int index = -1;
      for (std::size_t k = 0; k < kColumns.size(); ++k) {
        if (kColumns[k] == name) index = static_cast<int>(k);
      }
      rel.field.push_back(index);
    }
    relations_[oid] = std::move(rel);
  }

  void row(Bytes& b, std::uint64_t oid) {
    if (b.u8() != 'N') throw std::runtime_error("pgoutput: insert without a new row");
    tuple(b, static_cast<std::uint32_t>(oid));
  }

  static void skip_tuple(Bytes& b) {
    const auto n = b.uint(2);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto kind = b.u8();
      if (kind == 't' || kind == 'b') b.take(b.uint(4));
    }
  }

  void tuple(Bytes& b, std::uint32_t oid) {
    const auto it = relations_.find(oid);
    if (it == relations_.end()) throw std::runtime_error("pgoutput: row of an unknown relation");
    const Relation& rel = it->second;
    Run run;
    const auto n = b.uint(2);
    for (std::uint64_t i = 0; i < n; ++i) {
      const auto kind = b.u8();
      std::optional<std::string> value;
      if (kind == 't' || kind == 'b') value = std::string(b.take(b.uint(4)));
      // 'n' null, 'u' an unchanged TOASTed value: none of our columns is ever TOASTed.
      if (i < rel.field.size() && rel.field[i] >= 0) run.values[rel.field[i]] = std::move(value);
    }
    if (rel.runs && finished(run)) {
      ++delivered;
      tx_runs_.push_back(std::move(run));
    }
  }

  std::map<std::uint32_t, Relation> relations_;
  bool in_tx_ = false;
  std::vector<Run> tx_runs_;
  std::vector<Run> pending_;
  Lsn received_ = 0;
};

// The replication connection reading the slot (libpq: libpqxx has no replication mode).
class SlotStream {
 public:
  SlotStream(const std::string& url, const std::string& slot, const std::string& publication,
             Lsn start) {
    // Values in ISO with an offset, whatever the role's defaults, so that they parse as the
    // same instants in meshhook_stats_store_captured_runs.
    const char* keys[] = {"dbname",          "replication",      "options",
                          "connect_timeout", "application_name", nullptr};
    const char* values[] = {url.c_str(),
                            "database",
                            "-c datestyle=ISO -c timezone=UTC",
                            "5",
                            "meshhook-stats-capture-slot",
                            nullptr};
    conn_ = PQconnectdbParams(keys, values, 1);
    if (PQstatus(conn_) != CONNECTION_OK) fail("cannot open a replication connection");
    const std::string command = "START_REPLICATION SLOT " + quote_ident(slot) + " LOGICAL " +
                                lsn_text(start) + " (proto_version '1', publication_names " +
                                quote_literal(quote_ident(publication)) + ")";
    PGresult* r = PQexec(conn_, command.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COPY_BOTH;
    PQclear(r);
    if (!ok) fail("cannot read replication slot " + slot);
  }
  ~SlotStream() { PQfinish(conn_); }
  SlotStream(const SlotStream&) = delete;
  SlotStream& operator=(const SlotStream&) = delete;

  /// The next message of the copy stream, waiting up to timeout; nullopt when none came.
  std::optional<std::string> next(std::chrono::milliseconds timeout) {
    for (bool waited = false;; waited = true) {
      char* buf = nullptr;
      const int n = PQgetCopyData(conn_, &buf, 1);
      if (n > 0) {
        std::string msg(buf, static_cast<std::size_t>(n));
        PQfreemem(buf);
        return msg;
      }
      if (n == -1) fail("the server ended the replication stream");
      if (n < -1) fail("replication stream");
      if (waited) return std::nullopt;
      pollfd p{PQsocket(conn_), POLLIN, 0};
      if (::poll(&p, 1, static_cast<int>(timeout.count())) < 0) fail("poll");
      if (PQconsumeInput(conn_) == 0) fail("replication stream");
    }
  }

  /// Standby status update: everything up to `flushed` is stored; `reply` asks for a keepalive.
  void status(Lsn flushed, bool reply) {
    char msg[34];
    msg[0] = 'r';
    put(msg + 1, flushed);
    put(msg + 9, flushed);
    put(msg + 17, flushed);
    const auto now = std::chrono::duration_cast<std::chrono::microseconds>(
                         std::chrono::system_clock::now().time_since_epoch())
                         .count() -
                     946684800000000LL;  // since 2000-01-01, Postgres's epoch
    put(msg + 25, static_cast<std::uint64_t>(now));
    msg[33] = reply ? 1 : 0;
    if (PQputCopyData(conn_, msg, sizeof msg) != 1 || PQflush(conn_) != 0) fail("status update");
  }

  /// Ends the stream, so that the server has read every status update before the session ends.
  void finish() {
    if (PQputCopyEnd(conn_, nullptr) != 1 || PQflush(conn_) != 0) return;
    for (int i = 0; i < 1000; ++i) {
      char* buf = nullptr;
      const int n = PQgetCopyData(conn_, &buf, 0);
      if (buf != nullptr) PQfreemem(buf);
      if (n < 0) break;
    }
    while (PGresult* r = PQgetResult(conn_)) PQclear(r);
  }

 private:
  static void put(char* at, std::uint64_t v) {
    for (int i = 7; i >= 0; --i, v >>= 8) at[i] = static_cast<char>(v & 0xff);
  }
  static std::string quote_ident(const std::string& s) {
    std::string out = "\"";
    for (char c : s) out += c == '"' ? std::string("\"\"") : std::string(1, c);
    return out + "\"";
  }
  static std::string quote_literal(const std::string& s) {
    std::string out = "'";
    for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
    return out + "'";
  }
  [[noreturn]] void fail(const std::string& what) {
    std::string error = PQerrorMessage(conn_);
    while (!error.empty() && (error.back() == '\n' || error.back() == ' ')) error.pop_back();
    throw std::runtime_error("capture: " + what + ": " + error);
  }

  PGconn* conn_ = nullptr;
};

// Refuses to start with an error naming the fix. Returns the slot's lag in bytes.
double check_slot(pqxx::connection& db, const LogicalCaptureOptions& o) {
  pqxx::read_transaction tx(db);
  const auto wal_level = tx.exec1("show wal_level")[0].as<std::string>();
  if (wal_level != "logical") {
    throw std::runtime_error(
        "capture: wal_level is " + wal_level +
        ", capture.mode logical needs wal_level = logical (ALTER SYSTEM SET wal_level = "
        "logical, then restart Postgres), or set capture.mode: trigger");
  }
  const auto slot = tx.exec_params(kSlot, o.slot);
  if (slot.empty()) {
    throw std::runtime_error("capture: replication slot " + o.slot +
                             " does not exist: install it with "
                             "sql/integrations/meshhook/capture_logical.sql (docs/meshhook.md), "
                             "or set capture.slot to the one it created");
  }
  const auto db_name = tx.exec1("select current_database()")[0].as<std::string>();
  if (slot[0][0].as<std::string>("") != "pgoutput" || slot[0][1].as<std::string>("") != db_name) {
    throw std::runtime_error("capture: replication slot " + o.slot + " is not a pgoutput slot of " +
                             "database " + db_name + ": capture_logical.sql creates the right one");
  }
  if (tx.exec_params("select 1 from pg_publication where pubname = $1", o.publication).empty()) {
    throw std::runtime_error("capture: publication " + o.publication +
                             " does not exist: run sql/integrations/meshhook/capture_logical.sql");
  }
  return slot[0][3].as<double>();
}

std::string array_literal(const std::vector<Run>& runs, std::size_t column) {
  std::string out = "{";
  for (const auto& r : runs) {
    if (out.size() > 1) out += ',';
    const auto& v = r.values[column];
    if (!v) {
      out += "NULL";
      continue;
    }
    out += '"';
    for (char c : *v) {
      if (c == '"' || c == '\\') out += '\\';
      out += c;
    }
    out += '"';
  }
  return out + "}";
}

LogicalCaptureRound store(pqxx::connection& db, const std::vector<Run>& runs) {
  LogicalCaptureRound round;
  if (runs.empty()) return round;
  pqxx::work tx(db);
  const auto row = tx.exec_params1(kStore, array_literal(runs, 0), array_literal(runs, 1),
                                   array_literal(runs, 2), array_literal(runs, 3),
                                   array_literal(runs, 4), array_literal(runs, 5));
  tx.commit();
  round.stored = row[0].as<std::size_t>();
  round.rejected = row[1].as<std::size_t>();
  return round;
}

// A stream with its decoder: what is received, stored and confirmed.
struct Reader {
  SlotStream stream;
  Decoder decoder;
  Lsn confirmed = 0;

  Reader(const LogicalCaptureOptions& o)
      : stream(o.replication_url.empty() ? o.database_url : o.replication_url, o.slot,
               o.publication, 0) {}

  /// Handles one message of the copy stream.
  void handle(const std::string& msg) {
    if (msg.empty()) return;
    Bytes b(msg);
    const auto kind = b.u8();
    if (kind == 'w') {
      b.uint(8);  // start
      b.uint(8);  // the server's end of WAL: not ours to confirm mid-transaction
      b.uint(8);  // send time
      decoder.message(msg.substr(25));
    } else if (kind == 'k') {
      const Lsn walend = b.uint(8);
      b.uint(8);
      const bool reply = b.u8() != 0;
      decoder.sent_up_to(walend);
      if (reply) stream.status(confirmed, false);
    }
  }

  /// Stores what is pending, then confirms it to the slot (when confirm).
  LogicalCaptureRound flush(pqxx::connection& db, bool confirm) {
    auto& pending = decoder.pending();
    const Lsn upto = decoder.received();
    auto round = store(db, pending);
    round.delivered = pending.size();
    pending.clear();
    if (confirm && upto > confirmed) {
      confirmed = upto;
      stream.status(confirmed, false);
    }
    return round;
  }
};

}  // namespace

struct LogicalCapture::Metrics {
  static constexpr std::span<const std::string_view> kNoLabels{};
  exporter::Counter& stored;
  exporter::Counter& rejected;
  exporter::Counter& errors;
  exporter::Gauge& lag;
  exporter::Gauge& active;

  explicit Metrics(exporter::Registry& r)
      : stored(r.add_counter(family("meshhook_stats_capture_runs_total",
                                    "Finished runs the logical capture stored (new rows in "
                                    "execution_time_statistics)."))
                   .with(kNoLabels)),
        rejected(r.add_counter(family("meshhook_stats_capture_rejected_total",
                                      "Runs the logical capture read that Postgres refused "
                                      "(kept in execution_time_rejected_runs)."))
                     .with(kNoLabels)),
        errors(r.add_counter(family("meshhook_stats_capture_errors_total",
                                    "Errors of the logical capture (each one ends the session; "
                                    "it starts over from the slot's confirmed position)."))
                   .with(kNoLabels)),
        lag(r.add_gauge(family("meshhook_stats_capture_slot_lag_bytes",
                               "WAL the server keeps for the capture's replication slot: from "
                               "the slot's confirmed position to the server's current one.",
                               "bytes"))
                .with(kNoLabels)),
        active(r.add_gauge(family("meshhook_stats_capture_active",
                                  "1 when this replica reads the capture's replication slot."))
                   .with(kNoLabels)) {}
};

LogicalCapture::LogicalCapture(LogicalCaptureOptions options, exporter::Registry& registry)
    : options_(std::move(options)), metrics_(std::make_unique<Metrics>(registry)) {}

LogicalCapture::~LogicalCapture() { stop(); }

void LogicalCapture::start() {
  std::lock_guard lock(mutex_);
  if (thread_.joinable()) return;
  stopping_ = false;
  thread_ = std::thread([this] { run(); });
}

void LogicalCapture::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!thread_.joinable()) return;
    stopping_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool LogicalCapture::sleep_for(std::chrono::milliseconds d) {
  std::unique_lock lock(mutex_);
  return !cv_.wait_for(lock, d, [&] { return stopping_; });
}

LogicalCaptureRound LogicalCapture::capture_once(const LogicalCaptureOptions& options,
                                                 bool confirm) {
  pqxx::connection db(detail::with_connect_timeout(options.database_url));
  check_slot(db, options);
  Lsn target = 0;
  {
    pqxx::read_transaction tx(db);
    target = parse_lsn(tx.exec1("select pg_current_wal_flush_lsn()::text")[0].as<std::string>());
  }
  Reader reader(options);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  reader.stream.status(0, true);
  while (reader.decoder.in_transaction() || reader.decoder.received() < target) {
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("capture: the slot did not reach " + lsn_text(target) +
                               " within 60 s");
    }
    if (auto msg = reader.stream.next(std::chrono::milliseconds(100))) {
      reader.handle(*msg);
    } else {
      reader.stream.status(reader.confirmed, true);  // asks where the server is
    }
  }
  LogicalCaptureRound round = reader.flush(db, confirm);
  round.delivered = reader.decoder.delivered;
  reader.stream.finish();
  return round;
}

void LogicalCapture::account(const LogicalCaptureRound& round, std::uint64_t confirmed) {
  stored_ += round.stored;
  metrics_->stored.inc(static_cast<double>(round.stored));
  if (round.rejected > 0) {
    metrics_->rejected.inc(static_cast<double>(round.rejected));
    spdlog::warn(
        "capture: Postgres refused {} run(s); they are in execution_time_rejected_runs with the "
        "reason",
        round.rejected);
  }
  if (round.delivered > 0) {
    spdlog::debug("capture: stored {} of {} run(s) read, slot confirmed up to {}", round.stored,
                  round.delivered, lsn_text(confirmed));
  }
}

void LogicalCapture::pause_until(std::chrono::steady_clock::time_point until,
                                 const std::function<void()>& feedback) {
  for (;;) {
    const auto left = until - std::chrono::steady_clock::now();
    if (left <= std::chrono::steady_clock::duration::zero()) return;
    if (!sleep_for(std::min(std::chrono::ceil<std::chrono::milliseconds>(left), kFeedbackEvery))) {
      return;  // stopping
    }
    if (std::chrono::steady_clock::now() < until) feedback();
  }
}

void LogicalCapture::run() {
  std::unique_ptr<pqxx::connection> db;
  std::unique_ptr<Reader> reader;
  std::string last_error;
  auto next_lag = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::lock_guard lock(mutex_);
      if (stopping_) break;
    }
    const auto round_start = std::chrono::steady_clock::now();
    try {
      if (!db) {
        db = std::make_unique<pqxx::connection>(detail::with_application_name(
            detail::with_connect_timeout(options_.database_url), "meshhook-stats-capture"));
      }
      if (!reader) {
        // A session lock on this connection: held until the session ends, so a crashed
        // replica hands over as soon as Postgres notices.
        pqxx::nontransaction tx(*db);
        if (!tx.exec_params1("select pg_try_advisory_lock($1)", kLockKey)[0].as<bool>()) {
          tx.commit();
          metrics_->lag.set(0);  // the active replica reports it; a stale figure would alert
          sleep_for(options_.retry);
          continue;
        }
        tx.commit();
        metrics_->lag.set(check_slot(*db, options_));
        reader = std::make_unique<Reader>(options_);
        active_ = true;
        metrics_->active.set(1);
        spdlog::info("capture: active, reading replication slot {} (publication {})", options_.slot,
                     options_.publication);
        last_error.clear();
      }
      // One round: what the WAL sender sent since the last one, read in one go (the sockets
      // hold seconds of the stream), stored and confirmed slice by slice. Between rounds
      // nobody reads the stream: the daemon is not woken at every commit of the server.
      for (bool drained = false; !drained;) {
        while (reader->decoder.pending().size() < options_.batch_runs) {
          auto msg = reader->stream.next(std::chrono::milliseconds(0));
          if (!msg) {
            drained = true;
            break;
          }
          reader->handle(*msg);
        }
        account(reader->flush(*db, true), reader->confirmed);
        // After each slice, not each round: a capture that cannot keep up never drains its
        // round, and that is when the lag gauge (and its alert) must move.
        if (std::chrono::steady_clock::now() >= next_lag) {
          next_lag = std::chrono::steady_clock::now() + options_.lag_refresh;
          metrics_->lag.set(check_slot(*db, options_));
        }
        std::lock_guard lock(mutex_);
        if (stopping_) break;
      }
      // Until the next round the stream stays unread. The server ends a stream it hears
      // nothing from for wal_sender_timeout (60 s by default; capture.interval_ms may be as
      // long): a status update every kFeedbackEvery keeps it.
      pause_until(round_start + options_.interval,
                  [&] { reader->stream.status(reader->confirmed, false); });
    } catch (const std::exception& e) {
      // Everything not confirmed is delivered again by the next session: nothing is lost, and
      // what was stored already is kept once.
      const std::string error = std::string(e.what()).substr(0, 400);
      if (error != last_error) spdlog::error("{}", error);
      last_error = error;
      metrics_->errors.inc();
      metrics_->active.set(0);
      if (active_) spdlog::info("capture: standing by; the slot resumes where it was confirmed");
      active_ = false;
      reader.reset();
      db.reset();  // ends the session, and with it the lock
      sleep_for(options_.retry);
    }
  }
  if (reader && db) {
    try {
      account(reader->flush(*db, true), reader->confirmed);
      reader->stream.finish();
    } catch (const std::exception& e) {
      spdlog::warn("capture: while stopping: {}", std::string(e.what()).substr(0, 300));
    }
  }
  active_ = false;
  metrics_->active.set(0);
}

}  // namespace meshhook::bridge
