// Output files reserved beside the workers (output_reservations.h).
#include "output_reservations.h"

#include "exec_error.h"

namespace wm {

OutputReservations::OutputReservations(const std::vector<std::unique_ptr<OutputFile>>& files, std::function<void()> onReserved,
                                       std::function<void(std::exception_ptr)> onFailure)
    : onReserved_(std::move(onReserved)), onFailure_(std::move(onFailure)) {
  for (const auto& f : files) files_.push_back(f.get());
  thread_ = std::thread([this] { run(); });
}

OutputReservations::~OutputReservations() {
  stop(std::make_exception_ptr(ExecError("Aborted", "the merge stopped before its outputs were reserved")));
}

void OutputReservations::run() {
  for (size_t i = 0; i < files_.size(); ++i) {
    if (stopping_.load()) {
      for (size_t k = i; k < files_.size(); ++k) files_[k]->failReservation(stopError_);
      return;
    }
    try {
      files_[i]->reserve();
    } catch (...) {
      const std::exception_ptr error = std::current_exception();
      for (size_t k = i + 1; k < files_.size(); ++k) files_[k]->failReservation(error);
      onFailure_(error);
      return;
    }
  }
  if (onReserved_) onReserved_();
}

void OutputReservations::join() {
  if (thread_.joinable()) thread_.join();
}

void OutputReservations::stop(std::exception_ptr error) {
  if (!stopping_.load() && thread_.joinable()) {
    stopError_ = error;
    stopping_.store(true);
  }
  join();
}

}  // namespace wm
