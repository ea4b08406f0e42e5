// Decoded dest parameters of one job, and their local resolution (see job_params.h).
#include "job_params.h"

#include "local_ram.h"
#include "local_sce.h"

namespace wm {
namespace {
// sce's variance bits (4 bytes each) come first in the scratch; arcee_fusion's row KLs follow, 8-byte aligned.
uint64_t sceScratchBytes(const JobParams& p, uint64_t count) { return (localSceScratchBytes(p.sce, count) + 7) / 8 * 8; }
}  // namespace

JobParams decodeJobParams(const Job& job) {
  JobParams p;
  const size_t sources = job.sources.size();
  p.della = perDest<DellaParams>(job, DestOp::Della, [&](const Dest& d) { return decodeDellaParams(d.params, sources, job.count); });
  p.sce = perDest<SceParams>(job, DestOp::Sce, [&](const Dest& d) { return decodeSceParams(d.params, sources, job.count); });
  p.ram = perDest<RamParams>(job, DestOp::Ram, [&](const Dest& d) { return decodeRamParams(d.params, sources); });
  p.arcee = perDest<ArceeParams>(job, DestOp::ArceeFusion, [&](const Dest& d) { return decodeArceeParams(d.params, sources, job.count); });
  p.moments = decodeOpenMoments(job);
  return p;
}

bool opensMoreThanL1Factors(const JobParams& p) { return isLocalSce(p.sce) || isLocalRam(p.ram) || isLocalMoments(p.moments) || isLocalArcee(p.arcee); }

bool opensOnlySceInChunks(const JobParams& p) {
  return sceResolvesInChunks(p.sce) && !isLocalRam(p.ram) && !isLocalMoments(p.moments) && !isLocalArcee(p.arcee) && !isLocalDella(p.della);
}

bool hasOpenStatistics(const JobParams& p) { return isLocalDella(p.della) || opensMoreThanL1Factors(p); }

uint64_t localScratchBytes(const JobParams& p, uint64_t count) {
  return sceScratchBytes(p, count) + localArceeScratchBytes(p.arcee, count);
}

void resolveLocalParams(JobParams& p, const Job& job, const void* const* srcs, const Dtype* types, KeepBitMaps& maps, uint8_t* scratch,
                        const CoefficientsFn& coefficients) {
  resolveLocalSce(p.sce, srcs, types, job.count, scratch);
  resolveLocalArcee(p.arcee, srcs, types, job.count, scratch + sceScratchBytes(p, job.count));
  resolveLocalDella(p.della, srcs, types, job.count, maps);
  resolveLocalRam(p.ram, srcs, types, job.count);
  resolveLocalMoments(p.moments, job, srcs, types, coefficients);
}

}  // namespace wm
