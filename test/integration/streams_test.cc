// The stream protocols against real clients: minik's HTTPS server on port 0
// with a handler built on ExecSession (running real processes) and
// PortForwardSession (dialing a TCP echo server on loopback), driven by
// kubectl 1.32 (WebSocket v5 exec, SPDY exec fallback, SPDY tunneled in
// WebSocket and plain SPDY port-forward) and by the official Python client
// (WebSocket v4 exec and port-forward). The handler also answers the few API
// reads kubectl makes first (discovery and the pod).

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <mutex>
#include <regex>
#include <thread>

#include "common/base64.h"
#include "common/exec.h"
#include "common/fs.h"
#include "common/http.h"
#include "common/log.h"
#include "common/tls.h"
#include "kubelet/streams/portforward.h"
#include "kubelet/streams/remotecommand.h"
#include "kubelet/streams/websocket.h"
#include "testing.h"

extern char** environ;

using namespace minik;
using namespace minik::streams;
using namespace std::chrono_literals;

namespace {

// A TCP echo server on 127.0.0.1, one thread per connection.
class EchoServer {
 public:
  EchoServer() {
    fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    REQUIRE(::listen(fd_, 64) == 0);
    socklen_t len = sizeof a;
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    accept_ = std::thread([this] {
      for (;;) {
        int c = ::accept(fd_, nullptr, nullptr);
        if (c < 0) {
          return;
        }
        std::lock_guard lock(mu_);
        conns_.emplace_back([c] {
          char buf[16384];
          ssize_t n;
          while ((n = ::read(c, buf, sizeof buf)) > 0) {
            if (::send(c, buf, static_cast<size_t>(n), MSG_NOSIGNAL) != n) {
              break;
            }
          }
          ::close(c);
        });
      }
    });
  }
  ~EchoServer() {
    ::shutdown(fd_, SHUT_RDWR);
    ::close(fd_);
    accept_.join();
    std::lock_guard lock(mu_);
    for (std::thread& t : conns_) {
      t.join();
    }
  }
  int Dial() const { return Connect(port_); }

  static int Connect(uint16_t port) {
    int s = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (::connect(s, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      ::close(s);
      return -1;
    }
    return s;
  }

 private:
  int fd_;
  uint16_t port_ = 0;
  std::thread accept_;
  std::mutex mu_;
  std::vector<std::thread> conns_;
};

bool WriteAll(int fd, std::string_view data) {
  while (!data.empty()) {
    ssize_t n = ::write(fd, data.data(), data.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n <= 0) {
      return false;
    }
    data.remove_prefix(static_cast<size_t>(n));
  }
  return true;
}

// Runs `argv` in `dir` with pipes for its standard streams, as a kubelet
// would run a command in a container, and plumbs them to the session.
void RunInSession(ExecSession& s, const std::vector<std::string>& argv, const std::string& dir) {
  int in[2], out[2], err[2];
  REQUIRE(::pipe2(in, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(out, O_CLOEXEC) == 0);
  REQUIRE(::pipe2(err, O_CLOEXEC) == 0);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  posix_spawn_file_actions_adddup2(&fa, err[1], 2);
  posix_spawn_file_actions_addchdir_np(&fa, dir.c_str());
  std::vector<char*> args;
  for (const std::string& a : argv) {
    args.push_back(const_cast<char*>(a.c_str()));
  }
  args.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawnp(&pid, args[0], &fa, nullptr, args.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  ::close(in[0]);
  ::close(out[1]);
  ::close(err[1]);
  if (rc != 0) {
    ::close(in[1]);
    ::close(out[0]);
    ::close(err[0]);
    s.FinishWithError(
        fmt::format("error executing command in container: exec {}: {}", argv[0], strerror(rc)));
    return;
  }
  std::thread in_pump([&] {
    std::string data;
    while (s.ReadStdin(&data)) {
      if (!WriteAll(in[1], data)) {
        break;
      }
    }
    ::close(in[1]);
  });
  auto out_pump = [&](int fd, bool to_stderr) {
    return std::thread([&s, fd, to_stderr] {
      char buf[32768];
      ssize_t n;
      while ((n = ::read(fd, buf, sizeof buf)) > 0) {
        std::string_view chunk(buf, static_cast<size_t>(n));
        if (!(to_stderr ? s.WriteStderr(chunk) : s.WriteStdout(chunk))) {
          break;
        }
      }
      ::close(fd);
    });
  };
  std::thread o = out_pump(out[0], false);
  std::thread e = out_pump(err[0], true);
  o.join();
  e.join();
  int status = 0;
  ::waitpid(pid, &status, 0);
  int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  s.Finish(code, ExitCodeMessage(argv, code));
  in_pump.join();
}

const char* kPod =
    R"({"kind":"Pod","apiVersion":"v1","metadata":{"name":"pod1","namespace":"default",
  "uid":"uid-1","resourceVersion":"1","creationTimestamp":"2024-01-01T00:00:00Z"},
  "spec":{"containers":[{"name":"main","image":"busybox"}]},
  "status":{"phase":"Running","containerStatuses":[{"name":"main","ready":true,"restartCount":0,
  "image":"busybox","imageID":"","state":{"running":{"startedAt":"2024-01-01T00:00:00Z"}}}]}})";

const char* kResources = R"({"kind":"APIResourceList","apiVersion":"v1","groupVersion":"v1",
  "resources":[{"name":"pods","singularName":"pod","namespaced":true,"kind":"Pod",
  "verbs":["get","list"],"shortNames":["po"]},
  {"name":"pods/exec","singularName":"","namespaced":true,"kind":"PodExecOptions","verbs":["create","get"]},
  {"name":"pods/attach","singularName":"","namespaced":true,"kind":"PodAttachOptions","verbs":["create","get"]},
  {"name":"pods/portforward","singularName":"","namespaced":true,"kind":"PodPortForwardOptions",
  "verbs":["create","get"]}]})";

