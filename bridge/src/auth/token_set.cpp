#include "meshhook/bridge/auth/token_set.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <stdexcept>

namespace meshhook::bridge {
namespace {

std::array<std::uint8_t, 32> sha256(std::string_view data) {
  std::array<std::uint8_t, 32> out{};
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), out.data(), &len, EVP_sha256(), nullptr);
  return out;
}

int hex_digit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return -1;
}

}  // namespace

TokenSet::TokenSet(const std::vector<std::string>& hex_hashes,
                   const std::map<std::string, std::vector<std::string>>& projects) {
  for (const auto& [hex, ids] : projects) {
    if (std::find(hex_hashes.begin(), hex_hashes.end(), hex) == hex_hashes.end()) {
      throw std::invalid_argument("projects are given for a token hash that is not accepted");
    }
  }
  for (const auto& hex : hex_hashes) {
    std::array<std::uint8_t, 32> h{};
    bool ok = hex.size() == 64;
    for (std::size_t i = 0; ok && i < 32; ++i) {
      const int hi = hex_digit(hex[2 * i]);
      const int lo = hex_digit(hex[2 * i + 1]);
      ok = hi >= 0 && lo >= 0;
      h[i] = static_cast<std::uint8_t>(hi << 4 | lo);
    }
    if (!ok) throw std::invalid_argument("a token hash must be 64 lower-case hex digits");
    hashes_.push_back(h);
    std::vector<Uuid> allowed;
    if (auto it = projects.find(hex); it != projects.end()) {
      for (const auto& id : it->second) {
        auto uuid = Uuid::parse(id);
        if (!uuid) throw std::invalid_argument("a token's project must be a uuid");
        allowed.push_back(*uuid);
      }
      if (allowed.empty()) throw std::invalid_argument("a token's project list is empty");
    }
    projects_.push_back(std::move(allowed));
  }
}

std::optional<std::span<const Uuid>> TokenSet::find(std::string_view token) const noexcept {
  if (token.empty()) return std::nullopt;
  const auto h = sha256(token);
  // Compare against every hash without stopping early, in constant time each.
  std::size_t found = hashes_.size();
  for (std::size_t i = 0; i < hashes_.size(); ++i) {
    if (CRYPTO_memcmp(hashes_[i].data(), h.data(), h.size()) == 0) found = i;
  }
  if (found == hashes_.size()) return std::nullopt;
  return std::span<const Uuid>(projects_[found]);
}

std::string TokenSet::sha256_hex(std::string_view data) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto h = sha256(data);
  std::string out;
  for (auto b : h) {
    out += kHex[b >> 4];
    out += kHex[b & 0xf];
  }
  return out;
}

}  // namespace meshhook::bridge
