// A plan's jobs packed as one array of doubles (lib/engine/packed-jobs.ts writes it; the layout is
// described there): the addon crosses Node-API once instead of ~30 property lookups per job.
#pragma once
#include <cstddef>
#include <stdexcept>
#include <vector>

#include "plan.h"

namespace wm {

// Decodes the jobs; a malformed array throws std::invalid_argument with a one-line "plan: …" message.
std::vector<Job> unpackJobs(const double* words, size_t count);

}  // namespace wm
