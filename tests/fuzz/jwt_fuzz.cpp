// libFuzzer: the bearer token path of the statistics API. The first byte picks what the rest
// is: a raw token (header, signature and base64 handling), or a claims payload that is signed
// here with the configured secret, so the fuzzer reaches the claim checks behind the signature.
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "meshhook/bridge/claims_resolver.h"

namespace {

const std::string kSecret = "fuzz-secret-fuzz-secret-fuzz-secret-0123";

std::string b64url(std::string_view in) {
  static const char* a = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
  std::string out;
  std::uint32_t acc = 0;
  int bits = 0;
  for (unsigned char c : in) {
    acc = (acc << 8) | c;
    bits += 8;
    while (bits >= 6) {
      bits -= 6;
      out.push_back(a[(acc >> bits) & 63]);
    }
  }
  if (bits > 0) out.push_back(a[(acc << (6 - bits)) & 63]);
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  using namespace meshhook::bridge;
  static const ClaimsResolver resolver(ClaimsResolverOptions{
      JwtOptions{.algorithm = JwtAlgorithm::hs256, .key = kSecret, .audience = "authenticated"},
      "app_metadata.project_ids"});
  if (size == 0) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  std::string token;
  if (data[0] & 1) {
    const std::string input = b64url(R"({"alg":"HS256","typ":"JWT"})") + "." + b64url(rest);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(EVP_sha256(), kSecret.data(), static_cast<int>(kSecret.size()),
         reinterpret_cast<const unsigned char*>(input.data()), input.size(), mac, &len);
    token = input + "." + b64url(std::string_view(reinterpret_cast<char*>(mac), len));
  } else {
    token.assign(rest);
  }
  const auto r = resolver.resolve_token(token, 1'700'000'000);
  if (!r.ok() && r.error.status != 401) __builtin_trap();
  if (r.ok() && r.claims->claims_json.empty()) __builtin_trap();
  return 0;
}
