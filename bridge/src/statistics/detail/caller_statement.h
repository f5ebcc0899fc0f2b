#pragma once
// How a statistics statement runs. Without a caller (StatisticsQueryLimits::caller unset):
// as a prepared statement in the transaction the code was given, after the deadline's
// statement_timeout. With a caller: as one simple-protocol message,
//   execute statistics_as_caller(claims, subject, timeout); execute <statement>(<values>)
// which Postgres runs as one implicit transaction: the first statement takes on the caller's
// claims, the reader role, read-only and the time left, for that transaction only, and the
// second reads as them. One round trip a statement, where BEGIN, the caller's settings, the
// statement and COMMIT took four; and no statement can run as the daemon's login (who sees
// every tenant) by forgetting to set the caller first, since each one carries the settings.
// Private to bridge/statistics.

#include <concepts>
#include <cstddef>
#include <optional>
#include <pqxx/pqxx>
#include <string>

#include "meshhook/bridge/statistics/request_deadline.h"
#include "meshhook/bridge/statistics/statistics_query.h"

namespace meshhook::bridge::detail {

/// Makes the transaction the caller's: claims for row level security (auth.uid() and the
/// policies read request.jwt.claims), the deadline's statement_timeout (null: unchanged),
/// read-only, and the reader role. The role is unconditional: serve needs the current schema,
/// which has the role (migration 0004), and without it the query must fail rather than run as
/// the owner.
inline constexpr const char* kAsCallerName = "statistics_as_caller";
inline constexpr const char* kAsCallerSql =
    "select set_config('request.jwt.claims', $1, true),"
    " set_config('request.jwt.claim.sub', $2, true),"
    " set_config('statement_timeout', coalesce($3, current_setting('statement_timeout')), true),"
    " set_config('transaction_read_only', 'on', true),"
    " set_config('role', 'meshhook_stats_reader', true)";

/// A statement parameter as an SQL literal: strings quoted by libpq (the connection's
/// escaping rules), null pointers as null, integers as they are.
inline std::string sql_literal(pqxx::transaction_base& tx, const char* v) {
  return v ? tx.quote(std::string(v)) : std::string("null");
}
inline std::string sql_literal(pqxx::transaction_base& tx, const std::string& v) {
  return tx.quote(v);
}
template <std::integral T>
std::string sql_literal(pqxx::transaction_base&, T v) {
  return std::to_string(v);
}

/// "execute name(v1, v2, ...)" of values; the statement must be registered with the server.
template <typename... Args>
std::string execute_sql(pqxx::transaction_base& tx, const std::string& name, const Args&... args) {
  std::string sql = "execute " + name;  // our own names: letters, digits, underscores
  if constexpr (sizeof...(Args) > 0) {
    sql += '(';
    std::size_t i = 0;
    ((sql += (i++ ? ", " : ""), sql += sql_literal(tx, args)), ...);
    sql += ')';
  }
  return sql;
}

/// Runs statement `name` (text `text`) with args, as the header says.
template <typename... Args>
pqxx::result run_statement(pqxx::transaction_base& tx, const StatisticsQueryLimits& limits,
                           const std::string& name, const std::string& text, const Args&... args) {
  auto& conn = tx.conn();
  conn.prepare(name, text);  // a no-op once it is
  if (!limits.caller) {
    if (limits.deadline) limits.deadline->limit(tx);
    return tx.exec_prepared(name, args...);
  }
  // Registered with the server (a round trip the first time on this connection only), so
  // that EXECUTE finds them.
  conn.prepare(kAsCallerName, kAsCallerSql);
  conn.prepare_now(kAsCallerName);
  conn.prepare_now(name);
  std::optional<std::string> timeout;
  if (limits.deadline) timeout = limits.deadline->timeout_to_set();
  const char* timeout_ms = timeout ? timeout->c_str() : nullptr;
  const std::string sql = execute_sql(tx, kAsCallerName, limits.caller->claims_json,
                                      limits.caller->subject, timeout_ms) +
                          "; " + execute_sql(tx, name, args...);
  return tx.exec(sql);
}

}  // namespace meshhook::bridge::detail
