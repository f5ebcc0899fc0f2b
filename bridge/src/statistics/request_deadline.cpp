#include "meshhook/bridge/statistics/request_deadline.h"

#include <pqxx/pqxx>
#include <string>

namespace meshhook::bridge {

void RequestDeadline::limit(pqxx::transaction_base& tx) const {
  const auto left = remaining();
  if (left.count() <= 0) throw RequestTimeout("the request's deadline passed");
  static const std::string kName = "statistics_statement_timeout";
  tx.conn().prepare(kName, "select set_config('statement_timeout', $1, true)");
  tx.exec_prepared(kName, std::to_string(left.count()));
}

}  // namespace meshhook::bridge
