#include "cli/cli.h"

#include <cstdio>

#include "cli/commands.h"
#include "common/error.h"

namespace minik::cli {

int Main(int argc, char** argv) {
  CLI::App app{"minik: a local Kubernetes cluster in one executable", "minik"};
  app.require_subcommand(1);
  GlobalFlags g;
  // Flags given after the subcommand (`minik start -p x`) reach the global option too;
  // subcommands inherit this setting when they are added.
  app.fallthrough();
  app.add_option("-p,--profile", g.profile, "The cluster to act on")->capture_default_str();
  AddStart(app, g);
  AddStop(app, g);
  AddStatus(app, g);
  AddDelete(app, g);
  AddVersion(app);
  AddComponents(app);
  AddEchoServer(app);
  AddImage(app, g);
  AddService(app, g);
  AddTunnel(app, g);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Exit& e) {
    if (!e.message.empty()) {
      std::fprintf(stderr, "X %s\n", e.message.c_str());
    }
    return e.code;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "X %s\n", e.what());
    return 1;
  }
  return 0;
}

}  // namespace minik::cli
