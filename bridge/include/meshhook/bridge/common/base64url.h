#pragma once
// base64url without padding (RFC 4648 section 5), as JWS compact serialisation and our paging
// cursors use it. Pure functions; thread-safe.

#include <optional>
#include <string>
#include <string_view>

namespace meshhook::bridge {

std::string base64url_encode(std::string_view bytes);
/// Strict: only the base64url alphabet, no padding, no impossible length; nullopt otherwise.
std::optional<std::string> base64url_decode(std::string_view text);

}  // namespace meshhook::bridge
