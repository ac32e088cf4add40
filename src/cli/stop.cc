// `minik stop`: stops every process of a profile and keeps its data.

#include "cli/commands.h"
#include "cli/profile.h"
#include "drivers/driver.h"

namespace minik::cli {

void AddStop(CLI::App& app, GlobalFlags& g) {
  CLI::App* cmd =
      app.add_subcommand("stop", "Stop a cluster and keep its state for the next start");
  cmd->callback([&g] {
    ProfileConfig cfg;
    if (!LoadProfile(g.profile, &cfg)) {
      throw Exit{kExitProfileNotFound, "profile \"" + g.profile + "\" not found; `minik start -p " +
                                           g.profile + "` creates it"};
    }
    auto driver = drivers::NewDriver(cfg.driver);
    std::printf("* Stopping \"%s\" ...\n", g.profile.c_str());
    driver->Stop(g.profile, ProfileDir(g.profile));
    std::printf("  stopped; `minik start -p %s` brings it back with its state\n",
                g.profile.c_str());
  });
}

}  // namespace minik::cli
