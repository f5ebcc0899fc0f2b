#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace meshhook::bridge {

/// Static bearer tokens kept only as SHA-256 hashes (several at once, for rotation).
/// matches() compares in constant time. Immutable after construction, so thread-safe.
class TokenSet {
 public:
  /// hex_hashes: lower-case hex SHA-256 digests. Throws std::invalid_argument on a bad one.
  explicit TokenSet(const std::vector<std::string>& hex_hashes);

  bool empty() const noexcept { return hashes_.empty(); }
  bool matches(std::string_view token) const noexcept;

  static std::string sha256_hex(std::string_view data);

 private:
  std::vector<std::array<std::uint8_t, 32>> hashes_;
};

}  // namespace meshhook::bridge
