#pragma once
// Errors in minik. What the environment does to us (a failed syscall, a program
// that exits non-zero, bad input) is an exception carrying what was attempted on
// what; it is caught at one boundary: the request handler, the command, the loop.

#include <stdexcept>
#include <string>

namespace minik {

// An error with a message that says what failed on what, e.g.
// `open '/var/lib/minik/store.db': Permission denied`.
class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Builds an Error for a failed system call from errno: "<what>: <strerror>".
Error SystemError(const std::string& what, int err);

}  // namespace minik
