// `minik version`.

#include "cli/commands.h"

namespace minik::cli {

void AddVersion(CLI::App& app) {
  CLI::App* cmd = app.add_subcommand(
      "version", "Print the version of minik and of the Kubernetes API it serves");
  cmd->callback([] { std::printf("minik version: v0.1.0\nkubernetes API: v1.32\n"); });
}

}  // namespace minik::cli
