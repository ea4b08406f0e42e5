// A hash table keyed by string views whose bytes live in the caller's text (a header, an index):
// open addressing in one array, so that the 18,867 names of a MoE index cost no allocation each
// (std::unordered_set allocates a node per key; those mallocs were most of the readers' time).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <utility>
#include <vector>

namespace wm {

template <typename Value>
class StringViewTable {
 public:
  // Sized so that `expected` keys fit without regrowing (it still grows past them).
  explicit StringViewTable(size_t expected = 0) { rehash(capacityFor(expected)); }

  // Adds key → value unless the key is present; returns the stored value (valid until the next emplace) and whether it was added.
  std::pair<Value*, bool> emplace(std::string_view key, Value value) {
    if (2 * (count_ + 1) > slots_.size()) rehash(2 * slots_.size());
    const uint64_t h = hashOf(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      Slot& s = slots_[i];
      if (!s.used) {
        s = Slot{key, h, value, true};
        count_++;
        return {&s.value, true};
      }
      if (s.hash == h && s.key == key) return {&s.value, false};
    }
  }

  // The value stored for `key`, or null.
  const Value* find(std::string_view key) const {
    const uint64_t h = hashOf(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (!s.used) return nullptr;
      if (s.hash == h && s.key == key) return &s.value;
    }
  }

  size_t size() const { return count_; }

 private:
  struct Slot {
    std::string_view key;
    uint64_t hash = 0;
    Value value{};
    bool used = false;
  };

  static size_t capacityFor(size_t keys) {
    size_t capacity = 16;
    while (capacity < 2 * keys) capacity *= 2;
    return capacity;
  }

  // 8 bytes at a time, each word mixed in with a multiply (names share long prefixes: every byte must count).
  static uint64_t hashOf(std::string_view key) {
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ key.size();
    size_t i = 0;
    for (; i + 8 <= key.size(); i += 8) {
      uint64_t word;
      std::memcpy(&word, key.data() + i, 8);
      h = (h ^ word) * 0xff51afd7ed558ccdULL;
      h ^= h >> 32;
    }
    uint64_t tail = 0;
    if (i < key.size()) std::memcpy(&tail, key.data() + i, key.size() - i);
    h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
  }

  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(capacity, Slot{});
    mask_ = capacity - 1;
    count_ = 0;
    for (const Slot& s : old) {
      if (!s.used) continue;
      size_t i = s.hash & mask_;
      while (slots_[i].used) i = (i + 1) & mask_;
      slots_[i] = s;
      count_++;
    }
  }

  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t count_ = 0;
};

// A set of string views: `insert` says whether the key was new.
class StringViewSet {
 public:
  explicit StringViewSet(size_t expected = 0) : table_(expected) {}
  bool insert(std::string_view key) { return table_.emplace(key, 0).second; }

 private:
  StringViewTable<uint8_t> table_;
};

}  // namespace wm