// The server under test and what it saw.
class StreamServer {
 public:
  StreamServer() {
    fs::MakeDirs(dir_.path() + "/work");
    tls::KeyPair ca = tls::GenerateCA("streams-test-ca");
    tls::CertRequest serving;
    serving.common_name = "127.0.0.1";
    serving.ip_addresses = {"127.0.0.1"};
    serving.dns_names = {"localhost"};
    serving.server = true;
    tls::KeyPair cert = tls::IssueCert(ca, serving);
    tls::CertRequest admin;
    admin.common_name = "test-admin";
    admin.organizations = {"system:masters"};
    client_ = tls::IssueCert(ca, admin);
    ca_ = ca.cert_pem;

    http::ServerOptions opts;
    opts.cert_pem = cert.cert_pem;
    opts.key_pem = cert.key_pem;
    opts.client_ca_pem = ca.cert_pem;
    server_ = std::make_unique<http::Server>(
        opts, [this](http::Request& req, http::ResponseWriter& w) { Handle(req, w); });
    port_ = server_->Start();

    fs::WriteFileAtomic(path("ca.crt"), ca_);
    fs::WriteFileAtomic(path("client.crt"), client_.cert_pem);
    fs::WriteFileAtomic(path("client.key"), client_.key_pem, 0600);
    nlohmann::json kubeconfig = {
        {"apiVersion", "v1"},
        {"kind", "Config"},
        {"clusters",
         {{{"name", "test"},
           {"cluster",
            {{"server", server()}, {"certificate-authority-data", base64::Encode(ca_)}}}}}},
        {"users",
         {{{"name", "admin"},
           {"user",
            {{"client-certificate-data", base64::Encode(client_.cert_pem)},
             {"client-key-data", base64::Encode(client_.key_pem)}}}}}},
        {"contexts",
         {{{"name", "test"},
           {"context", {{"cluster", "test"}, {"user", "admin"}, {"namespace", "default"}}}}}},
        {"current-context", "test"}};
    fs::WriteFileAtomic(path("kubeconfig"), kubeconfig.dump(2));
  }
  ~StreamServer() { server_->Stop(); }

  std::string server() const { return fmt::format("https://127.0.0.1:{}", port_); }
  std::string path(const std::string& name) const { return dir_.path() + "/" + name; }

  // "exec sh spdy v5.channel.k8s.io": one line per session, in order.
  std::vector<std::string> sessions() {
    std::lock_guard lock(mu_);
    return sessions_;
  }
  std::string LastSession() {
    std::lock_guard lock(mu_);
    return sessions_.empty() ? "" : sessions_.back();
  }

 private:
  void Record(const std::string& line) {
    std::lock_guard lock(mu_);
    sessions_.push_back(line);
  }

