#include "common/unix_socket.h"

#include <fcntl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>

namespace minik::unix_socket {
namespace {

// Calls `use` with an address for `path`, opening its directory when the path
// does not fit; the directory stays open until `use` returns.
int WithAddress(const std::string& path, std::string* error,
                const std::function<int(const sockaddr_un&)>& use) {
  sockaddr_un sa{};
  sa.sun_family = AF_UNIX;
  int dir = -1;
  std::string target = path;
  if (path.size() >= sizeof(sa.sun_path)) {
    auto slash = path.rfind('/');
    std::string parent = slash == std::string::npos ? "." : path.substr(0, slash);
    dir = open(parent.c_str(), O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (dir < 0) {
      *error = "open " + parent + ": " + std::strerror(errno);
      return -1;
    }
    target = "/proc/self/fd/" + std::to_string(dir) + "/" + path.substr(slash + 1);
    if (target.size() >= sizeof(sa.sun_path)) {
      close(dir);
      *error = "socket name too long: " + path;
      return -1;
    }
  }
  std::memcpy(sa.sun_path, target.c_str(), target.size() + 1);
  int fd = use(sa);
  int saved = errno;
  if (dir >= 0) {
    close(dir);
  }
  errno = saved;
  return fd;
}

}  // namespace

int Listen(const std::string& path, int flags, std::string* error) {
  unlink(path.c_str());
  return WithAddress(path, error, [&](const sockaddr_un& sa) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | flags, 0);
    if (fd < 0 || bind(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0 ||
        listen(fd, 16) != 0) {
      *error = "listen on " + path + ": " + std::strerror(errno);
      if (fd >= 0) {
        close(fd);
      }
      return -1;
    }
    return fd;
  });
}

int Connect(const std::string& path, std::string* error) {
  return WithAddress(path, error, [&](const sockaddr_un& sa) {
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, reinterpret_cast<const sockaddr*>(&sa), sizeof(sa)) != 0) {
      *error = "connect to " + path + ": " + std::strerror(errno);
      if (fd >= 0) {
        close(fd);
      }
      return -1;
    }
    return fd;
  });
}

}  // namespace minik::unix_socket
