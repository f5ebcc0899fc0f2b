#include "meshhook/exporter/recent_run_ids.h"

#include <time.h>

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>
#include <random>
#include <stdexcept>

namespace meshhook::exporter {

namespace {

__extension__ using Uint128 = unsigned __int128;

inline std::uint64_t fold_multiply(std::uint64_t a, std::uint64_t b) noexcept {
  const Uint128 r = static_cast<Uint128>(a) * b;
  return static_cast<std::uint64_t>(r) ^ static_cast<std::uint64_t>(r >> 64);
}

constexpr std::uint64_t k0 = 0xa0761d6478bd642full;
constexpr std::uint64_t k1 = 0xe7037ed1a0b428dbull;

// Seeded per process, so that ids chosen by a client cannot aim at one probe chain.
const std::uint64_t kSeed = [] {
  std::random_device rd;
  return (static_cast<std::uint64_t>(rd()) << 32) ^ rd();
}();

struct Id {
  std::uint64_t lo = 0;
  std::uint64_t hi = 0;
  bool operator==(const Id&) const = default;
};

int hex_digit(char c) noexcept {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// A uuid's 16 bytes exactly; any other id (never sent by ingest or the tailer, which take uuids)
// as a 128-bit hash.
Id to_id(std::string_view s) noexcept {
  if (s.size() == 36 && s[8] == '-' && s[13] == '-' && s[18] == '-' && s[23] == '-') {
    std::uint64_t half[2] = {0, 0};
    int nibbles = 0;
    bool ok = true;
    for (std::size_t i = 0; i < 36 && ok; ++i) {
      if (i == 8 || i == 13 || i == 18 || i == 23) continue;
      const int d = hex_digit(s[i]);
      ok = d >= 0;
      half[nibbles / 16] = (half[nibbles / 16] << 4) | static_cast<std::uint64_t>(d);
      ++nibbles;
    }
    if (ok) return {half[0], half[1]};
  }
  std::uint64_t a = kSeed ^ k0;
  std::uint64_t b = ~kSeed ^ k1;
  for (std::size_t i = 0; i < s.size(); i += 8) {
    std::uint64_t v = 0;
    std::memcpy(&v, s.data() + i, std::min<std::size_t>(8, s.size() - i));
    a = fold_multiply(a ^ v, k1);
    b = fold_multiply(b ^ v, k0) + a;
  }
  return {fold_multiply(a ^ s.size(), k0), fold_multiply(b ^ s.size(), k1)};
}

inline std::uint64_t hash_of(const Id& id) noexcept {
  return fold_multiply(id.lo ^ kSeed ^ k0, id.hi ^ k1);
}

template <typename T>
struct FreeDeleter {
  void operator()(T* p) const noexcept { std::free(p); }
};

// calloc: the pages of a large table are mapped lazily, so an idle memory costs address
// space, not resident memory.
template <typename T>
std::unique_ptr<T[], FreeDeleter<T>> zeroed(std::size_t n) {
  void* p = std::calloc(n, sizeof(T));
  if (p == nullptr) throw std::bad_alloc();
  return std::unique_ptr<T[], FreeDeleter<T>>(static_cast<T*>(p));
}

}  // namespace

// One shard: the ids in a ring in the order they came (the oldest is forgotten first), and an
// open-addressing index into the ring. An index slot holds the upper 32 bits of the id's hash
// (whose low bits are its home slot) and the ring position + 1 (0 = empty), so a miss rarely
// touches the ring. Deletion shifts back, so no tombstones.
struct RecentRunIds::Shard {
  std::mutex mutex;
  std::size_t capacity = 0;
  std::unique_ptr<Id[], FreeDeleter<Id>> ring;
  std::unique_ptr<std::uint32_t[], FreeDeleter<std::uint32_t>> at;  // when each id came
  std::unique_ptr<std::uint64_t[], FreeDeleter<std::uint64_t>> slots;
  std::size_t mask = 0;
  std::size_t head = 0;  // where the next id goes
  std::size_t size = 0;