  void Handle(http::Request& req, http::ResponseWriter& w) {
    http::Headers json = {{"Content-Type", "application/json"}};
    const std::string& p = req.path;
    if (p == "/version") {
      w.Send(200, json, R"({"major":"1","minor":"32","gitVersion":"v1.32.0"})");
    } else if (p == "/api") {
      w.Send(200, json, R"({"kind":"APIVersions","versions":["v1"]})");
    } else if (p == "/apis") {
      w.Send(200, json, R"({"kind":"APIGroupList","apiVersion":"v1","groups":[]})");
    } else if (p == "/api/v1") {
      w.Send(200, json, kResources);
    } else if (p == "/api/v1/namespaces/default/pods/pod1") {
      w.Send(200, json, kPod);
    } else if (p == "/api/v1/namespaces/default/pods/pod1/exec" ||
               p == "/api/v1/namespaces/default/pods/pod1/attach") {
      ServeExec(req, w, p.ends_with("/attach"));
    } else if (p == "/api/v1/namespaces/default/pods/pod1/portforward") {
      ServePortForward(req, w);
    } else {
      w.Send(
          404, json,
          R"({"kind":"Status","apiVersion":"v1","status":"Failure","reason":"NotFound","code":404})");
    }
  }

  void ServeExec(http::Request& req, http::ResponseWriter& w, bool attach) {
    std::string error;
    std::optional<ExecOptions> opts = ParseExecOptions(req, &error);
    if (!opts) {
      w.Send(400, {{"Content-Type", "text/plain"}}, error);
      return;
    }
    std::vector<std::string> argv;
    auto [b, e] = req.query.equal_range("command");
    for (auto it = b; it != e; ++it) {
      argv.push_back(it->second);
    }
    if (attach) {
      argv = {"cat"};
    }
    std::unique_ptr<ExecSession> s = ExecSession::Accept(req, w, *opts, &error);
    if (!s) {
      Record("exec-failed " + error);
      return;
    }
    Record(fmt::format("{} {} {} {}", attach ? "attach" : "exec", argv.empty() ? "" : argv[0],
                       s->transport(), s->protocol()));
    if (argv.empty()) {
      s->FinishWithError("no command");
    } else if (argv[0] == "report-resize") {
      TerminalSize size;
      if (s->NextResize(&size)) {
        s->WriteStdout(fmt::format("{}x{}\n", size.width, size.height));
      }
      s->Finish(0);
    } else if (argv[0] == "fail") {
      s->FinishWithError("container \"main\" is not running");
    } else {
      RunInSession(*s, argv, dir_.path() + "/work");
    }
  }

  void ServePortForward(http::Request& req, http::ResponseWriter& w) {
    std::string error;
    PortForwardOptions opts;
    opts.pod_name = "pod1";
    opts.pod_uid = "uid-1";
    std::unique_ptr<PortForwardSession> s = PortForwardSession::Accept(req, w, opts, &error);
    if (!s) {
      Record("portforward-failed " + error);
      return;
    }
    Record(fmt::format("portforward {} {}", s->transport(), s->protocol()));
    s->Serve([this](uint16_t port, std::string* why) {
      if (port != 80) {
        *why = fmt::format(
            "failed to connect to localhost:{} inside namespace \"pod1\": "
            "connection refused",
            port);
        return -1;
      }
      return echo_.Dial();
    });
  }

  testing::TempDir dir_;
  EchoServer echo_;
  std::string ca_;
  tls::KeyPair client_;
  std::unique_ptr<http::Server> server_;
  uint16_t port_ = 0;
  std::mutex mu_;
  std::vector<std::string> sessions_;
};

// One server for the whole run; stopped and its directory removed at exit.
StreamServer& Server() {
  // Writes to a pipe whose process exited must fail, not kill the test.
  static const bool ignore_sigpipe = (::signal(SIGPIPE, SIG_IGN), true);
  (void)ignore_sigpipe;
  if (std::getenv("MINIK_TEST_DEBUG")) {
    log::SetLevel(log::Level::kDebug);
  }
  static StreamServer server;
  return server;
}

std::string Kubectl() {
  const char* pinned = "/usr/lib/google-cloud-sdk/bin/kubectl.1.32";
  if (fs::Exists(pinned)) {
    return pinned;
  }
  return exec::LookPath("kubectl");
}

