#pragma once
// Who is calling the read API: the "Authorization: Bearer <JWT>" header verified into
// TenantClaims, or the 401 to answer. Ingest tokens are not JWTs, so they never resolve here.
// Immutable after construction, so thread-safe.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "meshhook/bridge/auth/jwt_verifier.h"
#include "meshhook/bridge/auth/tenant_claims.h"
#include "meshhook/bridge/common/http.h"

namespace meshhook::bridge {

struct ClaimsResolverOptions {
  /// Unset: no JWT key is configured and every caller is refused.
  std::optional<JwtOptions> jwt;
  /// For standalone deployments (no MeshHook projects table): the claim, or dotted path into
  /// nested objects ("app_metadata.project_ids"), that lists the caller's project uuids. The
  /// list is handed to Postgres as the claim meshhook_project_ids, which the row level
  /// security policies read. "" = none (a meshhook_project_ids in the token is dropped).
  std::string project_ids_claim;
  /// The values of the token's `role` claim that may read (Supabase signs its public anon key,
  /// role "anon", with the same secret as users' tokens). A token without a role claim counts
  /// as "authenticated", the role Supabase gives signed-in users; a role claim that is not a
  /// string is an invalid token.
  std::vector<std::string> allowed_roles{"authenticated"};
};

struct ClaimsResolution {
  std::optional<TenantClaims> claims;  // the caller, when authenticated
  HttpResponse error;  // otherwise the 401 (no valid token) or 403 (forbidden_role) to answer
  bool ok() const noexcept { return claims.has_value(); }
};

class ClaimsResolver {
 public:
  /// The claim added to the claims for the policies.
  static constexpr const char* kProjectIdsClaim = "meshhook_project_ids";
  static constexpr std::size_t kMaxProjectIds = 10000;
  /// The role of a token without a role claim.
  static constexpr const char* kDefaultRole = "authenticated";

  /// Throws std::invalid_argument when the JWT key does not suit its algorithm.
  explicit ClaimsResolver(ClaimsResolverOptions options);

  ClaimsResolution resolve(const HttpRequest& request) const;
  /// The same for a bare token (the part after "Bearer "), at now (Unix seconds).
  ClaimsResolution resolve_token(std::string_view token, std::int64_t now_unix) const;

 private:
  ClaimsResolverOptions options_;
  std::unique_ptr<JwtVerifier> verifier_;
};

}  // namespace meshhook::bridge
