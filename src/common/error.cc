#include "common/error.h"

#include <cstring>

namespace minik {

Error SystemError(const std::string& what, int err) {
  return Error(what + ": " + std::strerror(err));
}

}  // namespace minik
