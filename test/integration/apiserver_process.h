#pragma once
// Starts the real `minik apiserver` binary on port 0 in a temp dir, with a CA,
// a serving certificate and an admin client certificate, for integration tests.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "common/exec.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "common/tls.h"
#include "node/node_agent.h"
#include "testing.h"

namespace minik::testing {

class ApiServerProcess {
 public:
  explicit ApiServerProcess(std::string store = "sqlite", std::vector<std::string> extra = {})
      : store_(std::move(store)), extra_(std::move(extra)) {
    certs_ = dir_.path() + "/certs";
    fs::MakeDirs(certs_);
    tls::KeyPair ca = tls::GenerateCA("test-ca");
    fs::WriteFileAtomic(certs_ + "/ca.crt", ca.cert_pem);
    fs::WriteFileAtomic(certs_ + "/ca.key", ca.key_pem, 0600);
    node::EnsureServingCert(certs_, "127.0.0.1");
    tls::CertRequest req;
    req.common_name = "test-admin";
    req.organizations = {"system:masters"};
    admin_ = tls::IssueCert(ca, req);
    ca_ = ca.cert_pem;
  }
  ~ApiServerProcess() { Kill(SIGKILL); }

  void Start() {
    std::string port_file = dir_.path() + "/port";
    ::unlink(port_file.c_str());
    exec::Spawn s;
    s.argv = {
        Bin(),    "apiserver",           "--cert-dir", certs_, "--data-dir",  dir_.path() + "/data",
        "--port", std::to_string(port_), "--store",    store_, "--port-file", port_file};
    s.argv.insert(s.argv.end(), extra_.begin(), extra_.end());
    s.log_file = dir_.path() + "/apiserver.log";
    s.die_with_parent = true;
    pid_ = exec::StartProcess(s);
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      if (fs::Exists(port_file)) {
        try {
          port_ = static_cast<uint16_t>(std::stoi(fs::ReadFile(port_file)));
          if (Client().Do("GET", "/readyz").status == 200) {
            return;
          }
        } catch (const std::exception&) {
        }
      }
      int status;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = 0;
        throw std::runtime_error("apiserver exited at start: " +
                                 fs::ReadFile(dir_.path() + "/apiserver.log"));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    throw std::runtime_error("apiserver did not become ready");
  }

  void Kill(int sig) {
    if (pid_ > 0) {
      ::kill(pid_, sig);
      int status;
      waitpid(pid_, &status, 0);
      pid_ = 0;
    }
  }

  bool Alive() {
    int status;
    return pid_ > 0 && waitpid(pid_, &status, WNOHANG) == 0;
  }

  // Resident memory of the server in KiB.
  long RssKiB() {
    std::string status = fs::ReadFile("/proc/" + std::to_string(pid_) + "/status");
    auto p = status.find("VmRSS:");
    return p == std::string::npos ? 0 : std::stol(status.substr(p + 6));
  }

  http::Client Client(bool authenticated = true) const {
    http::ClientOptions o;
    o.ca_pem = ca_;
    if (authenticated) {
      o.cert_pem = admin_.cert_pem;
      o.key_pem = admin_.key_pem;
    }
    o.timeout_ms = 30000;
    return http::Client("https://127.0.0.1:" + std::to_string(port_), o);
  }

  uint16_t port() const { return port_; }
  const std::string& log_path() const { return log_; }
  static std::string Bin() {
    const char* b = std::getenv("MINIK_BIN");
    return b ? b : "minik";
  }

 private:
  TempDir dir_;
  std::string store_;
  std::vector<std::string> extra_;
  std::string certs_;
  std::string ca_;
  tls::KeyPair admin_;
  std::string log_;
  int pid_ = 0;
  uint16_t port_ = 0;
};

}  // namespace minik::testing