// Runs kubectl against the test server; `spdy` turns its WebSocket paths off.
exec::Result RunKubectl(std::vector<std::string> args, const std::string& input = "",
                        bool spdy = false) {
  StreamServer& s = Server();
  exec::Command cmd;
  cmd.argv = {
      "timeout",           "60", Kubectl(), "--kubeconfig", s.path("kubeconfig"), "--cache-dir",
      s.path("kube-cache")};
  cmd.argv.insert(cmd.argv.end(), args.begin(), args.end());
  cmd.stdin_data = input;
  cmd.extra_env = {{"HOME", s.path("")}};
  if (spdy) {
    cmd.extra_env["KUBECTL_REMOTE_COMMAND_WEBSOCKETS"] = "false";
    cmd.extra_env["KUBECTL_PORT_FORWARD_WEBSOCKETS"] = "false";
  }
  return exec::Run(cmd);
}

nlohmann::json RunPython(const std::string& mode) {
  StreamServer& s = Server();
  std::string script;
  if (const char* src = std::getenv("MINIK_SOURCE_DIR")) {
    script = std::string(src) + "/test/integration/streams_client.py";
  } else {
    script = (std::filesystem::path(__FILE__).parent_path() / "streams_client.py").string();
  }
  nlohmann::json cfg = {{"host", s.server()},
                        {"ca", s.path("ca.crt")},
                        {"cert", s.path("client.crt")},
                        {"key", s.path("client.key")}};
  exec::Command cmd;
  cmd.argv = {"timeout", "60", "/usr/bin/python3", script, cfg.dump(), mode};
  exec::Result r = exec::Run(cmd);
  INFO(exec::Describe(cmd, r));
  REQUIRE(r.ok());
  return nlohmann::json::parse(r.out);
}

// A running `kubectl port-forward` and the local port it listens on.
class PortForwardProcess {
 public:
  PortForwardProcess(const std::string& remote, bool spdy) {
    StreamServer& s = Server();
    log_ = s.path(fmt::format("port-forward-{}.log", counter_++));
    std::vector<std::string> argv = {Kubectl(),     "--kubeconfig",       s.path("kubeconfig"),
                                     "--cache-dir", s.path("kube-cache"), "port-forward",
                                     "pod/pod1",    ":" + remote};
    std::vector<char*> args;
    for (std::string& a : argv) {
      args.push_back(a.data());
    }
    args.push_back(nullptr);
    std::vector<std::string> env_strings;
    for (char** e = environ; *e; ++e) {
      env_strings.emplace_back(*e);
    }
    env_strings.push_back("HOME=" + s.path(""));
    if (spdy) {
      env_strings.push_back("KUBECTL_PORT_FORWARD_WEBSOCKETS=false");
    }
    std::vector<char*> env;
    for (std::string& e : env_strings) {
      env.push_back(e.data());
    }
    env.push_back(nullptr);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log_.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    REQUIRE(posix_spawn(&pid_, args[0], &fa, nullptr, args.data(), env.data()) == 0);
    posix_spawn_file_actions_destroy(&fa);
    std::regex forwarding(R"(Forwarding from 127\.0\.0\.1:(\d+) ->)");
    auto deadline = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < deadline) {
      std::smatch m;
      std::string text = fs::ReadFile(log_);
      if (std::regex_search(text, m, forwarding)) {
        local_port_ = static_cast<uint16_t>(std::stoi(m[1]));
        return;
      }
      REQUIRE(Running());
      std::this_thread::sleep_for(50ms);
    }
    FAIL("kubectl port-forward did not start: " << fs::ReadFile(log_));
  }
  ~PortForwardProcess() {
    if (Running()) {
      ::kill(pid_, SIGTERM);
      ::waitpid(pid_, nullptr, 0);
    }
  }
  bool Running() {
    if (exited_) {
      return false;
    }
    if (::waitpid(pid_, nullptr, WNOHANG) == pid_) {
      exited_ = true;
    }
    return !exited_;
  }
  // Waits up to `timeout` for kubectl to exit.
  bool WaitExit(std::chrono::milliseconds timeout) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (Running() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(50ms);
    }
    return !Running();
  }
  uint16_t local_port() const { return local_port_; }
  std::string log() const { return fs::ReadFile(log_); }

 private:
  static inline int counter_ = 0;
  std::string log_;
  pid_t pid_ = -1;
  bool exited_ = false;
  uint16_t local_port_ = 0;
};

