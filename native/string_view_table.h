// A hash table keyed by string views whose bytes live in the caller's text (a header, an index):
// open addressing over 8-byte slots (hash and entry number) beside one array of entries, so that
// the 18,867 names of a MoE index cost no allocation each (std::unordered_set allocates a node per
// key) and the arrays stay small (fewer fresh pages to fault in than 40-byte slots at half load).
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
  explicit StringViewTable(size_t expected = 0) {
    entries_.reserve(expected);
    rehash(capacityFor(expected));
  }

  // Adds key → value unless the key is present; returns the stored value (valid until the next emplace) and whether it was added.
  std::pair<Value*, bool> emplace(std::string_view key, Value value) {
    if (2 * (entries_.size() + 1) > slots_.size()) rehash(2 * slots_.size());
    const uint32_t h = hashOf(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == 0) {
        entries_.push_back(Entry{key, value});
        slots_[i] = (static_cast<uint64_t>(h) << 32) | entries_.size();
        return {&entries_.back().value, true};
      }
      Entry& e = entries_[(s & 0xffffffffu) - 1];
      if (static_cast<uint32_t>(s >> 32) == h && e.key == key) return {&e.value, false};
    }
  }

  // The value stored for `key`, or null.
  const Value* find(std::string_view key) const {
    const uint32_t h = hashOf(key);
    for (size_t i = h & mask_;; i = (i + 1) & mask_) {
      const uint64_t s = slots_[i];
      if (s == 0) return nullptr;
      const Entry& e = entries_[(s & 0xffffffffu) - 1];
      if (static_cast<uint32_t>(s >> 32) == h && e.key == key) return &e.value;
    }
  }

  size_t size() const { return entries_.size(); }

 private:
  struct Entry {
    std::string_view key;
    Value value;
  };

  static size_t capacityFor(size_t keys) {
    size_t capacity = 16;
    while (capacity < 2 * keys) capacity *= 2;
    return capacity;
  }

  // 8 bytes at a time, each word mixed in with a multiply (names share long prefixes: every byte must count).
  static uint32_t hashOf(std::string_view key) {
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
    return static_cast<uint32_t>(h ^ (h >> 32));
  }

  // Slots hold (hash << 32) | (entry + 1), 0 when empty: a probe reads 8 bytes a slot, the entry (and key) only on a hash match.
  void rehash(size_t capacity) {
    slots_.assign(capacity, 0);
    mask_ = capacity - 1;
    for (size_t e = 0; e < entries_.size(); e++) {
      const uint32_t h = hashOf(entries_[e].key);
      size_t i = h & mask_;
      while (slots_[i] != 0) i = (i + 1) & mask_;
      slots_[i] = (static_cast<uint64_t>(h) << 32) | (e + 1);
    }
  }

  std::vector<uint64_t> slots_;
  std::vector<Entry> entries_;
  size_t mask_ = 0;
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
