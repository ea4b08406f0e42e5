// Order statistics of 32-bit keys (key_selection.h).
#include "key_selection.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <utility>

#include "sample_strata.h"

namespace wm {

namespace scalar {

void keyWindows(const uint32_t* keys, size_t n, KeyWindow* w, size_t windows) {
  for (size_t i = 0; i < n; ++i) {
    const uint32_t key = keys[i];
    for (size_t q = 0; q < windows; ++q) {
      w[q].below += key < w[q].lo;
      if (key - w[q].lo > w[q].width) continue;
      if (w[q].out != nullptr) w[q].out[w[q].n] = key;
      ++w[q].n;
    }
  }
}

}  // namespace scalar

namespace {

// The keys' high and low 16 bits: two counting passes over the keys.
constexpr size_t kDigit = size_t{1} << 16;

// For each of the ascending ranks rank[0] <= rank[1] <= rank[2], the bin of `counts` that holds it; rank[q]
// becomes the rank left within that bin.
void binsOfRanks(const uint32_t* counts, uint64_t rank[3], uint32_t bin[3]) {
  uint64_t below = 0;  // elements in the bins before b
  size_t b = 0;
  for (int q = 0; q < 3; ++q) {
    const uint64_t* r = &rank[q];
    while (b + 1 < kDigit && below + counts[b] <= *r) below += counts[b++];
    bin[q] = static_cast<uint32_t>(b);
    rank[q] -= below;
  }
}

std::vector<uint32_t>& radixCounters() {
  thread_local std::vector<uint32_t> v;  // kept per thread: no allocation per tensor
  return v;
}

// Keys a window pass takes between checks of the windows' room.
constexpr size_t kWindowPiece = 4096;

// A window's room at most (8 MiB; three per worker thread, kept): a larger window (a tensor of some 130M elements or more, whose
// expected window is then larger) overflows it and the radix passes decide.
constexpr uint64_t kMaxWindowKeys = uint64_t{1} << 21;

// The windows' room, kept by the thread from tensor to tensor.
std::vector<uint32_t>& windowRoom() {
  thread_local std::vector<uint32_t> v;
  return v;
}

// The rank-th least of a window's n keys, all in [lo, lo + width]: a histogram of their offsets from lo in at most kWindowBins
// bins finds the rank's bin (nth_element over the whole window, whose compares the branch predictor cannot guess, cost
// several times more), then nth_element among that bin's keys alone, moved to the front. Reorders the keys.
constexpr uint32_t kWindowBins = 4096;
uint32_t keyAtRankInWindow(uint32_t* keys, uint64_t n, uint64_t rank, uint32_t lo, uint32_t width) {
  uint32_t shift = 0;
  while ((width >> shift) >= kWindowBins) ++shift;
  // Two interleaved histograms: a run of equal keys (a tie) does not wait on its own increments of one counter.
  thread_local std::vector<uint32_t> counts;
  counts.assign(2 * kWindowBins, 0);
  uint64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    ++counts[(keys[i] - lo) >> shift];
    ++counts[kWindowBins + ((keys[i + 1] - lo) >> shift)];
  }
  if (i < n) ++counts[(keys[i] - lo) >> shift];
  uint32_t bin = 0;
  for (;; ++bin) {
    const uint64_t inBin = uint64_t{counts[bin]} + counts[kWindowBins + bin];
    if (rank < inBin) break;
    rank -= inBin;
  }
  if (shift == 0) return lo + bin;  // a bin holds one value
  uint64_t m = 0;
  for (uint64_t j = 0; j < n; ++j) {
    const uint32_t key = keys[j];
    keys[m] = key;
    m += ((key - lo) >> shift) == bin;
  }
  std::nth_element(keys, keys + rank, keys + m);
  return keys[rank];
}

}  // namespace

void keysAtRanksInPlace(uint32_t* keys, uint64_t count, const uint64_t ranks[3], uint32_t out[3]) {
  uint32_t* mid = keys + ranks[1];
  std::nth_element(keys, mid, keys + count);
  out[1] = *mid;
  // Below the median's position only keys <= it, above only keys >= it.
  std::nth_element(keys, keys + ranks[0], mid);
  out[0] = ranks[0] == ranks[1] ? out[1] : keys[ranks[0]];
  if (ranks[2] == ranks[1]) {
    out[2] = out[1];
  } else {
    std::nth_element(mid + 1, keys + ranks[2], keys + count);
    out[2] = keys[ranks[2]];
  }
}

