// Plan validation: every range checked against itself and the real input sizes, every output byte
// covered exactly once, each op's parameters decoded; before any output file exists.
#include "plan_validation.h"

#include <algorithm>
#include <cmath>
#include <stdexcept>
#include <string>

#include "exec_error.h"
#include "kernels/della.h"
#include "kernels/elementwise.h"
#include "kernels/histogram_digit.h"
#include "kernels/sce.h"
#include "kernels/arcee_fusion.h"
#include "kernels/sparsify.h"

namespace wm {
namespace {

uint64_t checkedEnd(uint64_t offset, uint64_t count, size_t elemSize, const char* what, size_t job) {
  if (count > (UINT64_MAX - offset) / elemSize) {
    throw ExecError("PlanInvalid", std::string("plan: ") + what + " range overflows in job " + std::to_string(job));
  }
  return offset + count * elemSize;
}

void validateSparseDest(const Dest& d, const Job& job, size_t j) {
  try {
    SparseParams p = decodeSparseParams(d.params, job.sources.size());
    if (p.indexBits != sparseIndexBits(job.count)) throw std::invalid_argument("index bits do not match the element count");
  } catch (const std::invalid_argument& e) {
    throw ExecError("PlanInvalid", std::string("plan: sparse parameters of job ") + std::to_string(j) + ": " + e.what());
  }
}

// Nearswap and Ram dests name their sources in params (kernels/elementwise.h).
void validateElementwiseDest(const Dest& d, const Job& job, size_t j) {
  try {
    if (d.op == DestOp::Nearswap) decodeNearswapParams(d.params, job.sources.size());
    else if (d.op == DestOp::Ram) decodeRamParams(d.params, job.sources.size());
    else if (d.op == DestOp::Della) decodeDellaParams(d.params, job.sources.size(), job.count);
    else if (d.op == DestOp::Sce) decodeSceParams(d.params, job.sources.size(), job.count);
    else if (d.op == DestOp::ArceeFusion) decodeArceeParams(d.params, job.sources.size(), job.count);
    else checkRowLinearParams(d.params, job.sources.size(), job.count);
  } catch (const std::invalid_argument& e) {
    throw ExecError("PlanInvalid", std::string("plan: parameters of job ") + std::to_string(j) + ": " + e.what());
  }
}

void validateStatJob(const Job& job, size_t j) {
  const std::string where = " in job " + std::to_string(j);
  const bool sce = job.stat == JobStat::SceHistogram || job.stat == JobStat::SceSumSquares || job.stat == JobStat::ArceeHistogram;
  if (job.stat == JobStat::RamCounts || job.stat == JobStat::RowMoments || job.stat == JobStat::DellaL1 || sce) {
    if (!job.dests.empty() || job.moments || (job.stat != JobStat::RamCounts && !sce && job.sources.size() != 2)) {
      throw ExecError("PlanInvalid", "plan: a statistics job reads its sources and writes nothing" + where);
    }
    try {
      DellaModel unused;
      if (job.stat == JobStat::RowMoments) decodeGroups(job.statParams, job.count);
      else if (job.stat == JobStat::DellaL1) decodeDellaStat(job.statParams, job.count, unused);
      else if (job.stat == JobStat::SceHistogram) decodeSceHistogram(job.statParams, job.sources.size(), job.count);
      else if (job.stat == JobStat::SceSumSquares) decodeSceSumSquares(job.statParams, job.sources.size(), job.count);
      else if (job.stat == JobStat::ArceeHistogram) decodeArceeHistogram(job.statParams, job.sources.size(), job.count);
      else if (decodeRamParams(job.statParams, job.sources.size()).open) throw std::invalid_argument("counts take no open tail");
    } catch (const std::invalid_argument& e) {
      const char* what = job.stat == JobStat::DellaL1 ? "plan: bad della L1 parameters" : sce ? "plan: bad sce or arcee_fusion statistic parameters" : "plan: bad RAM count parameters";
      throw ExecError("PlanInvalid", std::string(what) + where + ": " + e.what());
    }
    return;
  }
  if (job.sources.size() != 2 || !job.dests.empty() || job.moments) {
    throw ExecError("PlanInvalid", "plan: a statistics job reads two sources and writes nothing" + where);
  }
  const auto& p = job.statParams;
  if (job.stat == JobStat::Histogram) {
    try {
      decodeHistogramDigit(p, 0, job.count);
    } catch (const std::invalid_argument& e) {
      throw ExecError("PlanInvalid", "plan: bad histogram parameters" + where + ": " + e.what());
    }
  } else {
    std::vector<double> one = {0, 0, 1, p.empty() ? 0 : p[0], 0, 1};
    one.insert(one.end(), p.begin() + (p.empty() ? 0 : 1), p.end());
    try {
      if (p.empty() || p[0] != sparseIndexBits(job.count)) throw std::invalid_argument("index bits do not match the element count");
      decodeSparseParams(one, 2);
    } catch (const std::invalid_argument& e) {
      throw ExecError("PlanInvalid", std::string("plan: bad L1 parameters") + where + ": " + e.what());
    }
  }
}

}  // namespace

void validatePlan(const Plan& plan, const std::vector<uint64_t>& inputSizes) {
  struct Interval {
    uint64_t begin, end;
  };
  std::vector<std::vector<Interval>> cover(plan.outputs.size());
  for (size_t o = 0; o < plan.outputs.size(); ++o) {
    if (plan.outputs[o].headBytes > plan.outputs[o].size) throw ExecError("PlanInvalid", "plan: header larger than output");
    if (plan.outputs[o].headBytes > 0) cover[o].push_back({0, plan.outputs[o].headBytes});
  }
  for (size_t j = 0; j < plan.jobs.size(); ++j) {
    const Job& job = plan.jobs[j];
    for (const Source& s : job.sources) {
      if (s.input >= plan.inputs.size()) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " names a missing input");
      uint64_t end = checkedEnd(s.offset, job.count, dtypeSize(s.dtype), "source", j);
      if (end > inputSizes[s.input]) {
        throw ExecError("InputChanged", "input " + plan.inputs[s.input] + " is shorter (" + std::to_string(inputSizes[s.input]) +
                                            " bytes) than its header promised (" + std::to_string(end) + " bytes)");
      }
    }
    if (job.moments && job.sources.size() != 2) throw ExecError("PlanInvalid", "plan: moments need two sources");
    if (job.stat != JobStat::None) validateStatJob(job, j);
    for (const Dest& d : job.dests) {
      if (d.output >= plan.outputs.size()) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " names a missing output");
      const bool elementwise = d.op == DestOp::Nearswap || d.op == DestOp::Ram || d.op == DestOp::RowLinear || d.op == DestOp::Della || d.op == DestOp::Sce || d.op == DestOp::ArceeFusion;
      const bool paramsOnly = d.op == DestOp::Sparse || elementwise;
      size_t need = d.op == DestOp::Copy ? 1 : d.op == DestOp::Linear ? job.sources.size() : paramsOnly ? 0 : 1;
      if (d.op == DestOp::Sparse) validateSparseDest(d, job, j);
      if (elementwise) validateElementwiseDest(d, job, j);
      if (d.w.size() != need) throw ExecError("PlanInvalid", "plan: wrong coefficient count in job " + std::to_string(j));
      if ((d.op == DestOp::Lerp || d.op == DestOp::LerpMi) && job.sources.size() != 2) {
        throw ExecError("PlanInvalid", "plan: lerp needs two sources in job " + std::to_string(j));
      }
      if (d.op == DestOp::LerpMi && job.sources[0].dtype != job.sources[1].dtype) {
        throw ExecError("PlanInvalid", "plan: numerics 'mi' needs inputs of one dtype in job " + std::to_string(j));
      }
      if (d.op == DestOp::Copy && (d.w[0] < 0 || d.w[0] >= static_cast<float>(job.sources.size()))) {
        throw ExecError("PlanInvalid", "plan: copy names a missing source in job " + std::to_string(j));
      }
      if (job.sources.empty()) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " has no sources");
      bool raw = d.dtype == Dtype::U8;
      for (const Source& s : job.sources) raw = raw || s.dtype == Dtype::U8;
      if (raw && (d.op != DestOp::Copy || job.sources[static_cast<size_t>(d.w[0])].dtype != d.dtype)) {
        throw ExecError("PlanInvalid", "plan: raw bytes can only be copied, in job " + std::to_string(j));
      }
      uint64_t end = checkedEnd(d.offset, job.count, dtypeSize(d.dtype), "destination", j);
      if (end > plan.outputs[d.output].size) throw ExecError("PlanInvalid", "plan: job " + std::to_string(j) + " writes past its output");
      if (job.count > 0) cover[d.output].push_back({d.offset, end});
    }
  }
  for (size_t o = 0; o < cover.size(); ++o) {
    auto& iv = cover[o];
    std::sort(iv.begin(), iv.end(), [](const Interval& a, const Interval& b) { return a.begin < b.begin; });
    uint64_t at = 0;
    for (const Interval& i : iv) {
      if (i.begin != at) {
        throw ExecError("PlanInvalid", "plan: output " + plan.outputs[o].path + " has a " + (i.begin < at ? "overlap" : "hole") +
                                           " at byte " + std::to_string(std::min(i.begin, at)));
      }
      at = i.end;
    }
    if (at != plan.outputs[o].size) throw ExecError("PlanInvalid", "plan: output " + plan.outputs[o].path + " is not fully covered");
  }
}


}  // namespace wm
