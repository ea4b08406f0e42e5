// Moments resolved by the worker that holds the tensor (local_moments.h).
#include "local_moments.h"

#include <algorithm>
#include <cmath>

#include "exec_error.h"

namespace wm {

namespace {

bool isCount(double x, double below) { return x >= 0 && x < below && x == std::floor(x); }

}  // namespace

std::vector<OpenMoments> decodeOpenMoments(const Job& job) {
  std::vector<OpenMoments> out;
  for (size_t d = 0; d < job.dests.size(); ++d) {
    const Dest& dest = job.dests[d];
    if (dest.op != DestOp::Linear || dest.params.empty()) continue;
    if (out.empty()) out.resize(job.dests.size());
    const std::vector<double>& p = dest.params;
    const double sources = static_cast<double>(job.sources.size());
    if (p.size() < 3 || !isCount(p[0], 9007199254740992.0) || p[0] < 1 || !isCount(p[1], 9007199254740992.0) || !isCount(p[2], 1e6) ||
        p.size() != 3 + 2 * static_cast<size_t>(p[2])) {
      throw ExecError("PlanInvalid", "plan: a linear dest's open moments have a bad layout");
    }
    OpenMoments& o = out[d];
    o.open = true;
    o.pieceElements = static_cast<uint64_t>(p[0]);
    o.id = p[1];
    for (size_t k = 0; k < static_cast<size_t>(p[2]); ++k) {
      if (!isCount(p[3 + 2 * k], sources) || !isCount(p[4 + 2 * k], sources)) throw ExecError("PlanInvalid", "plan: open moments name a source the job does not read");
      o.pairs.emplace_back(static_cast<size_t>(p[3 + 2 * k]), static_cast<size_t>(p[4 + 2 * k]));
    }
    o.resolved = dest;
    o.resolved.params.clear();
  }
  return out;
}

bool isLocalMoments(const std::vector<OpenMoments>& dests) {
  return std::any_of(dests.begin(), dests.end(), [](const OpenMoments& o) { return o.open; });
}

void resolveLocalMoments(std::vector<OpenMoments>& dests, const Job& job, const void* const* srcs, const Dtype* types, const CoefficientsFn& coefficients) {
  for (OpenMoments& o : dests) {
    if (!o.open) continue;
    std::vector<double> flat;
    for (const auto& [a, b] : o.pairs) {
      const auto* pa = static_cast<const uint8_t*>(srcs[a]);
      const auto* pb = static_cast<const uint8_t*>(srcs[b]);
      // The streaming pass's pieces and order (executor.cc's buildTasks and reduceMoments for a job without dests).
      Moments m;
      for (uint64_t s = 0; s < job.count; s += o.pieceElements) {
        Moments x;
        accumulateMoments(pa + s * dtypeSize(types[a]), types[a], pb + s * dtypeSize(types[b]), types[b], std::min(o.pieceElements, job.count - s), x);
        m.add(x);
      }
      flat.resize(flat.size() + kMomentsStride);
      flattenMoments(m, flat.data() + flat.size() - kMomentsStride);
    }
    if (!coefficients) throw ExecError("PlanInvalid", "plan: open moments but no coefficients callback");
    const std::vector<double> answer = coefficients(o.id, flat);
    const size_t n = job.sources.size();
    if (answer.size() == 2 && answer[0] == 0 && isCount(answer[1], static_cast<double>(n))) {
      o.resolved.op = DestOp::Copy;
      o.resolved.w = {static_cast<float>(answer[1])};
    } else if (answer.size() == 1 + n && answer[0] == 1) {
      o.resolved.op = DestOp::Linear;
      o.resolved.w.assign(n, 0.0f);
      for (size_t s = 0; s < n; ++s) o.resolved.w[s] = static_cast<float>(answer[1 + s]);
    } else {
      throw ExecError("PlanInvalid", "plan: the coefficients callback gave no copy or linear dest");
    }
  }
}

}  // namespace wm
