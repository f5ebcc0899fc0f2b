#include "meshhook/bridge/auth/claims_resolver.h"

#include <algorithm>
#include <chrono>
#include <nlohmann/json.hpp>

#include "meshhook/bridge/common/uuid.h"

namespace meshhook::bridge {
namespace {

using nlohmann::json;

ClaimsResolution unauthorized(std::string_view error, std::string_view message) {
  ClaimsResolution r;
  r.error = json_error(401, error, message);
  r.error.headers.emplace_back(
      "WWW-Authenticate",
      std::string(error == "invalid_token"
                      ? "Bearer realm=\"meshhook-stats\", error=\"invalid_token\""
                      : "Bearer realm=\"meshhook-stats\""));
  return r;
}

ClaimsResolution forbidden_role() {
  ClaimsResolution r;
  // Not the role itself: it is the caller's text.
  r.error = json_error(403, "forbidden_role",
                       "the token's role claim is not one that may read statistics "
                       "(auth.allowed_roles); sign in for a user token");
  return r;
}

const json* find_path(const json& root, std::string_view path) {
  const json* node = &root;
  while (true) {
    const auto dot = path.find('.');
    const std::string name(path.substr(0, dot));
    if (!node->is_object()) return nullptr;
    const auto it = node->find(name);
    if (it == node->end()) return nullptr;
    node = &*it;
    if (dot == std::string_view::npos) return node;
    path.remove_prefix(dot + 1);
  }
}

}  // namespace

ClaimsResolver::ClaimsResolver(ClaimsResolverOptions options) : options_(std::move(options)) {
  if (options_.jwt) verifier_ = std::make_unique<JwtVerifier>(*options_.jwt);
}

ClaimsResolution ClaimsResolver::resolve(const HttpRequest& request) const {
  const std::string_view authorization = request.header ? request.header("Authorization") : "";
  if (authorization.empty()) {
    return unauthorized("unauthorized", "this endpoint needs Authorization: Bearer <JWT>");
  }
  const std::string_view token = bearer_token(authorization);
  if (token.empty()) {
    return unauthorized("unauthorized", "the Authorization header must be Bearer <JWT>");
  }
  const auto now = std::chrono::duration_cast<std::chrono::seconds>(
                       std::chrono::system_clock::now().time_since_epoch())
                       .count();
  return resolve_token(token, static_cast<std::int64_t>(now));
}

ClaimsResolution ClaimsResolver::resolve_token(std::string_view token,
                                               std::int64_t now_unix) const {
  if (!verifier_) {
    return unauthorized("unauthorized",
                        "this server has no JWT key configured (auth.jwt_secret or "
                        "auth.jwt_public_key_file), so it reads statistics for no one");
  }
  auto verified = verifier_->verify(token, now_unix);
  if (!verified.ok()) return unauthorized("invalid_token", verified.error);

  // The policies trust meshhook_project_ids in request.jwt.claims, so what the daemon hands
  // them comes only from the configured claim, checked here.
  json claims = json::parse(verified.claims->claims_json, nullptr, false);
  if (!claims.is_object())
    return unauthorized("invalid_token", "the token payload is not an object");
  std::string role = kDefaultRole;
  if (const auto it = claims.find("role"); it != claims.end()) {
    if (!it->is_string())
      return unauthorized("invalid_token", "the token's role claim must be a string");
    role = it->get<std::string>();
  }
  if (std::find(options_.allowed_roles.begin(), options_.allowed_roles.end(), role) ==
      options_.allowed_roles.end()) {
    return forbidden_role();
  }
  json ids = json::array();
  if (!options_.project_ids_claim.empty()) {
    if (const json* listed = find_path(claims, options_.project_ids_claim)) {
      const std::string bad =
          "the token's " + options_.project_ids_claim + " claim must be a list of project uuids";
      if (!listed->is_array() || listed->size() > kMaxProjectIds) {
        return unauthorized("invalid_token", bad);
      }
      for (const auto& item : *listed) {
        auto id = item.is_string() ? canonical_uuid(item.get<std::string>()) : std::nullopt;
        if (!id) return unauthorized("invalid_token", bad);
        ids.push_back(std::move(*id));
      }
    }
  }
  claims.erase(kProjectIdsClaim);
  if (!options_.project_ids_claim.empty()) claims[kProjectIdsClaim] = std::move(ids);
  ClaimsResolution r;
  r.claims = TenantClaims{std::move(verified.claims->subject), claims.dump()};
  return r;
}

}  // namespace meshhook::bridge
