// An error the executor reports to JavaScript: a stable code and a one-line message.
#pragma once
#include <stdexcept>
#include <string>

namespace wm {

struct ExecError : std::runtime_error {
  std::string code;
  ExecError(std::string c, const std::string& message) : std::runtime_error(message), code(std::move(c)) {}
};

// Maps an errno from a system call to an ExecError naming the file and the operation.
ExecError systemError(int err, const std::string& what, const std::string& path);

}  // namespace wm
