#include "kubelet/shim.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <ctime>
#include <vector>

#include "common/exec.h"
#include "common/fs.h"
#include "common/json.h"
#include "common/unix_socket.h"

namespace minik::kubelet {
namespace {

std::string NowNano() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  tm u;
  gmtime_r(&ts.tv_sec, &u);
  char buf[64];
  size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &u);
  snprintf(buf + n, sizeof(buf) - n, ".%09ldZ", ts.tv_nsec);
  return buf;
}

void WriteFile(const std::string& path, const std::string& data) {
  try {
    fs::WriteFileAtomic(path, data);
  } catch (const std::exception&) {
    // Nothing to tell it to: the kubelet notices the missing file.
  }
}

// Appends CRI log lines to a file, rotating it at a size limit.
class LogWriter {
 public:
  LogWriter(std::string path, long long max_bytes, int max_files)
      : path_(std::move(path)), max_bytes_(max_bytes), max_files_(max_files) {
    Open();
  }
  ~LogWriter() {
    if (fd_ >= 0) {
      close(fd_);
    }
  }

  // Feeds bytes of one stream; complete lines are written at once, a long
  // line without an end is written in 16 KiB partial pieces.
  void Feed(int stream, const char* data, size_t n) {
    std::string& buf = pending_[stream];
    buf.append(data, n);
    size_t pos;
    while ((pos = buf.find('\n')) != std::string::npos) {
      Emit(stream, buf.substr(0, pos), false);
      buf.erase(0, pos + 1);
    }
    while (buf.size() >= 16384) {
      Emit(stream, buf.substr(0, 16384), true);
      buf.erase(0, 16384);
    }
  }
  void Flush(int stream) {
    std::string& buf = pending_[stream];
    if (!buf.empty()) {
      Emit(stream, buf, true);
      buf.clear();
    }
  }

 private:
  void Open() {
    fd_ = open(path_.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    struct stat st;
    size_ = fd_ >= 0 && fstat(fd_, &st) == 0 ? st.st_size : 0;
  }
  void Rotate() {
    close(fd_);
    for (int i = max_files_ - 1; i >= 1; --i) {
      std::string from = i == 1 ? path_ : path_ + "." + std::to_string(i - 1);
      std::string to = path_ + "." + std::to_string(i);
      rename(from.c_str(), to.c_str());
    }
    Open();
  }
  void Emit(int stream, const std::string& text, bool partial) {
    std::string line =
        NowNano() + (stream == 1 ? " stdout " : " stderr ") + (partial ? "P " : "F ") + text + "\n";
    if (size_ + static_cast<long long>(line.size()) > max_bytes_ && size_ > 0) {
      Rotate();
    }
    if (fd_ >= 0) {
      ssize_t w = write(fd_, line.data(), line.size());
      if (w > 0) {
        size_ += w;
      }
    }
  }

  std::string path_;
  long long max_bytes_;
  int max_files_;
  int fd_ = -1;
  long long size_ = 0;
  std::string pending_[3];
};

void SendFrame(int fd, int stream, const char* data, uint32_t n) {
  unsigned char hdr[5] = {static_cast<unsigned char>(stream), static_cast<unsigned char>(n >> 24),
                          static_cast<unsigned char>(n >> 16), static_cast<unsigned char>(n >> 8),
                          static_cast<unsigned char>(n)};
  if (send(fd, hdr, 5, MSG_NOSIGNAL) != 5) {
    return;
  }
  size_t off = 0;
  while (off < n) {
    ssize_t w = send(fd, data + off, n - off, MSG_NOSIGNAL);
    if (w <= 0) {
      return;
    }
    off += static_cast<size_t>(w);
  }
}

}  // namespace