WindowedSelection::WindowedSelection(uint64_t count, const uint64_t ranks[3], std::vector<uint32_t>& sample)
    : room_(windowRoom()), ranks_{ranks[0], ranks[1], ranks[2]} {
  const size_t s = sample.size();
  // Each window: the sample's values windowSpread places either side of the rank's place.
  uint64_t lo[3], hi[3];  // places in the sample (s: none, the window open that side)
  double widest = 0;
  for (int q = 0; q < 3; ++q) {
    const double f = static_cast<double>(ranks[q]) / static_cast<double>(count), at = static_cast<double>(s) * f;
    const double spread = windowSpread(s, f);
    widest = std::max(widest, 2 * spread / static_cast<double>(s));
    lo[q] = at - spread >= 0 ? static_cast<uint64_t>(at - spread) : s;
    hi[q] = at + spread < static_cast<double>(s) ? static_cast<uint64_t>(at + spread) : s;
  }
  std::vector<std::pair<size_t, uint32_t*>> wanted;  // a place in the sample, and where its value goes
  uint32_t values[6] = {};
  for (int q = 0; q < 3; ++q) {
    if (lo[q] < s) wanted.push_back({lo[q], &values[2 * q]});
    if (hi[q] < s) wanted.push_back({hi[q], &values[2 * q + 1]});
  }
  sampleOrderStatistics(sample, wanted);
  // Room for twice the keys a window is expected to hold (at least 4,096, at most kMaxWindowKeys) and a piece; a window of one
  // value counts its keys only.
  const uint64_t expected = static_cast<uint64_t>(2 * widest * static_cast<double>(count));
  capacity_ = std::min(std::max<uint64_t>(4096, expected), kMaxWindowKeys) + kWindowPiece;
  if (room_.size() < 3 * (capacity_ + 16)) room_.resize(3 * (capacity_ + 16));  // only grown: a resize up zero-fills again
  for (int q = 0; q < 3; ++q) {
    w_[q].lo = lo[q] < s ? values[2 * q] : 0;
    const uint32_t top = hi[q] < s ? values[2 * q + 1] : UINT32_MAX;
    w_[q].width = top - w_[q].lo;
    w_[q].out = w_[q].width == 0 ? nullptr : room_.data() + q * (capacity_ + 16);
  }
}

void WindowedSelection::count(const uint32_t* keys, size_t n) {
  for (size_t at = 0; at < n && !overflowed_; at += kWindowPiece) {
    const size_t piece = std::min(kWindowPiece, n - at);
    for (const KeyWindow& v : w_) overflowed_ |= v.out != nullptr && v.n + piece > capacity_;  // ties filled the room
    if (!overflowed_) keyWindows(keys + at, piece, w_, 3);
  }
}

bool WindowedSelection::result(uint32_t out[3]) {
  if (overflowed_) return false;
  for (int q = 0; q < 3; ++q) {
    KeyWindow& v = w_[q];
    if (ranks_[q] < v.below || ranks_[q] - v.below >= v.n) return false;  // the rank fell outside its window
    out[q] = v.out == nullptr ? v.lo : keyAtRankInWindow(v.out, v.n, ranks_[q] - v.below, v.lo, v.width);
  }
  return true;
}

RadixSelection::RadixSelection(uint64_t count, const uint64_t ranks[3]) : counts_(radixCounters()), left_{ranks[0], ranks[1], ranks[2]} {
  if (count > UINT32_MAX) throw std::logic_error("internal: a radix selection of 2^32 keys or more");
  counts_.assign(4 * kDigit, 0);
}

// The high 16 bits in four interleaved 32-bit histograms, so that a run of equal keys (a row's zeros, a row of NaN) does not
// wait on its own increments of one counter.
void RadixSelection::countHigh(const uint32_t* keys, size_t n) {
  size_t i = 0;
  for (; i + 4 <= n; i += 4) {
    for (size_t k = 0; k < 4; ++k) ++counts_[k * kDigit + (keys[i + k] >> 16)];
  }
  for (; i < n; ++i) ++counts_[keys[i] >> 16];
}

void RadixSelection::startLow() {
  for (size_t b = 0; b < kDigit; ++b) counts_[b] += counts_[kDigit + b] + counts_[2 * kDigit + b] + counts_[3 * kDigit + b];
  binsOfRanks(counts_.data(), left_, high_);
  std::fill(counts_.begin(), counts_.begin() + 3 * kDigit, 0);
}

// The low 16 bits within each rank's high bin (one pass for all three), sixteen keys at a time: most match none.
void RadixSelection::countLow(const uint32_t* keys, size_t n) {
  const uint32_t h0 = high_[0], h1 = high_[1], h2 = high_[2];
  const auto add = [&](uint32_t key) {
    for (int q = 0; q < 3; ++q) {
      if ((key >> 16) == high_[q]) ++counts_[q * kDigit + (key & 0xFFFFu)];
    }
  };
  // The sixteen keys' high halves compared in 4-lane vectors (GCC's vector extension: SSE2 on x86-64), without branches.
  using Lanes = uint32_t __attribute__((vector_size(16)));
  const Lanes v0 = {h0, h0, h0, h0}, v1 = {h1, h1, h1, h1}, v2 = {h2, h2, h2, h2};
  size_t i = 0;
  for (; i + 16 <= n; i += 16) {
    Lanes any = {0, 0, 0, 0};
    for (size_t k = 0; k < 16; k += 4) {
      Lanes h;
      std::memcpy(&h, keys + i + k, 16);
      h >>= 16;
      any |= reinterpret_cast<Lanes>((h == v0) | (h == v1) | (h == v2));
    }
    if ((any[0] | any[1] | any[2] | any[3]) == 0) continue;
    for (size_t k = 0; k < 16; ++k) add(keys[i + k]);
  }
  for (; i < n; ++i) add(keys[i]);
}

void RadixSelection::result(uint32_t out[3]) {
  for (int q = 0; q < 3; ++q) {
    uint64_t rank[3] = {left_[q], left_[q], left_[q]};
    uint32_t low[3];
    binsOfRanks(counts_.data() + q * kDigit, rank, low);
    out[q] = (high_[q] << 16) | low[0];
  }
}

}  // namespace wm
