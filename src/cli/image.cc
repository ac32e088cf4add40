// `minik image load|ls|rm|pull`: the images of a profile's node, in the store
// its kubelet runs pods from.

#include <stdlib.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <iterator>
#include <memory>
#include <optional>
#include <tuple>

#include "cli/commands.h"
#include "cli/profile.h"
#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "kubelet/images/image_store.h"

namespace minik::cli {
namespace {

namespace images = kubelet::images;

// With the native driver the node's files live under the profile
// (`<profile>/node`), and its kubelet keeps images in `images/` there.
std::string NodeImageStoreDir(const std::string& profile) {
  return ProfileDir(profile) + "/node/images";
}

images::ImageStore OpenStore(const GlobalFlags& g) {
  ProfileConfig cfg;
  if (!LoadProfile(g.profile, &cfg)) {
    throw Exit{kExitProfileNotFound, "profile \"" + g.profile + "\" not found; `minik start -p " +
                                         g.profile + "` creates it"};
  }
  if (cfg.driver != "native") {
    throw Exit{1, "`minik image` works with the native driver only for now (profile \"" +
                      g.profile + "\" uses " + cfg.driver + ")"};
  }
  return images::ImageStore(NodeImageStoreDir(g.profile));
}

void Print(const std::string& line) {
  std::printf("%s\n", line.c_str());
}

// Sizes as `docker images` shows them: three significant digits, 1000-based units.
std::string HumanSize(int64_t bytes) {
  static const char* kUnits[] = {"B", "kB", "MB", "GB", "TB", "PB"};
  double v = static_cast<double>(bytes);
  size_t u = 0;
  while (v >= 1000 && u + 1 < std::size(kUnits)) {
    v /= 1000;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g%s", v, kUnits[u]);
  return buf;
}

std::string ShortId(const std::string& id) {
  return id.substr(id.find(':') + 1, 12);
}

struct TempDir {
  TempDir() {
    std::string tmpl = (std::filesystem::temp_directory_path() / "minik-image-XXXXXX").string();
    if (!mkdtemp(tmpl.data())) {
      throw SystemError("mkdtemp '" + tmpl + "'", errno);
    }
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

// Runs `docker save` and loads what it wrote.
void LoadFromDaemon(images::ImageStore& store, const std::string& name) {
  if (exec::LookPath("docker").empty()) {
    throw Exit{1, "docker is not installed here: `minik image load --daemon " + name +
                      "` reads images from a local Docker engine (or give a `docker save` "
                      "archive: `minik image load FILE`)"};
  }
  TempDir tmp;
  std::string archive = tmp.path + "/image.tar";
  exec::Command cmd;
  cmd.argv = {"docker", "save", name, "-o", archive};
  std::printf("* Saving %s from the Docker engine ...\n", name.c_str());
  exec::Result r = exec::Run(cmd);
  if (!r.ok()) {
    std::string hint;
    if (r.err.find("Cannot connect to the Docker daemon") != std::string::npos ||
        r.err.find("docker daemon is not running") != std::string::npos) {
      hint = "the Docker engine is not running; ";
    }
    throw Exit{1, hint + exec::Describe(cmd, r)};
  }
  store.Load(archive, Print);
}

std::optional<images::RegistryAuth> DockerConfigAuth(const std::string& ref) {
  std::string dir = getenv("DOCKER_CONFIG") ? getenv("DOCKER_CONFIG") : fs::HomeDir() + "/.docker";
  std::string path = dir + "/config.json";
  if (!fs::Exists(path)) {
    return std::nullopt;
  }
  try {
    return images::AuthFromDockerConfig(json::parse(fs::ReadFile(path)), ref);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "! ignoring %s: %s\n", path.c_str(), e.what());
    return std::nullopt;
  }
}

void AddLoad(CLI::App& image, GlobalFlags& g) {
  struct Opts {
    std::string file, daemon;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = image.add_subcommand(
      "load", "Load images from a `docker save` archive or an OCI image layout into the node");
  cmd->add_option("FILE", opts->file,
                  "A `docker save` tar (gzip or not), or an OCI image layout (directory or tar)");
  cmd->add_option("--daemon", opts->daemon,
                  "Load the image NAME from the local Docker engine (runs `docker save NAME`)");
  cmd->callback([&g, opts] {
    if (opts->file.empty() == opts->daemon.empty()) {
      throw Exit{1, "give either FILE or --daemon NAME"};
    }
    images::ImageStore store = OpenStore(g);
    if (!opts->daemon.empty()) {
      LoadFromDaemon(store, opts->daemon);
    } else {
      store.Load(opts->file, Print);
    }
  });
}

void AddList(CLI::App& image, GlobalFlags& g) {
  auto quiet = std::make_shared<bool>(false);
  CLI::App* cmd = image.add_subcommand("ls", "List the node's images");
  cmd->alias("list");
  cmd->add_flag("-q,--quiet", *quiet, "Only show image IDs");
  cmd->callback([&g, quiet] {
    images::ImageStore store = OpenStore(g);
    struct Row {
      std::string repo, tag, id, size;
    };
    std::vector<Row> rows;
    for (const auto& img : store.List()) {
      std::string size = HumanSize(img.size);
      if (img.refs.empty()) {
        std::string repo = "<none>";
        if (!img.digests.empty()) {
          repo = images::ParseReference(img.digests.front()).FamiliarName();
        }
        rows.push_back({repo, "<none>", ShortId(img.id), size});
      }
      for (const auto& ref : img.refs) {
        images::Reference r = images::ParseReference(ref);
        rows.push_back({r.FamiliarName(), r.tag.empty() ? "<none>" : r.tag, ShortId(img.id), size});
      }
    }
    std::sort(rows.begin(), rows.end(), [](const Row& a, const Row& b) {
      return std::tie(a.repo, a.tag) < std::tie(b.repo, b.tag);
    });
    if (*quiet) {
      std::vector<std::string> seen;
      for (const auto& r : rows) {
        if (std::find(seen.begin(), seen.end(), r.id) == seen.end()) {
          seen.push_back(r.id);
          Print(r.id);
        }
      }
      return;
    }
    size_t w_repo = 10, w_tag = 3;
    for (const auto& r : rows) {
      w_repo = std::max(w_repo, r.repo.size());
      w_tag = std::max(w_tag, r.tag.size());
    }
    std::printf("%-*s   %-*s   %-12s   %s\n", static_cast<int>(w_repo), "REPOSITORY",
                static_cast<int>(w_tag), "TAG", "IMAGE ID", "SIZE");
    for (const auto& r : rows) {
      std::printf("%-*s   %-*s   %-12s   %s\n", static_cast<int>(w_repo), r.repo.c_str(),
                  static_cast<int>(w_tag), r.tag.c_str(), r.id.c_str(), r.size.c_str());
    }
  });
}

void AddRemove(CLI::App& image, GlobalFlags& g) {
  auto refs = std::make_shared<std::vector<std::string>>();
  CLI::App* cmd = image.add_subcommand(
      "rm", "Remove images from the node: a tag (the image goes with its last tag), or an ID");
  cmd->alias("remove");
  cmd->add_option("REF", *refs, "Image references (nginx, nginx:1.27) or IDs")->required();
  cmd->callback([&g, refs] {
    images::ImageStore store = OpenStore(g);
    int failed = 0;
    for (const auto& ref : *refs) {
      auto before = store.Find(ref);
      if (!before) {
        std::fprintf(stderr, "X no such image: %s\n", ref.c_str());
        ++failed;
        continue;
      }
      store.Remove(ref);
      for (const auto& r : before->refs) {
        auto now = store.Find(r);
        if (!now || now->id != before->id) {
          Print("Untagged: " + r);
        }
      }
      if (!store.Find(before->id)) {
        Print("Deleted: " + before->id);
      }
    }
    if (failed) {
      throw Exit{1, ""};
    }
  });
}

void AddPull(CLI::App& image, GlobalFlags& g) {
  struct Opts {
    std::string ref, username, password;
    bool password_stdin = false;
  };
  auto opts = std::make_shared<Opts>();
  CLI::App* cmd = image.add_subcommand("pull", "Pull an image from a registry into the node");
  cmd->add_option("REF", opts->ref, "The image (nginx, quay.io/org/app:1.0, app@sha256:...)")
      ->required();
  cmd->add_option("-u,--username", opts->username,
                  "User name for the registry (default: from ~/.docker/config.json)");
  cmd->add_option("--password", opts->password, "Password or token for the registry");
  cmd->add_flag("--password-stdin", opts->password_stdin, "Read the password from stdin");
  cmd->callback([&g, opts] {
    images::ImageStore store = OpenStore(g);
    std::optional<images::RegistryAuth> auth;
    if (opts->password_stdin) {
      std::getline(std::cin, opts->password);
    }
    if (!opts->username.empty()) {
      auth = images::RegistryAuth{opts->username, opts->password, ""};
    } else {
      try {
        auth = DockerConfigAuth(opts->ref);
      } catch (const std::invalid_argument&) {
        // A bad reference: Pull says so.
      }
    }
    images::Image img = store.Pull(opts->ref, auth, Print);
    Print(images::NormalizeReference(opts->ref) + " is " + img.id);
  });
}

}  // namespace

void AddImage(CLI::App& app, GlobalFlags& g) {
  CLI::App* image = app.add_subcommand("image", "Manage the images of the cluster's node");
  image->require_subcommand(1);
  AddLoad(*image, g);
  AddList(*image, g);
  AddRemove(*image, g);
  AddPull(*image, g);
}

}  // namespace minik::cli
