#pragma once
// uuids as MeshHook uses them for every id. Pure values; thread-safe.

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace meshhook::bridge {

/// A uuid as 16 bytes; text form is the canonical lower-case 8-4-4-4-12.
struct Uuid {
  std::array<std::uint8_t, 16> bytes{};

  /// Accepts 8-4-4-4-12 hex in either case; nullopt otherwise.
  static std::optional<Uuid> parse(std::string_view text) noexcept;
  std::string to_string() const;
  /// Writes the 36 characters of the canonical form to out.
  void write(char* out) const noexcept;
  friend bool operator==(const Uuid&, const Uuid&) = default;
};

/// A uuid in either case as its canonical lower-case text; nullopt when it is not one.
std::optional<std::string> canonical_uuid(std::string_view text);

}  // namespace meshhook::bridge
