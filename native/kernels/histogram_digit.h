// One radix-selection pass's digit, and where its job lies in its tensor: the params tail
// [indexBits, shift, bits, prefixHi, prefixLo, (first, total)?] of the histogram statistics (sparsify.h's radixHistogram over
// |d|'s rank keys, sce.h's sceHistogram over the variances'). A job that is a run of a larger tensor (plan.h) keys its elements
// by their place in the whole: `first` is its first element there and `total` the tensor's count, so that every run's keys
// and index bits are the whole tensor's.
#pragma once
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "sparsify.h"
#include "whole_param.h"

namespace wm {

struct HistogramDigit {
  uint32_t indexBits = 0, shift = 0, bits = 0;
  uint64_t prefix = 0;
  uint64_t first = 0, total = 0;  // total 0: the job is the whole tensor
  // The element count and the place of a job's element `start` that its keys are made with.
  uint64_t keyedCount(uint64_t count) const { return total != 0 ? total : count; }
  uint64_t keyedStart(uint64_t start) const { return first + start; }
};

// Reads the tail from p[at] to p's end for a job of `count` elements; throws std::invalid_argument when malformed.
inline HistogramDigit decodeHistogramDigit(const std::vector<double>& p, size_t at, uint64_t count) {
  if (p.size() != at + 5 && p.size() != at + 7) throw std::invalid_argument("a histogram takes [indexBits, shift, bits, prefixHi, prefixLo, (first, total)?]");
  const auto whole = [&](size_t i, double max) { return wholeParam(p, at + i, max, "histogram"); };
  HistogramDigit d;
  if (p.size() == at + 7) {
    d.first = whole(5, 9007199254740991.0);
    d.total = whole(6, 9007199254740991.0);
    if (d.first + count > d.total) throw std::invalid_argument("a run past its tensor's end");
  }
  d.indexBits = static_cast<uint32_t>(whole(0, 32));
  if (d.indexBits != sparseIndexBits(d.keyedCount(count))) throw std::invalid_argument("index bits do not match the element count");
  d.shift = static_cast<uint32_t>(whole(1, 63));
  d.bits = static_cast<uint32_t>(whole(2, kMaxHistogramBits));
  if (d.bits == 0 || d.shift + d.bits > 64) throw std::invalid_argument("bad histogram digit");
  d.prefix = (whole(3, 4294967295.0) << 32) | whole(4, 4294967295.0);
  return d;
}

}  // namespace wm
