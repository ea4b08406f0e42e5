// Moments as a tensor-local job (local_job.h): a `linear` dest whose coefficients depend on moments of
// the tensor (slerp's angle, multislerp's and karcher's Gram matrices, model_stock's cosines) carries
// them as open params, lib/engine/open-moments.ts's layout:
//   [pieceElements, callbackId, pairCount, (sourceA, sourceB) per pair].
// Its worker, holding the tensor's sources in memory, sums each pair's moments exactly as the streaming
// moments pass does (pieces of pieceElements, each summed by accumulateMoments and added in piece order,
// so the f64 sums are the same bits), then asks JavaScript for the dest's op and weights (the method's
// own coefficients code), instead of a moments pass reading both models before the write pass.
#pragma once
#include <cstdint>
#include <functional>
#include <vector>

#include "plan.h"

namespace wm {

// The JavaScript side: (callbackId, kMomentsStride moments per pair in MOMENTS_LAYOUT's order) -> [0, source] for a
// copy or [1, one weight per source] for a linear combination; throws ExecError when it could not answer.
using CoefficientsFn = std::function<std::vector<double>(double id, const std::vector<double>& moments)>;

struct OpenMoments {
  bool open = false;
  uint64_t pieceElements = 0;
  double id = 0;
  std::vector<std::pair<size_t, size_t>> pairs;  // source slots
  Dest resolved;                                 // the dest as the coefficients make it (op Copy or Linear)
};

// One entry per dest of the job (none when no dest is open); throws ExecError("PlanInvalid") for a bad layout.
std::vector<OpenMoments> decodeOpenMoments(const Job& job);
bool isLocalMoments(const std::vector<OpenMoments>& dests);

// Sums every open dest's pairs over the sources in memory (srcs[s]: element 0 of source s) and sets its
// resolved dest from `coefficients`.
void resolveLocalMoments(std::vector<OpenMoments>& dests, const Job& job, const void* const* srcs, const Dtype* types, const CoefficientsFn& coefficients);

// The dest to produce: the resolved one where the job's dest was open, else the job's own.
inline const Dest& destToRun(const std::vector<OpenMoments>& open, const Job& job, size_t d) {
  return open.empty() || !open[d].open ? job.dests[d] : open[d].resolved;
}

}  // namespace wm
