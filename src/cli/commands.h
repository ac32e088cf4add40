#pragma once
// The `minik` commands, one file each; `cli.cc` wires them to CLI11.

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

namespace minik::cli {

struct GlobalFlags {
  std::string profile = "minik";
};

void AddStart(CLI::App& app, GlobalFlags& g);
void AddStop(CLI::App& app, GlobalFlags& g);
void AddStatus(CLI::App& app, GlobalFlags& g);
void AddDelete(CLI::App& app, GlobalFlags& g);
void AddVersion(CLI::App& app);
void AddComponents(CLI::App& app);
void AddEchoServer(CLI::App& app);
void AddImage(CLI::App& app, GlobalFlags& g);
void AddService(CLI::App& app, GlobalFlags& g);
void AddTunnel(CLI::App& app, GlobalFlags& g);

// An ordered list of named steps, each printed as it runs and undone (in
// reverse) when a later one fails, unless the user keeps the wreck.
class Steps {
 public:
  struct Step {
    std::string title;
    std::function<void()> run;
    std::function<void()> undo;
  };
  void Add(std::string title, std::function<void()> run, std::function<void()> undo = {});
  // Runs every step; on failure undoes the finished ones (unless keep) and rethrows.
  void Run(bool keep_on_failure);

 private:
  std::vector<Step> steps_;
};

// Asks the API server's /readyz over HTTPS with the profile's credentials.
bool ApiServerReady(const std::string& profile, uint16_t port, std::string* why = nullptr);

// Exit codes as minikube uses them for status.
constexpr int kExitStopped = 7;
constexpr int kExitProfileNotFound = 85;

// Thrown by a command to end with a message and exit code.
struct Exit {
  int code;
  std::string message;
};

}  // namespace minik::cli
