// Tensor-local jobs (local_job.h): the budget, and the statistics resolved from memory.
#include "local_job.h"

#include <algorithm>
#include <memory>
#include <numeric>

#include "kernels/histogram_cuts.h"
#include "kernels/sparse_select.h"

namespace wm {

std::vector<AlignedBuffer> LocalBuffers::take(const std::vector<uint64_t>& sizes) {
  std::unique_lock<std::mutex> lock(mutex_);
  uint64_t want = 0;
  for (uint64_t n : sizes) want += n;
  for (;;) {
    if (inUse_ + want <= budget_ || inUse_ == 0) break;
    cv_.wait(lock);
  }
  std::vector<AlignedBuffer> out(sizes.size());
  uint64_t fresh = 0;
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0) continue;
    // The smallest spare that fits.
    size_t best = spare_.size();
    for (size_t k = 0; k < spare_.size(); ++k) {
      if (spare_[k].size() >= sizes[i] && (best == spare_.size() || spare_[k].size() < spare_[best].size())) best = k;
    }
    if (best == spare_.size()) {
      fresh += sizes[i];
      continue;
    }
    out[i] = std::move(spare_[best]);
    spare_.erase(spare_.begin() + static_cast<std::ptrdiff_t>(best));
    spareBytes_ -= out[i].size();
    inUse_ += out[i].size();
  }
  // Spares go (largest first) while the new buffers would not fit beside them.
  std::sort(spare_.begin(), spare_.end(), [](const AlignedBuffer& a, const AlignedBuffer& b) { return a.size() < b.size(); });
  while (!spare_.empty() && inUse_ + fresh + spareBytes_ > budget_) {
    spareBytes_ -= spare_.back().size();
    spare_.pop_back();
  }
  inUse_ += fresh;
  lock.unlock();
  for (size_t i = 0; i < sizes.size(); ++i) {
    if (sizes[i] == 0 || out[i].size() != 0) continue;
    // Huge pages: a fresh buffer's first touch, during its pread, costs one fault per 2 MiB instead
    // of per 4 KiB (sce3: 17k faults against 177k; 4 KiB pages cost more CPU end to end, ARCHITECTURE.md).
    out[i] = AlignedBuffer::hugePages(sizes[i]);
  }
  return out;
}

void LocalBuffers::giveBack(std::vector<AlignedBuffer>& buffers) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (AlignedBuffer& b : buffers) {
      if (b.size() == 0) continue;
      inUse_ -= b.size();
      spareBytes_ += b.size();
      spare_.push_back(std::move(b));
    }
    while (!spare_.empty() && inUse_ + spareBytes_ > budget_) {
      spareBytes_ -= spare_.back().size();
      spare_.pop_back();
    }
  }
  cv_.notify_all();
}

uint8_t* KeepBitMaps::next(uint64_t count) {
  if (maps_.size() <= used_) maps_.emplace_back();
  AlignedBuffer& map = maps_[used_++];
  if (map.size() < keepBitsBytes(count)) map = AlignedBuffer::hugePages(keepBitsBytes(count));
  return map.data();
}

bool isLocalJob(const std::vector<SparseParams>& destParams) {
  return std::any_of(destParams.begin(), destParams.end(), [](const SparseParams& p) { return !p.open.empty(); });
}

namespace {

// A reader (resolveLocalL1InChunks') over sources held whole: the sources at element `start`.
std::function<const void* const*(uint64_t, uint64_t)> inMemory(const void* const* srcs, const Dtype* types, size_t sources,
                                                               std::vector<const void*>& at) {
  at.assign(sources, nullptr);
  return [srcs, types, &at](uint64_t start, uint64_t) {
    for (size_t s = 0; s < at.size(); ++s) at[s] = static_cast<const uint8_t*>(srcs[s]) + start * dtypeSize(types[s]);
    return static_cast<const void* const*>(at.data());
  };
}

// The number of sources up to the last one a dest reads.
template <class Params, class Model>
size_t sourcesRead(const std::vector<Params>& destParams, const std::vector<Model> Params::*models) {
  size_t n = 0;
  for (const Params& p : destParams) {
    n = std::max<size_t>(n, p.baseSource + 1);
    for (const Model& m : p.*models) n = std::max<size_t>(n, m.source + 1);
  }
  return n;
}

}  // namespace

