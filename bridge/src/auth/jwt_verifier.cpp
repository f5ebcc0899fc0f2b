#include "meshhook/bridge/auth/jwt_verifier.h"

#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include <array>
#include <memory>
#include <nlohmann/json.hpp>
#include <stdexcept>

#include "meshhook/bridge/common/base64url.h"

namespace meshhook::bridge {
namespace {

using nlohmann::json;

constexpr std::size_t kMinSecretBytes = 32;  // RFC 7518 3.2: at least the hash size

std::optional<json> decode_object(std::string_view segment) {
  auto text = base64url_decode(segment);
  if (!text) return std::nullopt;
  json j = json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return std::nullopt;
  return j;
}

jwt_alg_t libjwt_alg(JwtAlgorithm a) {
  switch (a) {
    case JwtAlgorithm::hs256:
      return JWT_ALG_HS256;
    case JwtAlgorithm::rs256:
      return JWT_ALG_RS256;
    case JwtAlgorithm::es256:
      return JWT_ALG_ES256;
  }
  return JWT_ALG_INVAL;
}

void check_public_key(JwtAlgorithm algorithm, const std::string& pem) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())), &BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr, &EVP_PKEY_free);
  const std::string name(to_string(algorithm));
  if (!key) {
    throw std::invalid_argument(name + " needs a PEM public key (-----BEGIN PUBLIC KEY-----)");
  }
  if (algorithm == JwtAlgorithm::rs256) {
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_RSA) {
      throw std::invalid_argument("RS256 needs an RSA public key");
    }
    if (EVP_PKEY_get_bits(key.get()) < 2048) {
      throw std::invalid_argument("RS256 needs an RSA key of at least 2048 bits");
    }
  } else {
    char group[64] = {};
    std::size_t len = 0;
    if (EVP_PKEY_get_base_id(key.get()) != EVP_PKEY_EC ||
        EVP_PKEY_get_group_name(key.get(), group, sizeof group, &len) != 1 ||
        (std::string_view(group) != "prime256v1" && std::string_view(group) != "P-256")) {
      throw std::invalid_argument("ES256 needs an EC public key on curve P-256");
    }
  }
}

JwtVerification fail(std::string reason) { return {std::nullopt, std::move(reason)}; }

bool is_number(const json& j) { return j.is_number() && !j.is_boolean(); }

}  // namespace

std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name) noexcept {
  if (name == "HS256") return JwtAlgorithm::hs256;
  if (name == "RS256") return JwtAlgorithm::rs256;
  if (name == "ES256") return JwtAlgorithm::es256;
  return std::nullopt;
}

std::string_view to_string(JwtAlgorithm algorithm) noexcept {
  switch (algorithm) {
    case JwtAlgorithm::hs256:
      return "HS256";
    case JwtAlgorithm::rs256:
      return "RS256";
    case JwtAlgorithm::es256:
      return "ES256";
  }
  return "?";
}

JwtVerifier::JwtVerifier(JwtOptions options) : options_(std::move(options)) {
  if (options_.algorithm == JwtAlgorithm::hs256) {
    if (options_.key.size() < kMinSecretBytes) {
      throw std::invalid_argument("the HS256 secret must be at least 32 bytes");
    }
  } else {
    check_public_key(options_.algorithm, options_.key);
  }
  if (options_.leeway < std::chrono::seconds(0) || options_.leeway > std::chrono::minutes(10)) {
    throw std::invalid_argument("the leeway must be from 0 to 600 seconds");
  }
}

JwtVerification JwtVerifier::verify(std::string_view token) const noexcept {
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return verify(token, static_cast<std::int64_t>(now));
}

JwtVerification JwtVerifier::verify(std::string_view token, std::int64_t now_unix) const noexcept {
  try {
    if (token.empty()) return fail("no token");
    if (token.size() > options_.max_token_bytes) return fail("the token is too long");
    const auto dot1 = token.find('.');
    const auto dot2 = dot1 == std::string_view::npos ? dot1 : token.find('.', dot1 + 1);
    if (dot2 == std::string_view::npos || token.find('.', dot2 + 1) != std::string_view::npos) {
      return fail("the token is not a JWT (header.payload.signature)");
    }
    // The header is read before any signature check, only to refuse what must never be
    // verified: alg "none", another algorithm than the configured one (HS256 signed with an
    // RS256 public key as its secret is the classic confusion), critical extensions.
    const auto header = decode_object(token.substr(0, dot1));
    if (!header) return fail("the token header is not base64url JSON");
    const auto alg = header->find("alg");
    if (alg == header->end() || !alg->is_string()) return fail("the token header has no alg");
    const std::string expected(to_string(options_.algorithm));
    if (alg->get<std::string>() != expected) {
      return fail("the token is signed with alg " + alg->get<std::string>().substr(0, 16) +
                  "; this server accepts only " + expected);
    }
    if (header->contains("crit")) return fail("the token header has unsupported crit extensions");
    if (dot2 + 1 == token.size()) return fail("the token has no signature");

    const std::string text(token);
    jwt_t* raw = nullptr;
    const int rc =
        jwt_decode(&raw, text.c_str(), reinterpret_cast<const unsigned char*>(options_.key.data()),
                   static_cast<int>(options_.key.size()));
    std::unique_ptr<jwt_t, decltype(&jwt_free)> decoded(raw, &jwt_free);
    if (rc != 0 || !decoded) return fail("the token signature does not verify");
    if (jwt_get_alg(decoded.get()) != libjwt_alg(options_.algorithm)) {
      return fail("the token is not signed with " + expected);
    }

    // The payload libjwt verified, read again here so that the claims handed to Postgres are
    // exactly the signed JSON.
    auto payload = decode_object(token.substr(dot1 + 1, dot2 - dot1 - 1));
    if (!payload) return fail("the token payload is not a JSON object");
    const double now = static_cast<double>(now_unix);
    const double leeway = static_cast<double>(options_.leeway.count());
    const auto exp = payload->find("exp");
    if (exp == payload->end()) return fail("the token has no exp (expiry) claim");
    if (!is_number(*exp)) return fail("the token's exp is not a number");
    if (now > exp->get<double>() + leeway) return fail("the token has expired");
    if (const auto nbf = payload->find("nbf"); nbf != payload->end()) {
      if (!is_number(*nbf)) return fail("the token's nbf is not a number");
      if (now + leeway < nbf->get<double>()) return fail("the token is not valid yet (nbf)");
    }
    if (!options_.audience.empty()) {
      const auto aud = payload->find("aud");
      bool found = false;
      if (aud != payload->end() && aud->is_string()) {
        found = aud->get<std::string>() == options_.audience;
      } else if (aud != payload->end() && aud->is_array()) {
        for (const auto& a : *aud)
          found |= a.is_string() && a.get<std::string>() == options_.audience;
      }
      if (!found) return fail("the token is not for this audience (aud)");
    }
    if (!options_.issuer.empty()) {
      const auto iss = payload->find("iss");
      if (iss == payload->end() || !iss->is_string() ||
          iss->get<std::string>() != options_.issuer) {
        return fail("the token is not from the expected issuer (iss)");
      }
    }
    TenantClaims claims;
    if (const auto sub = payload->find("sub"); sub != payload->end()) {
      if (!sub->is_string()) return fail("the token's sub is not a string");
      claims.subject = sub->get<std::string>();
    }
    claims.claims_json = payload->dump();
    return {std::move(claims), {}};
  } catch (const std::exception&) {
    return fail("the token could not be read");
  }
}

}  // namespace meshhook::bridge
