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
  return p;
}

bool hasOpenStatistics(const JobParams& p) { return isLocalDella(p.della) || isLocalSce(p.sce) || isLocalRam(p.ram); }

uint64_t localScratchBytes(const JobParams& p, uint64_t count) { return localSceScratchBytes(p.sce, count); }

void resolveLocalParams(JobParams& p, const void* const* srcs, const Dtype* types, uint64_t count, KeepBitMaps& maps, uint8_t* scratch) {
  resolveLocalSce(p.sce, srcs, types, count, scratch);
  resolveLocalDella(p.della, srcs, types, count, maps);
  resolveLocalRam(p.ram, srcs, types, count);
}

}  // namespace wm
