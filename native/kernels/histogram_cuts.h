// rankCutsByHistogram's passes as a state machine fed one chunk of |d| bits at a time: the same cuts whether the tensor is
// held whole (sparse_select.cc) or read in chunks by a tensor-local job (local_job.cc's resolveLocalCutsInChunks), which
// then never holds the tensor whole (on this VM a fresh page costs more than reading a tensor again from the page cache).
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kernels.h"

namespace wm {

class HistogramCuts {
 public:
  // The cuts of ranks[0..k) of a tensor of `count` elements (sparse_select.h's rankCut), into cuts[0..k) once done(). The
  // counters live in `counters` (kept by the caller from tensor to tensor: fresh pages cost a fault each).
  HistogramCuts(uint64_t count, const uint64_t* ranks, size_t k, uint64_t* cuts, std::vector<uint64_t>& counters);
  // Whether every cut is written (no further pass needed).
  bool done() const { return pass_ > 3; }
  // The current pass over elements [start, start + n) of the tensor (base and x at element start), in element order from 0.
  void add(const void* base, Dtype tb, const void* x, Dtype tx, uint64_t start, uint64_t n);
  // Ends the current pass: the next one, or done().
  void endPass();

 private:
  struct Open {
    size_t q;
    uint64_t need;
    uint32_t top = 0, value = 0;
    uint64_t* low = nullptr;
    bool tie = false;  // the rank falls among equal |d|: found by the index scan (pass 3)
  };
  void addBits(uint64_t start, const uint32_t* a, size_t n);
  uint64_t count_;
  uint32_t indexBits_;
  uint64_t* cuts_;
  std::vector<uint64_t>& counters_;
  std::vector<Open> open_;
  int pass_ = 1;
};

}  // namespace wm