// Sends `data` through the forwarded port, half-closes, and returns what came back.
std::string EchoThrough(uint16_t port, const std::string& data) {
  int s = EchoServer::Connect(port);
  if (s < 0) {
    return "<connect failed>";
  }
  std::thread writer([&] {
    WriteAll(s, data);
    ::shutdown(s, SHUT_WR);
  });
  std::string got;
  char buf[65536];
  ssize_t n;
  while ((n = ::read(s, buf, sizeof buf)) > 0) {
    got.append(buf, static_cast<size_t>(n));
  }
  writer.join();
  ::close(s);
  return got;
}

std::string RandomBytes(size_t n, unsigned seed) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (char& c : s) {
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c = static_cast<char>(x);
  }
  return s;
}

}  // namespace

TEST_CASE("kubectl exec over WebSocket v5: output, stdin, exit codes", "[streams][kubectl]") {
  if (Kubectl().empty()) {
    WARN("kubectl is not installed; skipping");
    return;
  }
  exec::Result r = RunKubectl({"exec", "pod1", "--", "echo", "hello", "world"});
  INFO(r.err);
  CHECK(r.exit_code == 0);
  CHECK(r.out == "hello world\n");
  CHECK(Server().LastSession() == "exec echo websocket v5.channel.k8s.io");

  r = RunKubectl({"exec", "pod1", "--", "sh", "-c", "echo out; echo err >&2; exit 3"});
  CHECK(r.exit_code == 3);
  CHECK(r.out == "out\n");
  CHECK_THAT(r.err,
             Catch::Contains("err\n") && Catch::Contains("command terminated with exit code 3"));

  // stdin to EOF: kubectl sends the v5 close signal, cat sees EOF and exits.
  std::string input = "line one\nline two\n";
  r = RunKubectl({"exec", "-i", "pod1", "--", "cat"}, input);
  CHECK(r.exit_code == 0);
  CHECK(r.out == input);

  // Megabytes of binary stdin and back, as `kubectl cp` moves tar streams.
  std::string big = RandomBytes(3 << 20, 7);
  r = RunKubectl({"exec", "-i", "pod1", "--", "cat"}, big);
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == big.size());
  CHECK(r.out == big);

  r = RunKubectl({"exec", "pod1", "--", "fail"});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("Internal error occurred: container \"main\" is not running"));

  r = RunKubectl({"attach", "-i", "pod1"}, "via attach\n");
  CHECK(r.exit_code == 0);
  CHECK(r.out == "via attach\n");
  CHECK(Server().LastSession() == "attach cat websocket v5.channel.k8s.io");
}

TEST_CASE("kubectl exec -t: a terminal and its size", "[streams][kubectl]") {
  if (Kubectl().empty() || exec::LookPath("script").empty()) {
    WARN("kubectl or script is not installed; skipping");
    return;
  }
  // `script` gives kubectl a terminal; kubectl sends its size on the resize
  // channel (v5) or stream (SPDY) when the session starts.
  StreamServer& s = Server();
  for (bool spdy : {false, true}) {
    INFO((spdy ? "SPDY" : "WebSocket"));
    std::string line = fmt::format(
        "stty cols 132 rows 43; {}{} --kubeconfig {} --cache-dir {} exec -it pod1 -- report-resize",
        spdy ? "KUBECTL_REMOTE_COMMAND_WEBSOCKETS=false " : "", Kubectl(), s.path("kubeconfig"),
        s.path("kube-cache"));
    exec::Command cmd;
    cmd.argv = {"timeout", "60", "script", "-qec", line, "/dev/null"};
    cmd.extra_env = {{"HOME", s.path("")}};
    exec::Result r = exec::Run(cmd);
    INFO(exec::Describe(cmd, r));
    CHECK(r.exit_code == 0);
    CHECK_THAT(r.out, Catch::Contains("132x43"));
    CHECK(Server().LastSession() == (spdy ? "exec report-resize spdy v5.channel.k8s.io"
                                          : "exec report-resize websocket v5.channel.k8s.io"));
  }
}

