// Checks a plan against itself and the input sizes before anything is written (plan_validation.cc).
#pragma once
#include <cstdint>
#include <vector>

#include "plan.h"

namespace wm {

// Throws ExecError("PlanInvalid" | "InputChanged") with a one-line message naming the job or file.
void validatePlan(const Plan& plan, const std::vector<uint64_t>& inputSizes);

}  // namespace wm
