// `minik status`: the state of a profile's node and components, as minikube prints it.

#include "cli/commands.h"
#include "cli/kubeconfig.h"
#include "cli/profile.h"
#include "common/json.h"
#include "drivers/driver.h"

namespace minik::cli {

void AddStatus(CLI::App& app, GlobalFlags& g) {
  auto output = std::make_shared<std::string>("text");
  CLI::App* cmd = app.add_subcommand("status", "Show whether a cluster's node and components run");
  cmd->add_option("-o,--output", *output, "Output format: text or json")->capture_default_str();
  cmd->callback([&g, output] {
    ProfileConfig cfg;
    if (!LoadProfile(g.profile, &cfg)) {
      throw Exit{kExitProfileNotFound, "profile \"" + g.profile + "\" not found; `minik start -p " +
                                           g.profile + "` creates it"};
    }
    auto driver = drivers::NewDriver(cfg.driver);
    drivers::NodeStatus st = driver->Status(g.profile, ProfileDir(g.profile));
    std::string host = drivers::NodeStateName(st.host);
    std::string apiserver = "Stopped";
    if (st.host == drivers::NodeState::kRunning) {
      apiserver = ApiServerReady(g.profile, cfg.apiserver_port) ? "Running" : "Starting";
    }
    std::string server = "https://127.0.0.1:" + std::to_string(cfg.apiserver_port);
    std::string kubeconfig = KubeconfigHas(g.profile, server) ? "Configured" : "Misconfigured";
    if (*output == "json") {
      json j = {{"Name", g.profile},        {"Host", host},         {"APIServer", apiserver},
                {"Kubeconfig", kubeconfig}, {"Driver", cfg.driver}, {"Server", server}};
      std::printf("%s\n", j.dump().c_str());
    } else {
      std::printf("%s\ntype: Control Plane\ndriver: %s\nhost: %s\napiserver: %s\nkubeconfig: %s\n",
                  g.profile.c_str(), cfg.driver.c_str(), host.c_str(), apiserver.c_str(),
                  kubeconfig.c_str());
      for (const auto& [name, state] : st.components) {
        if (name != "apiserver") {
          std::printf("%s: %s\n", name.c_str(), state.c_str());
        }
      }
    }
    if (host != "Running" || apiserver != "Running") {
      throw Exit{kExitStopped, ""};
    }
  });
}

}  // namespace minik::cli
