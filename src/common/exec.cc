#include "common/exec.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cerrno>
#include <cstring>
#include <sstream>

#include "common/error.h"

extern char** environ;

namespace minik::exec {

void CloseFrom(int first) {
  if (syscall(SYS_close_range, static_cast<unsigned>(first), ~0U, 0) == 0) {
    return;
  }
  for (int fd = first; fd < 65536; ++fd) {
    close(fd);
  }
}

namespace {

// posix_spawn: the child shares the parent's memory until it execs
// (vfork-style), so starting a program costs no copy of the page tables, which
// matters in a large multi-threaded process such as the kubelet. The child
// gets `stdio` as fds 0-2, nothing else open, no blocked signals and SIGPIPE
// at its default. Returns 0 or the errno of the failed start.
int SpawnChild(const std::string& path, char* const* argv, char* const* envp,
               std::array<int, 3> stdio, bool new_session, pid_t* pid) {
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  for (int i = 0; i < 3; ++i) {
    posix_spawn_file_actions_adddup2(&fa, stdio[static_cast<size_t>(i)], i);
  }
  posix_spawn_file_actions_addclosefrom_np(&fa, 3);
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none, defaults;
  sigemptyset(&none);
  sigemptyset(&defaults);
  sigaddset(&defaults, SIGPIPE);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setsigdefault(&attr, &defaults);
  short flags = POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF;
  if (new_session) {
    flags |= POSIX_SPAWN_SETSID;
  }
  posix_spawnattr_setflags(&attr, flags);
  int rc = posix_spawn(pid, path.c_str(), &fa, &attr, argv, envp);
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&fa);
  return rc;
}

Runner& TestRunner() {
  static Runner runner;
  return runner;
}

Result RunReal(const Command& cmd) {
  Result r;
  int in[2], out[2], err[2];
  if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(err, O_CLOEXEC)) {
    r.err = std::string("pipe: ") + std::strerror(errno);
    return r;
  }
  std::vector<std::string> env_storage;
  for (char** e = environ; *e; ++e) {
    std::string kv = *e;
    auto eq = kv.find('=');
    if (eq != std::string::npos && cmd.extra_env.count(kv.substr(0, eq))) {
      continue;
    }
    env_storage.push_back(kv);
  }
  for (auto& [k, v] : cmd.extra_env) {
    env_storage.push_back(k + "=" + v);
  }
  std::vector<char*> envp, argv;
  for (auto& s : env_storage) {
    envp.push_back(s.data());
  }
  envp.push_back(nullptr);
  std::vector<std::string> args = cmd.argv;
  for (auto& s : args) {
    argv.push_back(s.data());
  }
  argv.push_back(nullptr);
  std::string path = LookPath(cmd.argv.at(0));
  pid_t pid = -1;
  int rc = SpawnChild(path.empty() ? cmd.argv.at(0) : path, argv.data(), envp.data(),
                      {in[0], out[1], err[1]}, false, &pid);
  close(in[0]);
  close(out[1]);
  close(err[1]);
  if (rc != 0) {
    close(in[1]);
    close(out[0]);
    close(err[0]);
    r.err = "exec " + cmd.argv.at(0) + ": " + std::strerror(rc);
    return r;
  }
  size_t written = 0;
  if (cmd.stdin_data.empty()) {
    close(in[1]);
    in[1] = -1;
  } else {
    fcntl(in[1], F_SETFL, O_NONBLOCK);
  }
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open) {
    pollfd fds[3];
    int n = 0;
    int out_i = -1, err_i = -1, in_i = -1;
    if (out_open) {
      fds[n] = {out[0], POLLIN, 0};
      out_i = n++;
    }
    if (err_open) {
      fds[n] = {err[0], POLLIN, 0};
      err_i = n++;
    }
    if (in[1] >= 0) {
      fds[n] = {in[1], POLLOUT, 0};
      in_i = n++;
    }
    if (poll(fds, n, -1) < 0) {
      if (errno == EINTR) {
        continue;
      }
      break;
    }
    auto drain = [&](int idx, int fd, std::string& dst, bool& open) {
      if (idx >= 0 && fds[idx].revents) {
        ssize_t k = read(fd, buf, sizeof(buf));
        if (k > 0) {
          dst.append(buf, static_cast<size_t>(k));
        } else if (k == 0 || errno != EINTR) {
          open = false;
        }
      }
    };
    drain(out_i, out[0], r.out, out_open);
    drain(err_i, err[0], r.err, err_open);
    if (in_i >= 0 && fds[in_i].revents) {
      ssize_t k = write(in[1], cmd.stdin_data.data() + written, cmd.stdin_data.size() - written);
      if (k > 0) {
        written += static_cast<size_t>(k);
      }
      if (k < 0 && errno != EAGAIN && errno != EINTR) {
        written = cmd.stdin_data.size();
      }
      if (written >= cmd.stdin_data.size()) {
        close(in[1]);
        in[1] = -1;
      }
    }
  }
  if (in[1] >= 0) {
    close(in[1]);
  }
  close(out[0]);
  close(err[0]);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

