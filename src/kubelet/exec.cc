#include "kubelet/exec.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pty.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

#include "common/exec.h"
#include "common/fs.h"
#include "common/log.h"
#include "common/unix_socket.h"
#include "kubelet/streams/portforward.h"
#include "kubelet/streams/remotecommand.h"

namespace minik::kubelet {
namespace {

void WriteAll(int fd, std::string_view data) {
  size_t off = 0;
  while (off < data.size()) {
    ssize_t w = write(fd, data.data() + off, data.size() - off);
    if (w < 0 && errno == EINTR) {
      continue;
    }
    if (w <= 0) {
      return;
    }
    off += static_cast<size_t>(w);
  }
}

}  // namespace

void ServeExec(KubeletContext& ctx, PodWorker& pod, const std::string& container,
               http::Request& req, http::ResponseWriter& w) {
  std::string err;
  auto opts = streams::ParseExecOptions(req, &err);
  if (!opts) {
    w.Send(400, {{"Content-Type", "text/plain"}}, err);
    return;
  }
  std::vector<std::string> command;
  for (auto [it, end] = req.query.equal_range("command"); it != end; ++it) {
    command.push_back(it->second);
  }
  auto run = pod.Find(container);
  if (!run || !run->running) {
    w.Send(400, {{"Content-Type", "text/plain"}}, "container " + container + " is not running");
    return;
  }
  if (command.empty()) {
    w.Send(400, {{"Content-Type", "text/plain"}},
           "you must specify at least one command for the container");
    return;
  }
  auto session = streams::ExecSession::Accept(req, w, *opts, &err);
  if (!session) {
    return;
  }
  // The process runs as the container's own process does: same env, user, caps, cwd.
  json process;
  try {
    process = json::parse(fs::ReadFile(run->dir + "/config.json"))["process"];
  } catch (const std::exception& e) {
    session->FinishWithError(e.what());
    return;
  }
  process["args"] = command;
  process["terminal"] = false;
  std::string pj = run->dir + "/exec-" + RandomSuffix(8) + ".json";
  fs::WriteFileAtomic(pj, process.dump());
  std::vector<std::string> argv = ctx.runtime->ExecArgv(run->id, pj, false);
  // A terminal is a pseudo-terminal the process gets as its stdio.
  int master = -1, slave = -1;
  int in[2] = {-1, -1}, out[2] = {-1, -1}, errp[2] = {-1, -1};
  if (opts->tty) {
    if (openpty(&master, &slave, nullptr, nullptr, nullptr) != 0) {
      session->FinishWithError(std::string("openpty: ") + std::strerror(errno));
      unlink(pj.c_str());
      return;
    }
  } else if (pipe2(in, O_CLOEXEC) || pipe2(out, O_CLOEXEC) || pipe2(errp, O_CLOEXEC)) {
    session->FinishWithError(std::string("pipe: ") + std::strerror(errno));
    unlink(pj.c_str());
    return;
  }
  pid_t pid = fork();
  if (pid == 0) {
    if (opts->tty) {
      setsid();
      dup2(slave, 0);
      dup2(slave, 1);
      dup2(slave, 2);
      ioctl(0, TIOCSCTTY, 0);
    } else {
      dup2(in[0], 0);
      dup2(out[1], 1);
      dup2(errp[1], 2);
    }
    exec::CloseFrom(3);
    std::vector<char*> a;
    for (auto& s : argv) {
      a.push_back(s.data());
    }
    a.push_back(nullptr);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    signal(SIGPIPE, SIG_DFL);
    execv(a[0], a.data());
    _exit(127);
  }
  int to_child, from_out, from_err = -1;
  if (opts->tty) {
    close(slave);
    to_child = master;
    from_out = dup(master);
  } else {
    close(in[0]);
    close(out[1]);
    close(errp[1]);
    to_child = in[1];
    from_out = out[0];
    from_err = errp[0];
  }
  std::thread stdin_thread;
  if (opts->want_stdin) {
    stdin_thread = std::thread([&session, to_child, tty = opts->tty] {
      std::string data;
      while (session->ReadStdin(&data)) {
        WriteAll(to_child, data);
      }
      if (!tty) {
        close(to_child);
      } else {
        // End of input on a terminal is ^D.
        WriteAll(to_child, "\x04");
      }
    });
  } else if (!opts->tty) {
    close(to_child);
  }
  std::thread resize_thread;
  if (opts->tty) {
    resize_thread = std::thread([&session, master] {
      streams::TerminalSize size;
      while (session->NextResize(&size)) {
        winsize ws{};
        ws.ws_col = size.width;
        ws.ws_row = size.height;
        ioctl(master, TIOCSWINSZ, &ws);
      }
    });
  }
  std::thread err_thread;
  if (from_err >= 0) {
    err_thread = std::thread([&session, from_err, want = opts->want_stderr] {
      char buf[32768];
      ssize_t k;
      while ((k = read(from_err, buf, sizeof(buf))) > 0) {
        if (want) {
          session->WriteStderr(std::string_view(buf, static_cast<size_t>(k)));
        }
      }
      close(from_err);
    });
  }
  char buf[32768];
  ssize_t k;
  while ((k = read(from_out, buf, sizeof(buf))) > 0 || (k < 0 && errno == EINTR)) {
    if (k > 0 && opts->want_stdout) {
      session->WriteStdout(std::string_view(buf, static_cast<size_t>(k)));
    }
  }
  close(from_out);
  if (err_thread.joinable()) {
    err_thread.join();
  }
  int status = 0;
  waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  unlink(pj.c_str());
  session->Finish(code, streams::ExitCodeMessage(command, code));
  if (opts->tty) {
    close(master);
  }
  if (stdin_thread.joinable()) {
    stdin_thread.join();
  }
  if (resize_thread.joinable()) {
    resize_thread.join();
  }
  if (opts->want_stdin && !opts->tty) {
    // The stdin thread closed it.
  }
}

void ServeAttach(KubeletContext& ctx, PodWorker& pod, const std::string& container,
                 http::Request& req, http::ResponseWriter& w) {
  std::string err;
  auto opts = streams::ParseExecOptions(req, &err);
  if (!opts) {
    w.Send(400, {{"Content-Type", "text/plain"}}, err);
    return;
  }
  auto run = pod.Find(container);
  if (!run || !run->running) {
    w.Send(400, {{"Content-Type", "text/plain"}}, "container " + container + " is not running");
    return;
  }
  std::string sock_error;
  int fd = unix_socket::Connect(run->dir + "/attach.sock", &sock_error);
  if (fd < 0) {
    w.Send(500, {{"Content-Type", "text/plain"}},
           "cannot attach to container " + container + ": " + sock_error);
    return;
  }
  auto session = streams::ExecSession::Accept(req, w, *opts, &err);
  if (!session) {
    close(fd);
    return;
  }
  std::thread stdin_thread;
  if (opts->want_stdin) {
    stdin_thread = std::thread([&session, fd] {
      std::string data;
      auto frame = [fd](std::string_view d) {
        uint32_t n = static_cast<uint32_t>(d.size());
        unsigned char hdr[5] = {0, static_cast<unsigned char>(n >> 24),
                                static_cast<unsigned char>(n >> 16),
                                static_cast<unsigned char>(n >> 8), static_cast<unsigned char>(n)};
        send(fd, hdr, 5, MSG_NOSIGNAL);
        if (n) {
          send(fd, d.data(), n, MSG_NOSIGNAL);
        }
      };
      while (session->ReadStdin(&data)) {
        frame(data);
      }
      frame("");
    });
  }
  for (;;) {
    unsigned char hdr[5];
    if (recv(fd, hdr, 5, MSG_WAITALL) != 5) {
      break;
    }
    uint32_t n =
        (uint32_t(hdr[1]) << 24) | (uint32_t(hdr[2]) << 16) | (uint32_t(hdr[3]) << 8) | hdr[4];
    std::string data(n, '\0');
    if (n && recv(fd, data.data(), n, MSG_WAITALL) != static_cast<ssize_t>(n)) {
      break;
    }
    bool ok = hdr[0] == 1 ? (!opts->want_stdout || session->WriteStdout(data))
                          : (!opts->want_stderr || session->WriteStderr(data));
    if (!ok || session->client_gone()) {
      break;
    }
  }
  shutdown(fd, SHUT_RDWR);
  // The container ended (or the client left): its exit code is the answer.
  int code = 0;
  for (int i = 0; i < 50; ++i) {
    ContainerRun r = ReadRun(run->dir);
    if (r.exited) {
      code = r.exit_code;
      break;
    }
    if (session->client_gone()) {
      break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  session->Finish(code, "command terminated with non-zero exit code");
  if (stdin_thread.joinable()) {
    stdin_thread.join();
  }
  close(fd);
}

void ServePortForward(KubeletContext& ctx, PodWorker& pod, http::Request& req,
                      http::ResponseWriter& w) {
  streams::PortForwardOptions opts;
  opts.pod_name = pod.name();
  opts.pod_uid = pod.uid();
  std::string err;
  auto session = streams::PortForwardSession::Accept(req, w, opts, &err);
  if (!session) {
    return;
  }
  std::string netns = pod.Netns();
  session->Serve([netns](uint16_t port, std::string* error) -> int {
    // Connect from inside the pod's network namespace, so ports bound to the
    // pod's localhost are reachable, as with Kubernetes.
    int self = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int target = open(netns.c_str(), O_RDONLY | O_CLOEXEC);
    if (self < 0 || target < 0 || setns(target, CLONE_NEWNET) != 0) {
      *error = std::string("enter the pod's network namespace: ") + std::strerror(errno);
      if (self >= 0)
        close(self);
      if (target >= 0)
        close(target);
      return -1;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int rc = connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
    int cerr = errno;
    setns(self, CLONE_NEWNET);
    close(self);
    close(target);
    if (rc != 0) {
      close(fd);
      *error = "failed to connect to localhost:" + std::to_string(port) + " inside namespace \"" +
               netns + "\", IPv4: dial tcp4 127.0.0.1:" + std::to_string(port) +
               ": connect: " + std::strerror(cerr) + " ";
      return -1;
    }
    return fd;
  });
}

}  // namespace minik::kubelet
