#include "common/fs.h"

#include <fcntl.h>
#include <pwd.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "common/error.h"

namespace minik::fs {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    throw SystemError("open '" + path + "'", errno);
  }
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void WriteFileAtomic(const std::string& path, const std::string& data, mode_t mode) {
  std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) {
    throw SystemError("create '" + tmp + "'", errno);
  }
  fchmod(fd, mode);
  size_t off = 0;
  while (off < data.size()) {
    ssize_t n = ::write(fd, data.data() + off, data.size() - off);
    if (n < 0) {
      if (errno == EINTR) {
        continue;
      }
      int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      throw SystemError("write '" + tmp + "'", err);
    }
    off += static_cast<size_t>(n);
  }
  if (::fsync(fd) != 0 || ::close(fd) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("sync '" + tmp + "'", err);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("rename '" + tmp + "' to '" + path + "'", err);
  }
}

bool Exists(const std::string& path) {
  struct stat st;
  return ::stat(path.c_str(), &st) == 0;
}

void MakeDirs(const std::string& path, mode_t mode) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) {
    throw Error("create directory '" + path + "': " + ec.message());
  }
  ::chmod(path.c_str(), mode);
}

void RemoveAll(const std::string& path) {
  std::error_code ec;
  std::filesystem::remove_all(path, ec);
  if (ec) {
    throw Error("remove '" + path + "': " + ec.message());
  }
}

std::string HomeDir() {
  if (const char* h = std::getenv("HOME"); h && *h) {
    return h;
  }
  if (passwd* pw = getpwuid(getuid()); pw && pw->pw_dir) {
    return pw->pw_dir;
  }
  return "/root";
}

bool IsMountPoint(const std::string& path) {
  struct stat self, parent;
  std::string up = path + "/..";
  return ::stat(path.c_str(), &self) == 0 && ::stat(up.c_str(), &parent) == 0 &&
         self.st_dev != parent.st_dev;
}

}  // namespace minik::fs
