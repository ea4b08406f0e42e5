// Decoder of lib/engine/packed-jobs.ts's layout: every count and index checked before it is used.
#include "packed_jobs.h"

#include <string>

namespace wm {
namespace {

class Reader {
 public:
  Reader(const double* words, size_t count) : words_(words), count_(count) {}
  bool done() const { return pos_ == count_; }
  double number() {
    if (pos_ >= count_) throw std::invalid_argument("plan: packed jobs end early");
    return words_[pos_++];
  }
  // Offsets and counts are exact integers below 2^53 (the executor's range checks rely on it).
  uint64_t u64(const char* what) {
    double d = number();
    if (!(d >= 0) || d > 9007199254740991.0 || d != static_cast<double>(static_cast<uint64_t>(d))) {
      throw std::invalid_argument(std::string("plan: bad ") + what);
    }
    return static_cast<uint64_t>(d);
  }
  // A length prefix: never more than the words left, so a corrupt length cannot allocate wildly.
  size_t length(const char* what) {
    uint64_t n = u64(what);
    if (n > count_ - pos_) throw std::invalid_argument(std::string("plan: bad ") + what);
    return static_cast<size_t>(n);
  }
  std::vector<double> numbers(const char* what) {
    size_t n = length(what);
    std::vector<double> out(words_ + pos_, words_ + pos_ + n);
    pos_ += n;
    return out;
  }

 private:
  const double* words_;
  size_t count_;
  size_t pos_ = 0;
};

Dtype dtypeOf(Reader& r) {
  switch (r.u64("dtype")) {
    case 0: return Dtype::F32;
    case 1: return Dtype::F16;
    case 2: return Dtype::BF16;
    case 3: return Dtype::U8;
    default: throw std::invalid_argument("plan: unsupported dtype");
  }
}

DestOp opOf(Reader& r) {
  switch (r.u64("op")) {
    case 0: return DestOp::Copy;
    case 1: return DestOp::Lerp;
    case 2: return DestOp::LerpMi;
    case 3: return DestOp::Linear;
    case 4: return DestOp::Sparse;
    case 5: return DestOp::Nearswap;
    case 6: return DestOp::Ram;
    case 7: return DestOp::RowLinear;
    case 8: return DestOp::Della;
    case 9: return DestOp::Sce;
    case 10: return DestOp::ArceeFusion;
    default: throw std::invalid_argument("plan: unknown op");
  }
}

JobStat statOf(Reader& r) {
  switch (r.u64("statistic")) {
    case 0: return JobStat::None;
    case 1: return JobStat::Histogram;
    case 2: return JobStat::L1;
    case 3: return JobStat::RamCounts;
    case 4: return JobStat::RowMoments;
    case 5: return JobStat::DellaL1;
    case 6: return JobStat::SceHistogram;
    case 7: return JobStat::SceSumSquares;
    case 8: return JobStat::ArceeHistogram;
    default: throw std::invalid_argument("plan: unknown statistic");
  }
}

}  // namespace

std::vector<Job> unpackJobs(const double* words, size_t count) {
  Reader r(words, count);
  std::vector<Job> jobs;
  // An interpolation's job takes 19 words: sized so that a plan of such jobs (or longer ones) never regrows the vector.
  jobs.reserve(count / 19 + 1);
  while (!r.done()) {
    Job job;
    job.count = r.u64("element count");
    job.moments = r.u64("moments flag") != 0;
    job.stat = statOf(r);
    job.statParams = r.numbers("statistic parameter count");
    size_t sources = r.length("source count");
    job.sources.reserve(sources);
    for (size_t s = 0; s < sources; ++s) {
      Source src;
      src.input = static_cast<uint32_t>(r.u64("input index"));
      src.offset = r.u64("source offset");
      src.dtype = dtypeOf(r);
      job.sources.push_back(src);
    }
    size_t dests = r.length("dest count");
    job.dests.reserve(dests);
    for (size_t d = 0; d < dests; ++d) {
      Dest dest;
      dest.output = static_cast<uint32_t>(r.u64("output index"));
      dest.offset = r.u64("destination offset");
      dest.dtype = dtypeOf(r);
      dest.op = opOf(r);
      // Straight into the dest's floats: no temporary vector per dest (an 18,867-tensor plan's jobs are decoded on the calling thread).
      const size_t weights = r.length("coefficient count");
      dest.w.reserve(weights);
      for (size_t k = 0; k < weights; ++k) dest.w.push_back(static_cast<float>(r.number()));
      dest.params = r.numbers("sparse parameter count");
      job.dests.push_back(std::move(dest));
    }
    jobs.push_back(std::move(job));
  }
  return jobs;
}

}  // namespace wm