void resolveLocal(std::vector<SparseParams>& destParams, const void* const* srcs, const Dtype* types, uint64_t count, KeepBitMaps& maps) {
  // The cuts first: a model's L1 sums count what its cuts keep.
  for (SparseParams& p : destParams) {
    for (size_t k = 0; k < p.open.size(); ++k) {
      const SparseOpen& open = p.open[k];
      SparseModel& m = p.models[k];
      if (!open.select) continue;
      const uint64_t ranks[2] = {open.lowRank, open.highRank};
      uint64_t cuts[2];
      rankCuts(srcs[p.baseSource], types[p.baseSource], srcs[m.source], types[m.source], count, ranks, 2, cuts);
      m.lowKey = cuts[0];
      m.highKey = cuts[1];
    }
  }
  // The tensor in memory is one chunk.
  std::vector<const void*> at;
  resolveLocalL1InChunks(destParams, types, count, count, maps, inMemory(srcs, types, sourcesRead(destParams, &SparseParams::models), at));
}

void resolveLocalInChunks(std::vector<SparseParams>& destParams, const Dtype* types, uint64_t count, uint64_t chunk, KeepBitMaps& maps,
                          const std::function<const void* const*(uint64_t start, uint64_t n)>& read) {
  // The cuts first, as resolveLocal's: rankCutsByHistogram's passes, each a read of the tensor that feeds every model's.
  struct Open {
    const SparseParams* p;
    size_t k;  // the model's index in p->models and p->open
    SparseModel* m;
    uint64_t cuts[2];
    std::unique_ptr<HistogramCuts> passes;
  };
  thread_local std::vector<std::vector<uint64_t>> counters;  // one model's each, kept from tensor to tensor as rankCutsByHistogram's
  std::vector<Open> opens;
  for (SparseParams& p : destParams) {
    for (size_t k = 0; k < p.open.size(); ++k) {
      if (p.open[k].select) opens.push_back({&p, k, &p.models[k], {0, 0}, nullptr});
    }
  }
  if (counters.size() < opens.size()) counters.resize(opens.size());
  for (size_t i = 0; i < opens.size(); ++i) {
    const SparseOpen& open = opens[i].p->open[opens[i].k];
    const uint64_t ranks[2] = {open.lowRank, open.highRank};
    opens[i].passes = std::make_unique<HistogramCuts>(count, ranks, 2, opens[i].cuts, counters[i]);
  }
  const auto pending = [&] { return std::any_of(opens.begin(), opens.end(), [](const Open& o) { return !o.passes->done(); }); };
  while (pending()) {
    // A tie's index scan ends at the element it looks for: the rest of that pass is not read.
    for (uint64_t start = 0; start < count && pending(); start += chunk) {
      const uint64_t n = std::min(chunk, count - start);
      const void* const* srcs = read(start, n);
      for (Open& o : opens) {
        if (o.passes->done()) continue;
        o.passes->add(srcs[o.p->baseSource], types[o.p->baseSource], srcs[o.m->source], types[o.m->source], start, n);
      }
    }
    for (Open& o : opens) {
      if (!o.passes->done()) o.passes->endPass();
    }
  }
  for (Open& o : opens) {
    o.m->lowKey = o.cuts[0];
    o.m->highKey = o.cuts[1];
  }
  resolveLocalL1InChunks(destParams, types, count, chunk, maps, read);
}

