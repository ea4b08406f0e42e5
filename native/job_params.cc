// Decoded dest parameters of one job, and their local resolution (see job_params.h).
#include "job_params.h"

#include "local_ram.h"
#include "local_sce.h"

namespace wm {

JobParams decodeJobParams(const Job& job) {
  JobParams p;
  for (const Dest& d : job.dests) {
    p.della.push_back(d.op == DestOp::Della ? decodeDellaParams(d.params, job.sources.size(), job.count) : DellaParams{});
    p.sce.push_back(d.op == DestOp::Sce ? decodeSceParams(d.params, job.sources.size(), job.count) : SceParams{});
    p.ram.push_back(d.op == DestOp::Ram ? decodeRamParams(d.params, job.sources.size()) : RamParams{});
  }
  p.moments = decodeOpenMoments(job);
  return p;
}

bool hasOpenStatistics(const JobParams& p) { return isLocalDella(p.della) || isLocalSce(p.sce) || isLocalRam(p.ram) || isLocalMoments(p.moments); }

uint64_t localScratchBytes(const JobParams& p, uint64_t count) { return localSceScratchBytes(p.sce, count); }

void resolveLocalParams(JobParams& p, const Job& job, const void* const* srcs, const Dtype* types, KeepBitMaps& maps, uint8_t* scratch,
                        const CoefficientsFn& coefficients) {
  resolveLocalSce(p.sce, srcs, types, job.count, scratch);
  resolveLocalDella(p.della, srcs, types, job.count, maps);
  resolveLocalRam(p.ram, srcs, types, job.count);
  resolveLocalMoments(p.moments, job, srcs, types, coefficients);
}

}  // namespace wm
