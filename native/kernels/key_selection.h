// Order statistics of 32-bit keys (arcee_fusion's importance order keys, native/local_arcee.h): the keys at three ascending
// ranks (0-based, the rank-th least), exactly, by three ways that give the same keys:
//   keysAtRanksInPlace: std::nth_element over the keys (small tensors; reorders them);
//   WindowedSelection: a sample of the keys places a window of values around each rank, one pass counts the keys below
//     each window and collects those inside it (keyWindows), and a histogram of those finds the key; no answer where a rank
//     falls outside its window or a window overflows its room (ties), for the radix selection to decide;
//   RadixSelection: two counting passes over the keys' 16-bit halves, fed in blocks (keys made and dropped block by block).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace wm {

// One window of keyWindows: below counts the keys < lo; the keys with key - lo <= width (unsigned: lo <= key <= lo + width)
// are appended to out + n in element order and counted in n (out null: counted only).
struct KeyWindow {
  uint32_t lo = 0, width = 0;
  uint64_t below = 0;
  uint32_t* out = nullptr;  // room for n + the pass's keys + 16 (SIMD stores whole vectors), or null
  uint64_t n = 0;
};

#define WM_KEY_WINDOWS_DECLS \
  /* One pass over keys[0 .. n) for windows w[0 .. windows), windows <= 3. */ \
  void keyWindows(const uint32_t* keys, size_t n, KeyWindow* w, size_t windows);
namespace scalar {
WM_KEY_WINDOWS_DECLS
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
namespace avx2 {
WM_KEY_WINDOWS_DECLS  // 8 lanes of AVX2, 16 of AVX-512 where avx512Enabled() (key_windows_simd.cc)
}
#endif
WM_KEY_WINDOWS_DECLS  // the SIMD path where kernels.h's dispatcher takes it, else the scalar one
#undef WM_KEY_WINDOWS_DECLS

// keys[ranks[q]] of the keys in ascending order into out[q], q < 3 (ranks ascending, < count); reorders the keys.
void keysAtRanksInPlace(uint32_t* keys, uint64_t count, const uint64_t ranks[3], uint32_t out[3]);

// The same keys by a sample and one windowed pass, fed the keys in blocks (in any order) to count(); result() is false where
// the windows missed (a rank outside its window, or ties that overflowed its room): then use RadixSelection. Windows' room:
// kept by the thread, three windows of twice the keys each is expected to hold (4 standard deviations of the sample's rank
// either side: about 3 % of count keys each at 65,536 samples, 13 % at 4,096) and 4,096 more, 8 MiB each at most.
class WindowedSelection {
 public:
  // Places the windows by a sample of the keys (sample_strata.h: sampleStrata of windowSampleSize(count) keys; reordered here).
  WindowedSelection(uint64_t count, const uint64_t ranks[3], std::vector<uint32_t>& sample);
  void count(const uint32_t* keys, size_t n);
  bool result(uint32_t out[3]);

 private:
  std::vector<uint32_t>& room_;
  uint64_t ranks_[3];
  uint64_t capacity_ = 0;  // each window's room, 16 more past it
  KeyWindow w_[3];
  bool overflowed_ = false;
};

// The same keys by the keys' 16-bit halves, fed the keys in blocks (in any order): all of them to countHigh, then all
// again to countLow. count < 2^32.
class RadixSelection {
 public:
  RadixSelection(uint64_t count, const uint64_t ranks[3]);
  void countHigh(const uint32_t* keys, size_t n);
  // The ranks' high bins from the high counts; the counters then hold the low 16 bits within each of them.
  void startLow();
  void countLow(const uint32_t* keys, size_t n);
  void result(uint32_t out[3]);

 private:
  std::vector<uint32_t>& counts_;
  uint64_t left_[3];
  uint32_t high_[3] = {0, 0, 0};
};

}  // namespace wm
