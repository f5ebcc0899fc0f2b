#pragma once
// Verifies the caller's JWT (Supabase's HS256 secret, or an RS256/ES256 public key) with
// libjwt and turns it into TenantClaims. Only the configured algorithm is accepted, never
// "none"; exp is required, nbf, aud and iss are checked as configured. Immutable after
// construction, so thread-safe.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "meshhook/bridge/auth/tenant_claims.h"

namespace meshhook::bridge {

enum class JwtAlgorithm { hs256, rs256, es256 };

/// "HS256" -> hs256; nullopt for anything else (including "none").
std::optional<JwtAlgorithm> parse_jwt_algorithm(std::string_view name) noexcept;
std::string_view to_string(JwtAlgorithm algorithm) noexcept;

struct JwtOptions {
  JwtAlgorithm algorithm = JwtAlgorithm::hs256;
  /// HS256: the shared secret (at least 32 bytes). RS256/ES256: the PEM public key.
  std::string key;
  std::string audience;  // "" = aud not checked; else aud (string or list) must contain it
  std::string issuer;    // "" = iss not checked; else iss must equal it
  std::chrono::seconds leeway{30};  // clock skew allowed on exp and nbf
  std::size_t max_token_bytes = 8192;
};

struct JwtVerification {
  std::optional<TenantClaims> claims;  // set when the token is valid
  std::string error;                   // otherwise why not, for the 401 message
  bool ok() const noexcept { return claims.has_value(); }
};

class JwtVerifier {
 public:
  /// Throws std::invalid_argument when the key does not suit the algorithm (a short secret,
  /// a PEM that is not an RSA or EC public key).
  explicit JwtVerifier(JwtOptions options);

  /// Verifies token at now (Unix seconds). Never throws.
  JwtVerification verify(std::string_view token, std::int64_t now_unix) const noexcept;
  /// The same, at the current time.
  JwtVerification verify(std::string_view token) const noexcept;

  const JwtOptions& options() const noexcept { return options_; }

 private:
  JwtOptions options_;
};

}  // namespace meshhook::bridge