void resolveLocalL1InChunks(std::vector<SparseParams>& destParams, const Dtype* types, uint64_t count, uint64_t chunk, KeepBitMaps& maps,
                            const std::function<const void* const*(uint64_t start, uint64_t n)>& read) {
  struct Open {
    const SparseParams* p;
    SparseModel* m;
    // The same integer buckets and totals as the planner's L1 pass: the factor does not depend on who sums. A pure cut is
    // cheaper to test again than to read back; a random mask is not, so its keep rule is kept as bits.
    uint8_t* bits;
    L1Accumulator sums;
  };
  std::vector<Open> opens;
  for (SparseParams& p : destParams) {
    for (size_t k = 0; k < p.open.size(); ++k) {
      SparseModel& m = p.models[k];
      if (p.open[k].l1) opens.push_back({&p, &m, m.density > 0 && m.density < 1 ? maps.next(count) : nullptr, {}});
    }
  }
  for (uint64_t start = 0; start < count; start += chunk) {
    const uint64_t n = std::min(chunk, count - start);
    const void* const* srcs = read(start, n);
    for (Open& o : opens) {
      o.sums.add(srcs[o.p->baseSource], types[o.p->baseSource], srcs[o.m->source], types[o.m->source], *o.m, count, start, n, o.bits);
    }
  }
  for (Open& o : opens) {
    const L1Sums sums = o.sums.sums();
    o.m->keepBits = o.bits;
    o.m->scale = l1Scale(sums.before, sums.after);
  }
}

bool isLocalDella(const std::vector<DellaParams>& destParams) {
  return std::any_of(destParams.begin(), destParams.end(),
                     [](const DellaParams& p) { return std::any_of(p.models.begin(), p.models.end(), [](const DellaModel& m) { return m.openL1; }); });
}

uint64_t dellaChunkUnit(const std::vector<DellaParams>& destParams) {
  uint64_t unit = 8;  // each chunk's keep bits start a byte
  for (const DellaParams& p : destParams) {
    // A dest of another op holds default rows: only della dests' blocks bind (one tensor: they are the same).
    if (!p.models.empty()) unit = std::lcm(unit, p.rows.block());
  }
  return unit;
}

void resolveLocalDella(std::vector<DellaParams>& destParams, const void* const* srcs, const Dtype* types, uint64_t count, KeepBitMaps& maps) {
  // Chunks of about 64 Ki elements: dellaL1Buckets holds a byte per element of its chunk.
  std::vector<const void*> at;
  resolveLocalDellaInChunks(destParams, types, count, uint64_t{1} << 16, maps, inMemory(srcs, types, sourcesRead(destParams, &DellaParams::models), at));
}

void resolveLocalDellaInChunks(std::vector<DellaParams>& destParams, const Dtype* types, uint64_t count, uint64_t chunk, KeepBitMaps& maps,
                               const std::function<const void* const*(uint64_t start, uint64_t n)>& read) {
  struct Open {
    const DellaParams* p;
    DellaModel* m;
    uint8_t* bits;
    std::vector<uint64_t> buckets = std::vector<uint64_t>(2 * kL1Buckets, 0);  // before, then after (dellaL1Buckets')
  };
  std::vector<Open> opens;
  for (DellaParams& p : destParams) {
    for (DellaModel& m : p.models) {
      if (m.openL1) opens.push_back({&p, &m, maps.next(count)});
    }
  }
  const uint64_t unit = dellaChunkUnit(destParams);
  const uint64_t step = unit * std::max<uint64_t>(1, chunk / unit);
  for (uint64_t start = 0; start < count; start += step) {
    const uint64_t n = std::min(step, count - start);
    const void* const* srcs = read(start, n);
    for (Open& o : opens) {
      dellaL1Buckets(srcs[o.p->baseSource], types[o.p->baseSource], srcs[o.m->source], types[o.m->source], o.p->rows, *o.m,
                     start, static_cast<size_t>(n), o.buckets.data(), o.buckets.data() + kL1Buckets, o.bits);
    }
  }
  // The della_l1 pass's integer buckets and lib/recipes/della-rescale.ts's factor: the same bytes as the streaming fallback.
  for (Open& o : opens) {
    o.m->scale = l1Scale(l1Total(o.buckets.data()), l1Total(o.buckets.data() + kL1Buckets));
    o.m->keepBits = o.bits;
  }
}

}  // namespace wm
