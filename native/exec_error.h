// An error the executor reports to JavaScript: a stable code and a one-line message.
#pragma once
#include <exception>
#include <new>
#include <stdexcept>
#include <string>

namespace wm {

struct ExecError : std::runtime_error {
  std::string code;
  ExecError(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
};

// Maps an errno from a system call to an ExecError naming the file and the operation.
ExecError systemError(int err, const std::string& what, const std::string& path);

// The exception being handled, as an ExecError (a worker's catch (...) keeps the first one for the run).
inline std::exception_ptr currentExecError() {
  try {
    throw;
  } catch (const ExecError&) {
    return std::current_exception();
  } catch (const std::bad_alloc&) {
    return std::make_exception_ptr(ExecError("ENOMEM", "out of memory"));
  } catch (const std::exception& e) {
    return std::make_exception_ptr(ExecError("Internal", e.what()));
  }
}

}  // namespace wm
