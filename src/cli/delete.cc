// `minik delete`: removes a profile, its processes, its data and its kubeconfig entries.

#include "cli/commands.h"
#include "cli/kubeconfig.h"
#include "cli/profile.h"
#include "common/fs.h"
#include "drivers/driver.h"

namespace minik::cli {

namespace {

void DeleteProfile(const std::string& profile) {
  ProfileConfig cfg;
  std::string dir = ProfileDir(profile);
  if (LoadProfile(profile, &cfg)) {
    drivers::NewDriver(cfg.driver)->Delete(profile, dir);
  }
  RemoveKubeconfig(profile);
  fs::RemoveAll(dir);
  std::printf("* Deleted profile \"%s\"\n", profile.c_str());
}

}  // namespace

void AddDelete(CLI::App& app, GlobalFlags& g) {
  auto all = std::make_shared<bool>(false);
  CLI::App* cmd =
      app.add_subcommand("delete", "Delete a cluster with all its data and kubeconfig entries");
  cmd->add_flag("--all", *all, "Delete every profile");
  cmd->callback([&g, all] {
    if (*all) {
      for (const auto& p : ListProfiles()) {
        DeleteProfile(p);
      }
      return;
    }
    ProfileConfig cfg;
    if (!LoadProfile(g.profile, &cfg) && !fs::Exists(ProfileDir(g.profile))) {
      RemoveKubeconfig(g.profile);
      std::printf("* Profile \"%s\" does not exist; nothing to delete\n", g.profile.c_str());
      return;
    }
    DeleteProfile(g.profile);
  });
}

}  // namespace minik::cli