Result Run(const Command& cmd) {
  if (TestRunner()) {
    return TestRunner()(cmd);
  }
  return RunReal(cmd);
}

std::string Describe(const Command& cmd, const Result& r) {
  std::ostringstream ss;
  for (size_t i = 0; i < cmd.argv.size() && i < 3; ++i) {
    ss << (i ? " " : "") << cmd.argv[i];
  }
  ss << ": exit " << r.exit_code;
  std::string e = r.err;
  while (!e.empty() && (e.back() == '\n' || e.back() == ' ')) {
    e.pop_back();
  }
  if (!e.empty()) {
    ss << ": " << e;
  }
  return ss.str();
}

std::string RunOrThrow(const Command& cmd) {
  Result r = Run(cmd);
  if (!r.ok()) {
    throw Error(Describe(cmd, r));
  }
  return r.out;
}

std::string LookPath(const std::string& name) {
  if (name.find('/') != std::string::npos) {
    return access(name.c_str(), X_OK) == 0 ? name : "";
  }
  const char* path = getenv("PATH");
  std::string p = path ? path : "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
  std::stringstream ss(p);
  std::string dir;
  while (std::getline(ss, dir, ':')) {
    std::string full = (dir.empty() ? "." : dir) + "/" + name;
    struct stat st;
    if (stat(full.c_str(), &st) == 0 && S_ISREG(st.st_mode) && access(full.c_str(), X_OK) == 0) {
      return full;
    }
  }
  return "";
}

void SetRunnerForTesting(Runner runner) {
  TestRunner() = std::move(runner);
}

}  // namespace minik::exec

#include <sys/prctl.h>

#include <fstream>

namespace minik::exec {

int StartProcess(const Spawn& spec) {
  if (spec.argv.empty()) {
    throw Error("start process: empty command");
  }
  std::string path = LookPath(spec.argv[0]);
  if (path.empty()) {
    throw Error("start " + spec.argv[0] + ": not found on PATH");
  }
  int log_fd = -1;
  if (!spec.log_file.empty()) {
    log_fd = ::open(spec.log_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    if (log_fd < 0) {
      throw SystemError("open log '" + spec.log_file + "'", errno);
    }
  }
  std::vector<std::string> args = spec.argv;
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  argv.push_back(nullptr);
  if (!spec.die_with_parent) {
    int devnull = open("/dev/null", O_RDWR | O_CLOEXEC);
    int out = log_fd >= 0 ? log_fd : devnull;
    pid_t pid = -1;
    int rc = SpawnChild(path, argv.data(), environ, {devnull, out, out}, spec.new_session, &pid);
    close(devnull);
    if (log_fd >= 0) {
      close(log_fd);
    }
    if (rc != 0) {
      throw SystemError("start " + path, rc);
    }
    return pid;
  }
  // PR_SET_PDEATHSIG needs code in the child: fork.
  pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    int err = errno;
    if (log_fd >= 0) {
      close(log_fd);
    }
    throw SystemError("fork for " + spec.argv[0], err);
  }
  if (pid == 0) {
    if (spec.new_session) {
      setsid();
    }
    if (spec.die_with_parent) {
      prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (getppid() != parent) {
        _exit(1);
      }
    }
    int devnull = open("/dev/null", O_RDWR);
    dup2(devnull, 0);
    int out = log_fd >= 0 ? log_fd : devnull;
    dup2(out, 1);
    dup2(out, 2);
    // Nothing of the parent's (listening sockets above all) may outlive it in a daemon.
    CloseFrom(3);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execv(path.c_str(), argv.data());
    dprintf(2, "exec %s: %s\n", path.c_str(), std::strerror(errno));
    _exit(127);
  }
  if (log_fd >= 0) {
    close(log_fd);
  }
  return pid;
}

sigset_t BlockTerminationSignals(std::initializer_list<int> extra) {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  for (int s : extra) {
    sigaddset(&set, s);
  }
  pthread_sigmask(SIG_BLOCK, &set, nullptr);
  signal(SIGPIPE, SIG_IGN);
  return set;
}

int WaitForSignal(const sigset_t& set) {
  int sig = 0;
  while (sigwait(&set, &sig) != 0) {
  }
  return sig;
}

std::string SelfExe() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) {
    throw SystemError("readlink /proc/self/exe", errno);
  }
  return std::string(buf, static_cast<size_t>(n));
}

bool ProcessAlive(int pid) {
  if (pid <= 0 || kill(pid, 0) != 0) {
    return false;
  }
  std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
  std::string line;
  std::getline(stat, line);
  auto close_paren = line.rfind(')');
  return close_paren == std::string::npos || close_paren + 2 >= line.size() ||
         line[close_paren + 2] != 'Z';
}

}  // namespace minik::exec
