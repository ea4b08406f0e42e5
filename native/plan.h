// The plan the executor runs: what every output byte is. Built by lib/plan.ts, marshalled by addon.cc.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "kernels/kernels.h"

namespace wm {

enum class DestOp { Copy, Lerp, LerpMi, Linear, Sparse, Nearswap, Ram, RowLinear, Della, Sce, ArceeFusion };

enum class Device { Cpu, Cuda };

// Per-job statistics computed instead of output bytes (jobs without dests).
enum class JobStat { None, Histogram, L1, RamCounts, RowMoments, DellaL1, SceHistogram, SceSumSquares, ArceeHistogram };

struct Source {
  uint32_t input = 0;   // index into Plan::inputs
  uint64_t offset = 0;  // absolute byte offset in that file
  Dtype dtype = Dtype::BF16;
};

struct Dest {
  uint32_t output = 0;  // index into Plan::outputs
  uint64_t offset = 0;  // absolute byte offset in that file
  Dtype dtype = Dtype::BF16;
  DestOp op = DestOp::Copy;
  std::vector<float> w;  // Copy: {source index}; Lerp/LerpMi: {lambda}; Linear: one weight per source
  std::vector<double> params;  // Sparse: kernels/sparsify.h's flat layout; Nearswap, Ram, RowLinear: kernels/elementwise.h's; Della: kernels/della.h's; Sce: kernels/sce.h's; ArceeFusion: kernels/arcee_fusion.h's (w is empty)
};

struct Job {
  uint64_t count = 0;  // elements
  std::vector<Source> sources;
  std::vector<Dest> dests;
  bool moments = false;  // accumulate statistics of sources[0] vs sources[1] (for `weightmix diff`)
  // Histogram: radix-selection counts of d = sources[1] - sources[0]; statParams =
  //   [indexBits, shift, bits, prefixHi, prefixLo, (first, total)?] -> 2^bits counts; with the tail the job is elements
  //   first .. first + count - 1 of a tensor of `total`, keyed as there (indexBits of total, index first + i).
  // L1: exact sums of |d| before/after the keep rule; statParams = the keep rule as one model entry
  //   of the sparse layout plus indexBits -> 2 sums. (kernels/sparsify.h)
  // RamCounts: statParams = a Ram dest's params -> shared and unique counts per model (kernels/elementwise.h).
  // RowMoments: statParams = [rowLength] -> 4 sums per row (kernels/elementwise.h).
  // DellaL1: sources [base, x]; statParams = [L, S, density, epsilon, seedHi, seedLo] -> 2 sums (kernels/della.h).
  // SceHistogram: 2^bits + 1 counts; SceSumSquares: one f64 sum per model (kernels/sce.h's statParams).
  // ArceeHistogram: 3 x 2^bits counts, then each row's KL where statParams did not give them (kernels/arcee_fusion.h's statParams).
  JobStat stat = JobStat::None;
  std::vector<double> statParams;
};

struct OutputSpec {
  std::string path;
  uint64_t size = 0;
  // Header bytes written at offset 0: the caller's, which it keeps unchanged for the run (addon.cc holds the JavaScript
  // Buffer instead of copying it: an 18,867-tensor plan's headers are ~2 MB of fresh pages).
  const uint8_t* head = nullptr;
  uint64_t headBytes = 0;
};

struct Plan {
  std::vector<std::string> inputs;
  std::vector<OutputSpec> outputs;
  std::vector<Job> jobs;
  unsigned threads = 1;
  uint64_t blockBytes = 8u << 20;
  bool direct = true;  // O_DIRECT output where the file system allows it
  Device device = Device::Cpu;  // Cuda: the arithmetic dests run on GPU 0 (native/cuda/device.h)
  // A tensor-local job whose open statistics are L1 factors alone reads its sources in chunks from this many bytes of them
  // on, instead of holding them whole (executor.cc's readsInChunks); the plan's `chunkedLocalBytes` where given (tests: 0).
  uint64_t chunkedLocalBytes = uint64_t{64} << 20;
};

}  // namespace wm
