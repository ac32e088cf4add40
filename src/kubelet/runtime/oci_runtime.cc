// An OCI runtime binary (runc or crun) driven through its command line.

#include <signal.h>

#include "common/error.h"
#include "common/exec.h"
#include "common/json.h"
#include "kubelet/runtime/runtime.h"

namespace minik::kubelet {
namespace {

class OciRuntime : public Runtime {
 public:
  OciRuntime(std::string binary, std::string name, std::string root)
      : binary_(std::move(binary)), name_(std::move(name)), root_(std::move(root)) {}

  std::string name() const override { return name_; }

  std::string Version() const override {
    exec::Command c;
    c.argv = {binary_, "--version"};
    std::string out = exec::Run(c).out;
    auto nl = out.find('\n');
    std::string first = out.substr(0, nl);
    auto sp = first.rfind(' ');
    return name_ + "://" + (sp == std::string::npos ? first : first.substr(sp + 1));
  }

  void Start(const std::string& id) override { Run({"start", id}); }

  void Kill(const std::string& id, int signal, bool all) override {
    std::vector<std::string> a = {"kill"};
    if (all) {
      a.push_back("--all");
    }
    a.push_back(id);
    a.push_back(std::to_string(signal));
    Run(a);
  }

  void Delete(const std::string& id, bool force) override {
    std::vector<std::string> a = {"delete"};
    if (force) {
      a.push_back("--force");
    }
    a.push_back(id);
    Run(a);
  }

  ContainerState State(const std::string& id) const override {
    exec::Command c;
    c.argv = {binary_, "--root", root_, "state", id};
    exec::Result r = exec::Run(c);
    ContainerState s;
    s.id = id;
    if (!r.ok()) {
      return s;
    }
    try {
      json j = json::parse(r.out);
      s.status = j.value("status", "");
      s.pid = j.value("pid", 0);
      s.bundle = j.value("bundle", "");
    } catch (const json::exception&) {
    }
    return s;
  }

  std::vector<ContainerState> List() const override {
    exec::Command c;
    c.argv = {binary_, "--root", root_, "list", "--format", "json"};
    exec::Result r = exec::Run(c);
    std::vector<ContainerState> out;
    if (!r.ok()) {
      return out;
    }
    try {
      json j = json::parse(r.out);
      if (j.is_array()) {
        for (const auto& e : j) {
          out.push_back(
              {e.value("id", ""), e.value("status", ""), e.value("pid", 0), e.value("bundle", "")});
        }
      }
    } catch (const json::exception&) {
    }
    return out;
  }

  std::vector<std::string> CreateArgv(const std::string& id, const std::string& bundle,
                                      const std::string& pid_file) const override {
    return {binary_, "--root", root_, "create", "--bundle", bundle, "--pid-file", pid_file, id};
  }

  std::vector<std::string> ExecArgv(const std::string& id, const std::string& process_json,
                                    bool tty) const override {
    std::vector<std::string> a = {binary_, "--root", root_, "exec", "--process", process_json};
    if (tty) {
      a.push_back("--tty");
    }
    a.push_back(id);
    return a;
  }

 private:
  void Run(std::vector<std::string> args) const {
    exec::Command c;
    c.argv = {binary_, "--root", root_};
    c.argv.insert(c.argv.end(), args.begin(), args.end());
    exec::Result r = exec::Run(c);
    if (!r.ok()) {
      // Name the operation and the container as `runc start web-7f9c: exit 1: ...`.
      exec::Command shown;
      shown.argv = {name_, args[0], args.back()};
      throw Error(exec::Describe(shown, r));
    }
  }

  std::string binary_, name_, root_;
};

}  // namespace

std::unique_ptr<Runtime> NewOciRuntime(const std::string& name, const std::string& root) {
  std::vector<std::string> candidates =
      name.empty() ? std::vector<std::string>{"runc", "crun"} : std::vector<std::string>{name};
  for (const auto& n : candidates) {
    std::string path = exec::LookPath(n);
    if (path.empty()) {
      for (const char* dir : {"/usr/sbin/", "/usr/bin/", "/usr/local/sbin/", "/usr/local/bin/"}) {
        if (!exec::LookPath(dir + n).empty()) {
          path = dir + n;
          break;
        }
      }
    }
    if (!path.empty()) {
      return std::make_unique<OciRuntime>(path, n, root);
    }
  }
  throw Error("no OCI runtime found (looked for " +
              (name.empty() ? std::string("runc, crun") : name) +
              "); install one: apt-get install runc");
}

}  // namespace minik::kubelet