bool ParseLogLine(const std::string& line, LogLine* out) {
  auto a = line.find(' ');
  if (a == std::string::npos) {
    return false;
  }
  auto b = line.find(' ', a + 1);
  if (b == std::string::npos) {
    return false;
  }
  auto c = line.find(' ', b + 1);
  out->timestamp = line.substr(0, a);
  out->stream = line.substr(a + 1, b - a - 1);
  std::string tag = line.substr(b + 1, c == std::string::npos ? std::string::npos : c - b - 1);
  out->partial = tag == "P";
  out->text = c == std::string::npos ? "" : line.substr(c + 1);
  if (!out->text.empty() && out->text.back() == '\n') {
    out->text.pop_back();
  }
  return out->stream == "stdout" || out->stream == "stderr";
}

int RunShim(const ShimOptions& o) {
  prctl(PR_SET_CHILD_SUBREAPER, 1);
  signal(SIGPIPE, SIG_IGN);
  sigset_t mask;
  sigemptyset(&mask);
  sigaddset(&mask, SIGCHLD);
  sigprocmask(SIG_BLOCK, &mask, nullptr);
  int sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);

  int out[2], err[2], in[2] = {-1, -1};
  if (pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC) || (o.stdin_open && pipe2(in, O_CLOEXEC))) {
    WriteFile(o.state_dir + "/shim.status", std::string("error pipe: ") + std::strerror(errno));
    return 1;
  }
  pid_t runtime = fork();
  if (runtime == 0) {
    int devnull = open("/dev/null", O_RDWR);
    dup2(o.stdin_open ? in[0] : devnull, 0);
    dup2(out[1], 1);
    dup2(err[1], 2);
    exec::CloseFrom(3);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    std::vector<char*> argv;
    std::vector<std::string> args = o.create_argv;
    for (auto& a : args) {
      argv.push_back(a.data());
    }
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    dprintf(2, "exec %s: %s", argv[0], std::strerror(errno));
    _exit(127);
  }
  close(out[1]);
  close(err[1]);
  if (in[0] >= 0) {
    close(in[0]);
  }
  fcntl(out[0], F_SETFL, O_NONBLOCK);
  fcntl(err[0], F_SETFL, O_NONBLOCK);

  // Wait for the runtime's create to finish; what it printed is its error when it failed.
  std::string create_output;
  int status = 0;
  for (;;) {
    pid_t r = waitpid(runtime, &status, 0);
    if (r == runtime || (r < 0 && errno != EINTR)) {
      break;
    }
  }
  char buf[65536];
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    for (int fd : {out[0], err[0]}) {
      ssize_t k;
      while ((k = read(fd, buf, sizeof(buf))) > 0) {
        create_output.append(buf, static_cast<size_t>(k));
      }
    }
    while (!create_output.empty() &&
           (create_output.back() == '\n' || create_output.back() == ' ')) {
      create_output.pop_back();
    }
    WriteFile(o.state_dir + "/shim.status", "error " + create_output);
    return 1;
  }
  int pid = 0;
  try {
    pid = std::stoi(fs::ReadFile(o.pid_file));
  } catch (const std::exception&) {
    WriteFile(o.state_dir + "/shim.status", "error the runtime wrote no pid file");
    return 1;
  }
  // Attach socket.
  std::string sock_path = o.state_dir + "/attach.sock", sock_error;
  int lfd = unix_socket::Listen(sock_path, SOCK_NONBLOCK, &sock_error);
  if (lfd < 0) {
    std::fprintf(stderr, "attach is not possible: %s\n", sock_error.c_str());
  }
  WriteFile(o.state_dir + "/shim.status", "created " + std::to_string(pid));

  LogWriter log(o.log_file, o.max_log_bytes, o.max_log_files);
  std::vector<int> clients;
  std::vector<std::string> client_buf;
  bool out_open = true, err_open = true;
  bool exited = false;
  int exit_code = 0, exit_signal = 0;
  auto exited_at = std::chrono::steady_clock::now();
  while (out_open || err_open) {
    std::vector<pollfd> fds;
    if (out_open)
      fds.push_back({out[0], POLLIN, 0});
    if (err_open)
      fds.push_back({err[0], POLLIN, 0});
    fds.push_back({sfd, POLLIN, 0});
    if (lfd >= 0)
      fds.push_back({lfd, POLLIN, 0});
    for (int c : clients)
      fds.push_back({c, POLLIN, 0});
    int timeout = exited ? 100 : 1000;
    poll(fds.data(), fds.size(), timeout);
    for (const auto& p : fds) {
      if (!p.revents) {
        continue;
      }
      if (p.fd == out[0] || p.fd == err[0]) {
        int stream = p.fd == out[0] ? 1 : 2;
        ssize_t k = read(p.fd, buf, sizeof(buf));
        if (k > 0) {
          log.Feed(stream, buf, static_cast<size_t>(k));
          for (int c : clients) {
            SendFrame(c, stream, buf, static_cast<uint32_t>(k));
          }
        } else if (k == 0 || (errno != EAGAIN && errno != EINTR)) {
          log.Flush(stream);
          (stream == 1 ? out_open : err_open) = false;
        }
      } else if (p.fd == sfd) {
        signalfd_siginfo si;
        while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
        }
        int st;
        pid_t r;
        while ((r = waitpid(-1, &st, WNOHANG)) > 0) {
          if (r == pid) {
            exited = true;
            exited_at = std::chrono::steady_clock::now();
            if (WIFEXITED(st)) {
              exit_code = WEXITSTATUS(st);
            } else if (WIFSIGNALED(st)) {
              exit_signal = WTERMSIG(st);
              exit_code = 128 + exit_signal;
            }
          }
        }
      } else if (p.fd == lfd) {
        int c = accept4(lfd, nullptr, nullptr, SOCK_CLOEXEC);
        if (c >= 0) {
          clients.push_back(c);
        }
      } else {
        // Stdin from an attached client: frames [0][len][data]; length 0 closes stdin.
        char hdr[5];
        ssize_t k = recv(p.fd, hdr, 5, MSG_WAITALL);
        bool drop = k != 5;
        if (!drop) {
          uint32_t n = (uint32_t(uint8_t(hdr[1])) << 24) | (uint32_t(uint8_t(hdr[2])) << 16) |
                       (uint32_t(uint8_t(hdr[3])) << 8) | uint32_t(uint8_t(hdr[4]));
          std::string data(n, '\0');
          if (n > 0 && recv(p.fd, data.data(), n, MSG_WAITALL) != static_cast<ssize_t>(n)) {
            drop = true;
          } else if (in[1] >= 0) {
            if (n == 0) {
              close(in[1]);
              in[1] = -1;
            } else {
              ssize_t w = write(in[1], data.data(), n);
              (void)w;
            }
          }
        }
        if (drop) {
          close(p.fd);
          clients.erase(std::remove(clients.begin(), clients.end(), p.fd), clients.end());
        }
      }
    }
    // Processes the container left behind may keep its pipes open; do not wait for them long.
    if (exited && std::chrono::steady_clock::now() - exited_at > std::chrono::seconds(2)) {
      log.Flush(1);
      log.Flush(2);
      break;
    }
  }
  // The pipes may close before the exit is reaped.
  while (!exited) {
    int st;
    pid_t r = waitpid(pid, &st, 0);
    if (r == pid) {
      exited = true;
      exit_code = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
      exit_signal = WIFSIGNALED(st) ? WTERMSIG(st) : 0;
    } else if (r < 0 && errno == ECHILD) {
      // Not our child (the shim restarted): poll the process.
      if (kill(pid, 0) != 0) {
        exited = true;
        exit_code = 255;
      } else {
        usleep(100000);
      }
    }
  }
  for (int c : clients) {
    close(c);
  }
  if (lfd >= 0) {
    close(lfd);
    unlink(sock_path.c_str());
  }
  time_t now = time(nullptr);
  tm u;
  gmtime_r(&now, &u);
  char ts[32];
  strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &u);
  json ex = {{"exitCode", exit_code}, {"signal", exit_signal}, {"finishedAt", ts}};
  WriteFile(o.state_dir + "/exit.json", ex.dump());
  return 0;
}

}  // namespace minik::kubelet
