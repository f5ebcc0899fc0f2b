#include "meshhook/bridge/statistics/request_deadline.h"

#include <pqxx/pqxx>
#include <string>

namespace meshhook::bridge {

std::string RequestDeadline::timeout_to_set(Clock::time_point now) const {
  const auto left = remaining(now);
  if (left.count() <= 0) throw RequestTimeout("the request's deadline passed");
  set_at_ = now;
  return std::to_string(left.count());
}

void RequestDeadline::limit(pqxx::transaction_base& tx) const {
  const auto now = Clock::now();
  if (remaining(now).count() <= 0) throw RequestTimeout("the request's deadline passed");
  if (set_at_ && now - *set_at_ < kSlack) return;
  static const std::string kName = "statistics_statement_timeout";
  tx.conn().prepare(kName, "select set_config('statement_timeout', $1, true)");
  tx.exec_prepared(kName, timeout_to_set(now));
}

}  // namespace meshhook::bridge