TEST_CASE("kubectl cp both ways (exec with tar over stdin and stdout)", "[streams][kubectl]") {
  if (Kubectl().empty()) {
    WARN("kubectl is not installed; skipping");
    return;
  }
  // The "container" is the test's work directory on this host.
  StreamServer& s = Server();
  std::string data = RandomBytes(1 << 20, 5);
  fs::WriteFileAtomic(s.path("local.bin"), data);
  std::string remote = s.path("work/copied.bin");
  exec::Result r = RunKubectl({"cp", s.path("local.bin"), "pod1:" + remote});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fs::ReadFile(remote) == data);
  r = RunKubectl({"cp", "pod1:" + remote, s.path("back.bin")});
  INFO(r.err);
  REQUIRE(r.exit_code == 0);
  CHECK(fs::ReadFile(s.path("back.bin")) == data);
}

TEST_CASE("kubectl exec over SPDY (its fallback)", "[streams][kubectl]") {
  if (Kubectl().empty()) {
    WARN("kubectl is not installed; skipping");
    return;
  }
  exec::Result r = RunKubectl({"exec", "pod1", "--", "sh", "-c", "echo spdy; exit 42"}, "", true);
  INFO(r.err);
  CHECK(r.exit_code == 42);
  CHECK(r.out == "spdy\n");
  CHECK_THAT(r.err, Catch::Contains("command terminated with exit code 42"));
  CHECK(Server().LastSession() == "exec sh spdy v5.channel.k8s.io");

  std::string big = RandomBytes(2 << 20, 11);
  r = RunKubectl({"exec", "-i", "pod1", "--", "cat"}, big, true);
  CHECK(r.exit_code == 0);
  CHECK(r.out.size() == big.size());
  CHECK(r.out == big);

  r = RunKubectl({"exec", "pod1", "--", "sh", "-c", "echo to-stderr >&2"}, "", true);
  CHECK(r.exit_code == 0);
  CHECK(r.err == "to-stderr\n");
}

TEST_CASE("kubectl port-forward: SPDY in WebSocket, and plain SPDY", "[streams][kubectl]") {
  if (Kubectl().empty()) {
    WARN("kubectl is not installed; skipping");
    return;
  }
  for (bool spdy : {false, true}) {
    INFO((spdy ? "plain SPDY" : "SPDY tunneled in WebSocket"));
    PortForwardProcess pf("80", spdy);
    CHECK(Server().LastSession() == (spdy ? "portforward spdy portforward.k8s.io"
                                          : "portforward websocket+spdy portforward.k8s.io"));
    CHECK(EchoThrough(pf.local_port(), "hello through port-forward") ==
          "hello through port-forward");
    // Several connections at once, each with its own data.
    std::vector<std::thread> clients;
    std::vector<std::string> results(6);
    for (int i = 0; i < 6; ++i) {
      clients.emplace_back([&, i] {
        results[i] = EchoThrough(pf.local_port(), RandomBytes(200'000 + i * 1000, i + 100));
      });
    }
    for (std::thread& t : clients) {
      t.join();
    }
    for (int i = 0; i < 6; ++i) {
      CHECK(results[i] == RandomBytes(200'000 + i * 1000, i + 100));
    }
    CHECK(pf.Running());
  }

  // A port nothing listens on: the error reaches kubectl on the error stream.
  PortForwardProcess refused("81", false);
  EchoThrough(refused.local_port(), "x");
  CHECK(refused.WaitExit(20s));
  CHECK_THAT(refused.log(),
             Catch::Contains("error forwarding port 81 to pod pod1, uid uid-1: failed to connect"));
}

TEST_CASE("Python client: exec and port-forward over WebSocket v4", "[streams][python]") {
  nlohmann::json r = RunPython("exit-code");
  CHECK(r["returncode"] == 3);
  CHECK(r["stdout"] == "to-out\n");
  CHECK(r["stderr"] == "to-err\n");
  CHECK(Server().LastSession() == "exec sh websocket v4.channel.k8s.io");

  r = RunPython("stdin");
  CHECK(r["returncode"] == 0);
  CHECK(r["stdout"] == "hello from python\n");

  r = RunPython("resize");
  CHECK(r["returncode"] == 0);
  CHECK(r["stdout"] == "132x43\n");

  r = RunPython("portforward");
  CHECK(r["echo"] == "ping over python");
  CHECK(r["error"].is_null());
  CHECK(Server().LastSession() == "portforward websocket v4.channel.k8s.io");

  r = RunPython("portforward-refused");
  CHECK(r["error"] ==
        "error forwarding port 81 to pod pod1, uid uid-1: failed to connect to localhost:81 "
        "inside namespace \"pod1\": connection refused");
}
