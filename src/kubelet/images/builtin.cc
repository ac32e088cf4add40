// Images minik makes itself, so that tutorials run without a registry:
// busybox from the host's static busybox, and minik/echo-server from the minik
// binary and the shared libraries it loads.

#include <sys/stat.h>
#include <unistd.h>

#include <set>
#include <sstream>

#include "common/error.h"
#include "common/exec.h"
#include "common/fs.h"
#include "kubelet/images/internal.h"

namespace minik::kubelet::images {
namespace {

using internal::FileLock;
using internal::TarWriter;

constexpr char kBinaryLabel[] = "dev.minik.binary-sha256";
constexpr char kDefaultPath[] = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
constexpr char kEchoServerRef[] = "docker.io/minik/echo-server:latest";
constexpr char kBusyboxRef[] = "docker.io/library/busybox:latest";

const char kPasswd[] =
    "root:x:0:0:root:/root:/bin/sh\n"
    "nobody:x:65534:65534:nobody:/home:/bin/false\n";
const char kGroup[] =
    "root:x:0:\n"
    "nobody:x:65534:\n";

exec::Command Cmd(std::vector<std::string> argv) {
  exec::Command c;
  c.argv = std::move(argv);
  return c;
}

// True when every reference points at one image made from a binary with this digest.
bool UpToDate(const ImageStore& store, const std::vector<std::string>& refs,
              const std::string& binary_digest) {
  std::string id;
  for (const auto& r : refs) {
    auto img = store.Find(r);
    if (!img || img->config.labels.value(kBinaryLabel, "") != binary_digest ||
        (!id.empty() && img->id != id)) {
      return false;
    }
    id = img->id;
  }
  return true;
}

// "BusyBox v1.35.0 (Debian 1:1.35.0-4+deb12u1+b1) multi-call binary." -> "1.35.0"
std::string BusyboxVersion(const std::string& help) {
  auto v = help.find(" v");
  if (v == std::string::npos) {
    return "";
  }
  auto end = help.find_first_of(" \n", v + 2);
  return help.substr(v + 2, end == std::string::npos ? std::string::npos : end - v - 2);
}

std::string FindBusybox() {
  for (const char* p : {"/bin/busybox", "/usr/bin/busybox"}) {
    if (fs::Exists(p)) {
      return p;
    }
  }
  throw Error("busybox not found at /bin/busybox; install the Debian package busybox-static");
}

// The shared libraries `ldd` lists for a binary, with the dynamic loader;
// empty for a static binary.
std::vector<std::string> SharedLibraries(const std::string& binary) {
  exec::Command cmd = Cmd({"ldd", binary});
  exec::Result r = exec::Run(cmd);
  if (!r.ok()) {
    if (r.out.find("not a dynamic executable") != std::string::npos ||
        r.err.find("not a dynamic executable") != std::string::npos) {
      return {};
    }
    throw Error(exec::Describe(cmd, r));
  }
  std::vector<std::string> libs;
  std::istringstream in(r.out);
  std::string line;
  while (std::getline(in, line)) {
    if (line.find("statically linked") != std::string::npos) {
      return {};
    }
    if (line.find("not found") != std::string::npos) {
      throw Error("ldd " + binary + ": a library is missing:" + line);
    }
    // "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2
    // (0x...)"
    std::string path;
    if (auto arrow = line.find("=> "); arrow != std::string::npos) {
      path = line.substr(arrow + 3);
    } else {
      path = line.substr(line.find_first_not_of(" \t"));
    }
    path = path.substr(0, path.find(" ("));
    if (!path.empty() && path.front() == '/') {
      libs.push_back(path);
    }
  }
  return libs;
}

// Adds directory entries for every parent of `path` not added yet.
void AddParents(TarWriter& tar, std::set<std::string>& dirs, const std::string& path) {
  for (size_t slash = path.find('/', 1); slash != std::string::npos;
       slash = path.find('/', slash + 1)) {
    std::string dir = path.substr(1, slash - 1);
    if (dirs.insert(dir).second) {
      tar.AddDirectory(dir, 0755);
    }
  }
}

void BuildBusybox(ImageStore& store, const Progress& progress) {
  std::string busybox = FindBusybox();
  std::string digest = internal::Sha256FileDigest(busybox);
  std::string help = exec::Run(Cmd({busybox, "--help"})).out;
  std::string version = BusyboxVersion(help);
  std::vector<std::string> refs = {kBusyboxRef};
  if (!version.empty()) {
    refs.push_back("docker.io/library/busybox:" + version);
  }
  if (UpToDate(store, refs, digest)) {
    return;
  }
  if (!SharedLibraries(busybox).empty()) {
    throw Error(busybox + " is not statically linked; install the Debian package busybox-static");
  }
  if (progress) {
    progress("Building the built-in image busybox " + version + " from " + busybox);
  }
  std::string list = exec::RunOrThrow(Cmd({busybox, "--list"}));
  internal::Layout layout(store.root());
  std::string tar_path = layout.TempPath("busybox.tar");
  {
    TarWriter tar(tar_path);
    for (const char* d : {"bin", "dev", "etc", "home", "proc", "sys", "usr", "usr/bin", "var"}) {
      tar.AddDirectory(d, 0755);
    }
    tar.AddDirectory("root", 0700);
    tar.AddDirectory("tmp", 01777);
    tar.AddFileFromHost("bin/busybox", busybox);
    std::istringstream in(list);
    std::string applet;
    while (std::getline(in, applet)) {
      if (!applet.empty() && applet != "busybox" && applet.find('/') == std::string::npos) {
        tar.AddSymlink("bin/" + applet, "busybox");
      }
    }
    tar.AddFileData("etc/passwd", kPasswd, 0644);
    tar.AddFileData("etc/group", kGroup, 0644);
    tar.Close();
  }
  ImageConfig config;
  config.cmd = {"sh"};
  config.env = {kDefaultPath};
  config.labels = {{kBinaryLabel, digest}};
  try {
    store.Import(refs, tar_path, config);
  } catch (...) {
    ::unlink(tar_path.c_str());
    throw;
  }
  ::unlink(tar_path.c_str());
}

void BuildEchoServer(ImageStore& store, const std::string& minik_binary, const Progress& progress) {
  std::string digest = internal::Sha256FileDigest(minik_binary);
  if (UpToDate(store, {kEchoServerRef}, digest)) {
    return;
  }
  if (progress) {
    progress("Building the built-in image minik/echo-server from " + minik_binary);
  }
  std::vector<std::string> libs = SharedLibraries(minik_binary);
  internal::Layout layout(store.root());
  std::string tar_path = layout.TempPath("echo-server.tar");
  {
    TarWriter tar(tar_path);
    std::set<std::string> dirs = {"etc", "tmp"};
    tar.AddDirectory("etc", 0755);
    tar.AddDirectory("tmp", 01777);
    tar.AddFileFromHost("minik", minik_binary);
    // Each library at the path the loader found it, the loader itself included.
    for (const auto& lib : libs) {
      AddParents(tar, dirs, lib);
      tar.AddFileFromHost(lib.substr(1), lib);
    }
    tar.AddFileData("etc/passwd", kPasswd, 0644);
    tar.AddFileData("etc/group", kGroup, 0644);
    tar.AddFileData("etc/hosts", "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost\n", 0644);
    tar.AddFileData("etc/nsswitch.conf", "passwd: files\ngroup: files\nhosts: files dns\n", 0644);
    tar.Close();
  }
  ImageConfig config;
  config.entrypoint = {"/minik", "echo-server"};
  config.env = {kDefaultPath};
  config.exposed_ports = {"8080/tcp"};
  config.labels = {{kBinaryLabel, digest}};
  try {
    store.Import({kEchoServerRef}, tar_path, config);
  } catch (...) {
    ::unlink(tar_path.c_str());
    throw;
  }
  ::unlink(tar_path.c_str());
}

}  // namespace

bool IsBuiltin(const Image& image) {
  return image.config.labels.is_object() && image.config.labels.contains(kBinaryLabel);
}

void EnsureBuiltinImages(ImageStore& store, const std::string& minik_binary,
                         const Progress& progress) {
  // Tars are built under tmp/, which a collection empties unless an operation
  // holds gc.lock: hold it while building.
  {
    FileLock in_flight(store.root() + "/gc.lock", false);
    BuildBusybox(store, progress);
    BuildEchoServer(store, minik_binary, progress);
  }
  // A rebuilt image replaced the one its tag named; collect the old one's files.
  internal::CollectGarbage(internal::Layout(store.root()));
}

}  // namespace minik::kubelet::images
