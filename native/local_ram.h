// ramplus_tl as a tensor-local job (local_job.h): a `ram` dest whose λ are left open (kernels/elementwise.h's
// RamParams::open) gets them from the tensor its worker holds in memory: ramCounts over the whole tensor,
// then λ_k by lib/recipes/methods/ram.ts's ramPlusLambda, the same f64 operations. Without it the planner
// runs a `ram_counts` pass over the files first (lib/recipes/ram-counts.ts, kept for tensors above the
// budget). test/tensor-local-ram.test.ts compares the bytes of both, and the formula with ram.ts's.
#pragma once
#include <cstdint>
#include <vector>

#include "kernels/elementwise.h"

namespace wm {

// Whether any ram dest of the job has its λ left open.
bool isLocalRam(const std::vector<RamParams>& dests);

// Resolves the open dests' λ from their sources in memory (srcs[s]: element 0 of source s). Throws
// std::invalid_argument where a λ is not finite, as decodeRamParams does for a counted one.
void resolveLocalRam(std::vector<RamParams>& dests, const void* const* srcs, const Dtype* types, uint64_t count);

// ram.ts's ramPlusLambda: 1 + r * Math.min(alpha, Math.max(0, shared / Math.max(unique, epsilon))),
// with JavaScript's Math.max and Math.min (NaN if either is NaN; +0 above -0).
double ramPlusLambda(double shared, double unique, double r, double alpha, double epsilon);

}  // namespace wm
