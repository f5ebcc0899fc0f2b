#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "meshhook/bridge/common/uuid.h"

namespace meshhook::bridge {

/// Static bearer tokens kept only as SHA-256 hashes (several at once, for rotation), each
/// optionally limited to the projects it may write. Tokens are compared in constant time.
/// Immutable after construction, so thread-safe.
class TokenSet {
 public:
  /// hex_hashes: lower-case hex SHA-256 digests. projects: for some of those digests, the
  /// only project ids (uuids) that token may write; a digest not listed may write any.
  /// Throws std::invalid_argument on a bad digest or uuid, or projects for an unknown digest.
  explicit TokenSet(const std::vector<std::string>& hex_hashes,
                    const std::map<std::string, std::vector<std::string>>& projects = {});

  bool empty() const noexcept { return hashes_.empty(); }
  bool matches(std::string_view token) const noexcept { return find(token).has_value(); }
  /// The projects the token may write (empty: any), or nullopt when it is not one of ours.
  std::optional<std::span<const Uuid>> find(std::string_view token) const noexcept;

  static std::string sha256_hex(std::string_view data);

 private:
  std::vector<std::array<std::uint8_t, 32>> hashes_;
  std::vector<std::vector<Uuid>> projects_;  // per hash; empty = any project
};

}  // namespace meshhook::bridge
