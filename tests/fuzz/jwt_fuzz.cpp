// libFuzzer: the bearer token path of the statistics API. The first byte picks what the rest
// is: a raw token (header, signature and base64 handling), or a claims payload that is signed
// here with the configured secret, so the fuzzer reaches the claim checks behind the signature.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "../support/jwt_signing.h"
#include "meshhook/bridge/auth/claims_resolver.h"

namespace {

using meshhook::testing::b64url;
using meshhook::testing::hs256;

const std::string kSecret = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshhook::bridge;
  static const ClaimsResolver resolver(ClaimsResolverOptions{
      .jwt =
          JwtOptions{.algorithm = JwtAlgorithm::hs256, .key = kSecret, .audience = "authenticated"},
      .project_ids_claim = "app_metadata.project_ids",
      .allowed_roles = {"authenticated"}});
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  if (data[0] & 1) {
    const std::string input = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(rest);
    token = input + "." + b64url(hs256(kSecret, input));
  } else {
    token.assign(rest);
  }
  const auto r = resolver.resolve_token(token, 1'700'000'000);
  // 401 for a token that does not verify or whose claims are malformed, 403 for a valid one
  // whose role may not read statistics (auth.allowed_roles); nothing else.
  if (!r.ok() && r.error.status != 401 && r.error.status != 403) __builtin_trap();
  if (!r.ok() && r.error.status == 403 &&
      r.error.body.find("forbidden_role") == std::string::npos) {
    __builtin_trap();
  }
  if (r.ok() && r.claims->claims_json.empty()) __builtin_trap();
  return 0;
}
