// della's L1 pass (dellaL1Buckets: keys, draws, ranks, keep bits and L1 sums) over a real tensor's rows, one thread, in
// 64 Ki-element calls as a tensor-local job makes them: ns per element, the least of REPS repetitions, and a digest of the
// L1 sums and keep bits (equal digests: the same results, for comparing two builds of the kernels).
//   g++ -std=c++17 -O3 -ffp-contract=off -fno-math-errno -Inative -Inative/kernels native/tests/della_bench.cc native/kernels/*.cc
//       native/aligned_buffer.cc -o /tmp/della_bench && /tmp/della_bench BASE.safetensors MODEL.safetensors OFFSET L N [REPS]
// OFFSET: the tensor's first byte in both shards (8 + the header's length + its data_offsets[0]); L: its row length (the last
// dimension); N: elements to read from there (whole rows), bf16. BENCHMARKS.md's runs (the bench's dense pair with additive
// noise, model-00003-of-00016.safetensors): layer 2's gate_proj at 12458088 with L 1280, its down_proj at 6248 with L 4864,
// N 6225920 each; density 0.5, epsilon 0.1 (the bench's della recipe).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kernels/della.h"
#include "kernels/kernels.h"
#include "kernels/sparsify.h"

namespace {
std::vector<uint16_t> readAt(const char* file, long offset, size_t n) {
  std::vector<uint16_t> v(n);
  FILE* f = std::fopen(file, "rb");
  if (f == nullptr || std::fseek(f, offset, SEEK_SET) != 0 || std::fread(v.data(), 2, n, f) != n) {
    std::fprintf(stderr, "della_bench: cannot read %zu bf16 elements of %s at %ld\n", n, file, offset);
    std::exit(1);
  }
  std::fclose(f);
  return v;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 6) {
    std::fprintf(stderr, "usage: della_bench BASE.safetensors MODEL.safetensors OFFSET L N [REPS]\n");
    return 1;
  }
  const long offset = std::atol(argv[3]);
  const uint32_t L = static_cast<uint32_t>(std::atol(argv[4]));
  const size_t n = static_cast<size_t>(std::atoll(argv[5]));
  const int reps = argc > 6 ? std::atoi(argv[6]) : 5;
  if (L == 0 || L > 65536 || n == 0 || n % L != 0 || reps < 1) {
    std::fprintf(stderr, "della_bench: N must be whole rows of L (1..65536), REPS at least 1\n");
    return 1;
  }
  const std::vector<uint16_t> base = readAt(argv[1], offset, n), model = readAt(argv[2], offset, n);
  wm::DellaRows rows;
  rows.length = L;
  wm::DellaModel m;
  m.density = 0.5;
  m.epsilon = 0.1;
  m.seedKey = 0x1234567890abcdefull;
  std::vector<uint64_t> before(wm::kL1Buckets), after(wm::kL1Buckets);
  std::vector<uint8_t> bits(n / 8 + 8);
  const size_t step = std::max<size_t>(1, 65536 / L) * L;  // a call's whole rows, as a tensor-local job's pieces
  double best = 1e30;
  uint64_t digest = 0;
  for (int r = 0; r < reps; ++r) {
    std::fill(before.begin(), before.end(), 0);
    std::fill(after.begin(), after.end(), 0);
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t s = 0; s < n; s += step) {
      const size_t k = std::min(n - s, step);
      wm::dellaL1Buckets(base.data() + s, wm::Dtype::BF16, model.data() + s, wm::Dtype::BF16, rows, m, s, k, before.data(), after.data(), bits.data());
    }
    best = std::min(best, std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / static_cast<double>(n));
    digest = 0;
    for (size_t e = 0; e < wm::kL1Buckets; ++e) digest = digest * 31 + before[e] * 7 + after[e];
    for (size_t i = 0; i < n / 8; ++i) digest = digest * 131 + bits[i];
  }
  std::printf("L %u: %.3f ns/elem  digest %016llx\n", L, best, static_cast<unsigned long long>(digest));
  return 0;
}
