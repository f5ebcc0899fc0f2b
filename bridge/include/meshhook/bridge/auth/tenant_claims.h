#pragma once
// Who is asking: the verified claims of the caller's token, handed to the query side, which
// runs every request as that caller (request.jwt.claims, row level security).

#include <string>

namespace meshhook::bridge {

struct TenantClaims {
  std::string subject;
  std::string claims_json;
};

}  // namespace meshhook::bridge