  explicit Shard(std::size_t cap) : capacity(cap) {
    std::size_t n = 16;
    while (n < 2 * cap) n *= 2;
    mask = n - 1;
    ring = zeroed<Id>(cap);
    at = zeroed<std::uint32_t>(cap);
    slots = zeroed<std::uint64_t>(n);
  }

  std::size_t memory_bytes() const noexcept {
    return capacity * (sizeof(Id) + sizeof(std::uint32_t)) + (mask + 1) * sizeof(std::uint64_t);
  }

  static std::uint32_t tag(std::uint64_t hash) noexcept {
    return static_cast<std::uint32_t>(hash >> 32);
  }
  std::size_t home(std::uint64_t slot) const noexcept { return (slot >> 32) & mask; }

  // The slot that holds id, or the empty slot where it would go.
  std::size_t probe(const Id& id, std::uint64_t hash, bool& found) const noexcept {
    const std::uint32_t t = tag(hash);
    for (std::size_t i = t & mask;; i = (i + 1) & mask) {
      const std::uint64_t s = slots[i];
      if (s == 0) {
        found = false;
        return i;
      }
      if (static_cast<std::uint32_t>(s >> 32) == t &&
          ring[static_cast<std::uint32_t>(s) - 1] == id) {
        found = true;
        return i;
      }
    }
  }

  void forget_oldest() noexcept {
    const std::size_t pos = (head + capacity - size) % capacity;
    bool found = false;
    std::size_t i = probe(ring[pos], hash_of(ring[pos]), found);
    --size;
    if (!found) return;  // cannot happen: every id in the ring is indexed
    // Backward-shift deletion: move later entries of the chain into the hole when their home
    // allows it.
    for (std::size_t j = (i + 1) & mask; slots[j] != 0; j = (j + 1) & mask) {
      const std::size_t k = home(slots[j]);
      if (((j - k) & mask) >= ((j - i) & mask)) {
        slots[i] = slots[j];
        i = j;
      }
    }
    slots[i] = 0;
  }

  bool seen_or_remember(const Id& id, std::uint32_t now, std::uint32_t max_age) noexcept {
    while (size > 0 && now - at[(head + capacity - size) % capacity] >= max_age) forget_oldest();
    const std::uint64_t hash = hash_of(id);
    bool found = false;
    std::size_t i = probe(id, hash, found);
    if (found) return true;
    if (size == capacity) {
      forget_oldest();
      i = probe(id, hash, found);
    }
    ring[head] = id;
    at[head] = now;
    slots[i] = (static_cast<std::uint64_t>(tag(hash)) << 32) | (head + 1);
    head = (head + 1) % capacity;
    ++size;
    return false;
  }
};

RecentRunIds::RecentRunIds(std::size_t capacity, std::chrono::seconds max_age)
    : max_age_seconds_(static_cast<std::uint32_t>(std::min<std::int64_t>(
          std::max<std::int64_t>(max_age.count(), 1), std::numeric_limits<std::uint32_t>::max()))) {
  if (capacity == 0 || capacity / kShards >= std::numeric_limits<std::uint32_t>::max() / 2) {
    throw std::invalid_argument("recent run ids: capacity must be from 1 to 2^30");
  }
  const std::size_t per_shard = (capacity + kShards - 1) / kShards;
  for (auto& s : shards_) s = std::make_unique<Shard>(per_shard);
}

RecentRunIds::~RecentRunIds() = default;

std::size_t RecentRunIds::capacity() const noexcept { return shards_[0]->capacity * kShards; }

std::size_t RecentRunIds::memory_bytes() const noexcept {
  return shards_[0]->memory_bytes() * kShards;
}

bool RecentRunIds::seen_or_remember(std::string_view run_id) noexcept {
  // The coarse clock (a few ms resolution) is a plain read of the vDSO page: no system call.
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return seen_or_remember(run_id, static_cast<std::uint32_t>(ts.tv_sec));
}

bool RecentRunIds::seen_or_remember(std::string_view run_id, std::uint32_t now_seconds) noexcept {
  const Id id = to_id(run_id);
  Shard& shard = *shards_[(hash_of(id) >> 28) % kShards];
  std::lock_guard lock(shard.mutex);
  return shard.seen_or_remember(id, now_seconds, max_age_seconds_);
}

}  // namespace meshhook::exporter
