// The image store without a network: references, layers (whiteouts, owners,
// links, devices, hostile paths), `docker save` archives and OCI layouts built
// here from scratch, digests, removal.

#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <filesystem>
#include <thread>

#include "common/error.h"
#include "image_fixtures.h"
#include "kubelet/images/image_store.h"
#include "testing.h"

using namespace minik;
using namespace minik::kubelet::images;
using minik::testing::Descriptor;
using minik::testing::Sha256;
using minik::testing::Tar;

namespace {

constexpr char kDigest[] =
    "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

bool IsRoot() {
  return ::geteuid() == 0;
}

struct stat Lstat(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) {
    FAIL("lstat " << path << ": " << std::strerror(errno));
  }
  return st;
}

std::string Xattr(const std::string& path, const char* name) {
  char buf[64];
  ssize_t n = ::lgetxattr(path.c_str(), name, buf, sizeof(buf));
  return n < 0 ? "" : std::string(buf, static_cast<size_t>(n));
}

std::string FileIn(const Image& img, size_t layer, const std::string& rel) {
  return img.layers.at(layer) + "/" + rel;
}

// What every layer test has: a store and a place for files outside it.
struct Fixture {
  minik::testing::TempDir tmp;
  std::string root = tmp.path() + "/store";
  ImageStore store{root};

  std::string Write(const std::string& name, const std::string& data) {
    std::string p = tmp.path() + "/" + name;
    minik::testing::WriteAll(p, data);
    return p;
  }
  Image ImportLayer(const std::string& tar, const std::string& ref = "test/layer:1") {
    return store.Import({ref}, Write("layer-" + std::to_string(n++) + ".tar", tar), ImageConfig{});
  }
  int n = 0;
};

// A `docker save` archive of one image with two layers, as Docker before 25
// writes it: <id>.json, <layer>/layer.tar, manifest.json, repositories.
struct DockerSave {
  std::string layer1, layer2, config, tar;
};

DockerSave MakeDockerSave(bool break_diff_id = false) {
  DockerSave d;
  d.layer1 = Tar()
                 .Dir("app", {0755, 1000, 2000})
                 .File("app/hello.txt", "hello\n", {0640, 1000, 2000, 1600000000})
                 .Symlink("app/link", "hello.txt")
                 .Hardlink("app/hard", "app/hello.txt")
                 .CharDevice("dev/null2", 1, 3)
                 .Fifo("app/fifo")
                 .File("bin/su", "#!/bin/sh\n", {04755})
                 .File("app/old.txt", "old\n")
                 .Finish();
  d.layer2 = Tar()
                 .Dir("app", {0755, 1000, 2000})
                 .File("app/hello.txt", "hello again\n", {0600, 1000, 2000, 1650000000})
                 .File("app/.wh.old.txt", "")
                 .Finish();
  json config = minik::testing::ImageConfigJson({d.layer1, d.layer2});
  if (break_diff_id) {
    config["rootfs"]["diff_ids"][1] = kDigest;
  }
  d.config = config.dump();
  std::string id = minik::testing::Hex(Sha256(d.config));
  std::string l1 = minik::testing::Hex(Sha256(d.layer1)),
              l2 = minik::testing::Hex(Sha256(d.layer2));
  json manifest = json::array({{{"Config", id + ".json"},
                                {"RepoTags", {"myapp:1.0"}},
                                {"Layers", {l1 + "/layer.tar", l2 + "/layer.tar"}}}});
  json repositories = {{"myapp", {{"1.0", l2}, {"stable", l2}}}};
  d.tar = Tar()
              .Dir(l1)
              .File(l1 + "/layer.tar", d.layer1)
              .File(l1 + "/VERSION", "1.0")
              .Dir(l2)
              .File(l2 + "/layer.tar", d.layer2)
              .File(id + ".json", d.config)
              .File("manifest.json", manifest.dump())
              .File("repositories", repositories.dump())
              .Finish();
  return d;
}

}  // namespace

TEST_CASE("references are normalized as Docker does", "[images]") {
  const std::string h = std::string(kDigest);
  std::vector<std::pair<std::string, std::string>> good = {
      {"nginx", "docker.io/library/nginx:latest"},
      {"nginx:1.27", "docker.io/library/nginx:1.27"},
      {"library/nginx", "docker.io/library/nginx:latest"},
      {"docker.io/nginx", "docker.io/library/nginx:latest"},
      {"index.docker.io/library/nginx:alpine", "docker.io/library/nginx:alpine"},
      {"user/app:1", "docker.io/user/app:1"},
      {"user/team/app", "docker.io/user/team/app:latest"},
      {"localhost:5000/x", "localhost:5000/x:latest"},
      {"localhost/x", "localhost/x:latest"},
      {"127.0.0.1:5000/a/b/c:v1.2_3-rc", "127.0.0.1:5000/a/b/c:v1.2_3-rc"},
      {"quay.io/a/b@" + h, "quay.io/a/b@" + h},
      {"quay.io/a/b:v1@" + h, "quay.io/a/b:v1@" + h},
      {"nginx@" + h, "docker.io/library/nginx@" + h},
      {"registry.example.com:443/team/app", "registry.example.com:443/team/app:latest"},
      {"a.b-c_d__e---f", "docker.io/library/a.b-c_d__e---f:latest"},
      {"[::1]:5000/x:y", "[::1]:5000/x:y"},
      {"localhost:5000", "docker.io/library/localhost:5000"},  // as Docker: a tag
  };
  for (const auto& [in, want] : good) {
    INFO(in);
    CHECK(NormalizeReference(in) == want);
  }
  std::vector<std::pair<std::string, std::string>> bad = {
      {"", "empty"},
      {"Nginx", "lowercase"},
      {"user/App", "lowercase"},
      {"nginx:", "tag"},
      {":latest", "empty"},
      {"nginx:-x", "tag"},
      {"nginx@sha256:abc", "64"},
      {"nginx@md5:0123456789abcdef0123456789abcdef", "only sha256"},
      {"a//b", "component"},
      {"-a", "component"},
      {"a-", "component"},
      {"a..b", "component"},
      {"nginx latest", "whitespace"},
      {"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef", "image ID"},
      {"exa_mple.com:5000/x", "registry"},
      {"localhost:port/x", "registry"},
      {std::string(300, 'a'), "255"},
  };
  for (const auto& [in, why] : bad) {
    INFO(in);
    try {
      NormalizeReference(in);
      FAIL("accepted " << in);
    } catch (const std::invalid_argument& e) {
      CHECK_THAT(e.what(), Catch::Contains(why));
      CHECK_THAT(e.what(), Catch::Contains("invalid image reference"));
    }
  }
  Reference r = ParseReference("localhost:5000/team/app:2@" + h);
  CHECK(r.domain == "localhost:5000");
  CHECK(r.path == "team/app");
  CHECK(r.tag == "2");
  CHECK(r.digest == h);
  CHECK(ParseReference("nginx").FamiliarName() == "nginx");
  CHECK(ParseReference("user/app").FamiliarName() == "user/app");
  CHECK(ParseReference("library/a/b").FamiliarName() == "library/a/b");
  CHECK(ParseReference("quay.io/a/b").FamiliarName() == "quay.io/a/b");
}

TEST_CASE("credentials come from a Docker config for the image's registry", "[images]") {
  // base64("alice:pw:with:colons") and base64("bob:secret")
  json cfg = {{"auths",
               {{"https://index.docker.io/v1/", {{"auth", "YWxpY2U6cHc6d2l0aDpjb2xvbnM="}}},
                {"registry.example.com", {{"username", "bob"}, {"password", "secret"}}},
                {"registry.example.com/team", {{"auth", "Ym9iOnNlY3JldA=="}}},
                {"http://localhost:5000", {{"identitytoken", "tok"}}}}}};
  auto hub = AuthFromDockerConfig(cfg, "nginx");
  REQUIRE(hub);
  CHECK(hub->username == "alice");
  CHECK(hub->password == "pw:with:colons");
  auto ex = AuthFromDockerConfig(cfg, "registry.example.com/other/app");
  REQUIRE(ex);
  CHECK(ex->username == "bob");
  CHECK(ex->password == "secret");
  CHECK(AuthFromDockerConfig(cfg, "registry.example.com/team/app")->username == "bob");
  CHECK(AuthFromDockerConfig(cfg, "localhost:5000/x")->identity_token == "tok");
  CHECK_FALSE(AuthFromDockerConfig(cfg, "quay.io/a/b"));
  // A legacy .dockercfg: the map without "auths".
  json legacy = {{"quay.io", {{"auth", "Ym9iOnNlY3JldA=="}}}};
  CHECK(AuthFromDockerConfig(legacy, "quay.io/a/b")->password == "secret");
}

TEST_CASE("OCI whiteouts become overlayfs whiteouts", "[images]") {
  if (!IsRoot()) {
    WARN("needs root (mknod, trusted.* xattrs)");
    return;
  }
  Fixture f;
  Image img = f.ImportLayer(Tar()
                                .Dir("etc")
                                .File("etc/.wh.passwd", "")
                                .Dir("var", {0750})
                                .File("var/.wh..wh..opq", "")
                                .File("var/new", "new\n")
                                .File(".wh.top", "")
                                .File("deep/dir/.wh..wh..opq", "")
                                .File(".wh..wh.plnk", "")
                                .Finish());
  REQUIRE(img.layers.size() == 1);
  for (const char* p : {"etc/passwd", "top"}) {
    INFO(p);
    struct stat st = Lstat(FileIn(img, 0, p));
    CHECK(S_ISCHR(st.st_mode));
    CHECK(st.st_rdev == makedev(0, 0));
  }
  CHECK(Xattr(FileIn(img, 0, "var"), "trusted.overlay.opaque") == "y");
  CHECK((Lstat(FileIn(img, 0, "var")).st_mode & 07777) == 0750);
  CHECK(Xattr(FileIn(img, 0, "deep/dir"), "trusted.overlay.opaque") == "y");
  CHECK(Xattr(FileIn(img, 0, "etc"), "trusted.overlay.opaque").empty());
  CHECK(minik::testing::ReadAll(FileIn(img, 0, "var/new")) == "new\n");
  for (const auto& e : std::filesystem::recursive_directory_iterator(img.layers[0])) {
    CHECK(e.path().filename().string().rfind(".wh.", 0) == std::string::npos);
  }
}

TEST_CASE("a docker save archive loads file by file", "[images]") {
  if (!IsRoot()) {
    WARN("needs root (owners, devices)");
    return;
  }
  Fixture f;
  DockerSave d = MakeDockerSave();
  std::string archive = f.Write("save.tar", d.tar);
  std::vector<std::string> progress;
  std::vector<Image> loaded =
      f.store.Load(archive, [&](const std::string& s) { progress.push_back(s); });
  REQUIRE(loaded.size() == 1);
  const Image& img = loaded[0];
  CHECK(img.id == Sha256(d.config));
  std::vector<std::string> refs = img.refs;
  std::sort(refs.begin(), refs.end());
  CHECK(refs ==
        std::vector<std::string>{"docker.io/library/myapp:1.0", "docker.io/library/myapp:stable"});
  CHECK(img.size == static_cast<int64_t>(d.layer1.size() + d.layer2.size()));
  CHECK(img.config.entrypoint == std::vector<std::string>{"/app/run"});
  CHECK(img.config.cmd == std::vector<std::string>{"--port", "80"});
  CHECK(img.config.env == std::vector<std::string>{"PATH=/usr/bin:/bin", "MODE=test"});
  CHECK(img.config.working_dir == "/app");
  CHECK(img.config.user == "1000:2000");
  CHECK(img.config.exposed_ports == std::vector<std::string>{"80/tcp"});
  CHECK(img.config.labels.value("org.example", "") == "yes");
  CHECK_THAT(progress.back(), Catch::Contains("Loaded image: docker.io/library/myapp"));
  REQUIRE(img.layers.size() == 2);

  // Layer 1, entry by entry.
  struct stat st = Lstat(FileIn(img, 0, "app/hello.txt"));
  CHECK(S_ISREG(st.st_mode));
  CHECK((st.st_mode & 07777) == 0640);
  CHECK(st.st_uid == 1000);
  CHECK(st.st_gid == 2000);
  CHECK(st.st_mtim.tv_sec == 1600000000);
  CHECK(minik::testing::ReadAll(FileIn(img, 0, "app/hello.txt")) == "hello\n");
  struct stat dir = Lstat(FileIn(img, 0, "app"));
  CHECK(dir.st_uid == 1000);
  CHECK(dir.st_mtim.tv_sec == 1700000000);  // set after its entries were written
  struct stat link = Lstat(FileIn(img, 0, "app/link"));
  CHECK(S_ISLNK(link.st_mode));
  CHECK(std::filesystem::read_symlink(FileIn(img, 0, "app/link")) == "hello.txt");
  CHECK(Lstat(FileIn(img, 0, "app/hard")).st_ino == st.st_ino);
  CHECK(st.st_nlink == 2);
  struct stat dev = Lstat(FileIn(img, 0, "dev/null2"));
  CHECK(S_ISCHR(dev.st_mode));
  CHECK(dev.st_rdev == makedev(1, 3));
  CHECK(S_ISFIFO(Lstat(FileIn(img, 0, "app/fifo")).st_mode));
  CHECK((Lstat(FileIn(img, 0, "bin/su")).st_mode & 07777) == 04755);
  CHECK(minik::testing::ReadAll(FileIn(img, 0, "app/old.txt")) == "old\n");
  // Layer 2: its own files only, and the whiteout of old.txt.
  CHECK(minik::testing::ReadAll(FileIn(img, 1, "app/hello.txt")) == "hello again\n");
  CHECK((Lstat(FileIn(img, 1, "app/hello.txt")).st_mode & 07777) == 0600);
  CHECK(S_ISCHR(Lstat(FileIn(img, 1, "app/old.txt")).st_mode));
  CHECK_FALSE(std::filesystem::exists(FileIn(img, 1, "app/link")));

  // Found by every name, by id and by id prefix.
  CHECK(f.store.Find("myapp:1.0")->id == img.id);
  CHECK(f.store.Find("docker.io/library/myapp:stable")->id == img.id);
  CHECK(f.store.Find(img.id)->id == img.id);
  CHECK(f.store.Find(img.id.substr(7, 12))->id == img.id);
  CHECK_FALSE(f.store.Find("myapp:2.0"));
  CHECK(f.store.List().size() == 1);

  // Loading again changes nothing; the layers are shared, not unpacked twice.
  auto ino = Lstat(FileIn(img, 0, "app/hello.txt")).st_ino;
  f.store.Load(archive);
  CHECK(f.store.List().size() == 1);
  CHECK(Lstat(FileIn(img, 0, "app/hello.txt")).st_ino == ino);

  // The image goes with its last tag, and its layers and blobs with it.
  f.store.Remove("myapp:1.0");
  REQUIRE(f.store.Find("myapp:stable"));
  CHECK(std::filesystem::exists(img.layers[0]));
  f.store.Remove("myapp:stable");
  CHECK_FALSE(f.store.Find(img.id));
  CHECK(f.store.List().empty());
  CHECK_FALSE(std::filesystem::exists(img.layers[0]));
  CHECK(std::filesystem::is_empty(f.root + "/blobs/sha256"));
  CHECK(std::filesystem::is_empty(f.root + "/layers"));
  CHECK_THROWS_WITH(f.store.Remove("myapp:stable"), Catch::Contains("not found"));

  // The index is JSON on disk: a new store over the same root sees the same.
  f.store.Load(archive);
  ImageStore again(f.root);
  CHECK(again.Find("myapp:1.0")->id == img.id);
}

TEST_CASE("an OCI image layout loads as a directory and as a tar", "[images]") {
  if (!IsRoot()) {
    WARN("needs root (owners)");
    return;
  }
  Fixture f;
  std::string layer = Tar()
                          .Dir("srv", {0755, 33, 33})
                          .File("srv/index.html", "<h1>hi</h1>\n", {0644, 33, 33})
                          .Symlink("srv/current", "/srv")
                          .Finish();
  std::string gz = minik::testing::Gzip(layer);
  REQUIRE(gz != layer);
  std::string config = minik::testing::ImageConfigJson({layer}).dump();
  std::string arm_config = minik::testing::ImageConfigJson({layer}, "arm64").dump();
  auto manifest_for = [&](const std::string& cfg) {
    return json{{"schemaVersion", 2},
                {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
                {"config", Descriptor("application/vnd.oci.image.config.v1+json", cfg)},
                {"layers", {Descriptor("application/vnd.oci.image.layer.v1.tar+gzip", gz)}}}
        .dump();
  };
  std::string manifest = manifest_for(config), arm_manifest = manifest_for(arm_config);
  json amd = Descriptor("application/vnd.oci.image.manifest.v1+json", manifest);
  amd["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
  json arm = Descriptor("application/vnd.oci.image.manifest.v1+json", arm_manifest);
  arm["platform"] = {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}};
  std::string index = json{
      {"schemaVersion", 2},
      {"mediaType", "application/vnd.oci.image.index.v1+json"},
      {"manifests",
       {arm, amd}}}.dump();
  json top = Descriptor("application/vnd.oci.image.index.v1+json", index);
  top["annotations"] = {{"org.opencontainers.image.ref.name", "example.com/team/web:2"}};
  json layout_index = {{"schemaVersion", 2}, {"manifests", {top}}};

  std::string dir = f.tmp.path() + "/layout";
  std::filesystem::create_directories(dir + "/blobs/sha256");
  minik::testing::WriteAll(dir + "/oci-layout", R"({"imageLayoutVersion":"1.0.0"})");
  minik::testing::WriteAll(dir + "/index.json", layout_index.dump());
  Tar tar;
  tar.File("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
      .File("index.json", layout_index.dump());
  for (const std::string* blob : {&gz, &config, &arm_config, &manifest, &arm_manifest, &index}) {
    std::string name = "blobs/sha256/" + minik::testing::Hex(Sha256(*blob));
    minik::testing::WriteAll(dir + "/" + name, *blob);
    tar.File(name, *blob);
  }
  std::string tar_path = f.Write("layout.tar", tar.Finish());

  for (const std::string& source : {dir, tar_path}) {
    INFO(source);
    std::vector<Image> loaded = f.store.Load(source);
    REQUIRE(loaded.size() == 1);
    const Image& img = loaded[0];
    CHECK(img.id == Sha256(config));  // the amd64 image, not the arm64 one
    CHECK(img.refs == std::vector<std::string>{"example.com/team/web:2"});
    CHECK(img.size == static_cast<int64_t>(gz.size()));
    REQUIRE(img.layers.size() == 1);
    CHECK(minik::testing::ReadAll(FileIn(img, 0, "srv/index.html")) == "<h1>hi</h1>\n");
    CHECK(Lstat(FileIn(img, 0, "srv/index.html")).st_uid == 33);
    CHECK(std::filesystem::read_symlink(FileIn(img, 0, "srv/current")) == "/srv");
    // The compressed blob is kept as received.
    CHECK(minik::testing::ReadAll(f.root + "/blobs/sha256/" + minik::testing::Hex(Sha256(gz))) ==
          gz);
    f.store.Remove("example.com/team/web:2");
    CHECK(f.store.List().empty());
  }
  // The user's layout is untouched.
  CHECK(minik::testing::ReadAll(dir + "/blobs/sha256/" + minik::testing::Hex(Sha256(gz))) == gz);
}

TEST_CASE("content that does not match its digest is rejected", "[images]") {
  Fixture f;
  SECTION("a docker save layer whose diff id is wrong") {
    std::string archive = f.Write("save.tar", MakeDockerSave(true).tar);
    CHECK_THROWS_WITH(f.store.Load(archive), Catch::Contains("content has digest"));
  }
  SECTION("a docker save config named after another digest") {
    DockerSave d = MakeDockerSave();
    std::string good = minik::testing::Hex(Sha256(d.config));
    std::string tar = d.tar;
    // Same size, one byte of the config changed (`"os":"linux"` -> `"os":"linuy"`).
    auto pos = tar.find("\"linux\"");
    REQUIRE(pos != std::string::npos);
    tar[pos + 5] = 'y';
    std::string archive = f.Write("save.tar", tar);
    CHECK_THROWS_WITH(f.store.Load(archive), Catch::Contains(good) && Catch::Contains("digest"));
  }
  SECTION("an OCI blob whose content changed") {
    std::string layer = Tar().File("a", "a\n").Finish();
    std::string config = minik::testing::ImageConfigJson({layer}).dump();
    std::string manifest =
        json{{"schemaVersion", 2},
             {"mediaType", "application/vnd.oci.image.manifest.v1+json"},
             {"config", Descriptor("application/vnd.oci.image.config.v1+json", config)},
             {"layers", {Descriptor("application/vnd.oci.image.layer.v1.tar", layer)}}}
            .dump();
    json top = Descriptor("application/vnd.oci.image.manifest.v1+json", manifest);
    top["annotations"] = {{"org.opencontainers.image.ref.name", "x:1"}};
    std::string tampered = Tar().File("a", "b\n").Finish();
    REQUIRE(tampered.size() == layer.size());
    std::string tar = Tar()
                          .File("oci-layout", R"({"imageLayoutVersion":"1.0.0"})")
                          .File("index.json", json{{"manifests", {top}}}.dump())
                          .File("blobs/sha256/" + minik::testing::Hex(Sha256(config)), config)
                          .File("blobs/sha256/" + minik::testing::Hex(Sha256(manifest)), manifest)
                          .File("blobs/sha256/" + minik::testing::Hex(Sha256(layer)), tampered)
                          .Finish();
    CHECK_THROWS_WITH(f.store.Load(f.Write("oci.tar", tar)),
                      Catch::Contains(Sha256(layer)) && Catch::Contains("content has digest"));
  }
  CHECK(f.store.List().empty());
  CHECK(std::filesystem::is_empty(f.root + "/layers"));
}

TEST_CASE("layer entries cannot escape the layer", "[images]") {
  Fixture f;
  std::string outside = f.tmp.path() + "/outside";
  std::filesystem::create_directories(outside);
  struct Case {
    const char* what;
    std::string tar;
    const char* error;
  };
  std::vector<Case> cases;
  cases.push_back({"dot-dot", Tar().File("../../outside/evil", "x").Finish(), "leaves"});
  cases.push_back({"dot-dot inside", Tar().File("a/../../outside/evil", "x").Finish(), "leaves"});
  cases.push_back({"absolute symlink, then through it",
                   Tar().Symlink("a", outside).File("a/evil", "x").Finish(), "symbolic link"});
  cases.push_back(
      {"relative symlink climbing, then through it",
       Tar().Symlink("b", "../../../../../../../..").File("b/" + outside + "/evil", "x").Finish(),
       "symbolic link"});
  cases.push_back({"symlink directory then dir entry under it",
                   Tar().Symlink("c", outside).Dir("c/sub").Finish(), "symbolic link"});
  cases.push_back(
      {"hard link out", Tar().Hardlink("h", "../../../../etc/passwd").Finish(), "leaves"});
  cases.push_back({"hard link through a symlink",
                   Tar().Symlink("d", "/etc").Hardlink("h", "d/passwd").Finish(),
                   "not a directory"});
  cases.push_back({"whiteout through a symlink",
                   Tar().Symlink("e", outside).File("e/.wh.x", "").Finish(), "symbolic link"});
  for (const auto& c : cases) {
    INFO(c.what);
    CHECK_THROWS_WITH(f.ImportLayer(c.tar), Catch::Contains(c.error));
    CHECK(std::filesystem::is_empty(outside));
  }
  CHECK(f.store.List().empty());
  CHECK(std::filesystem::is_empty(f.root + "/layers"));
  // Absolute names are taken as relative to the layer, as Docker does.
  Image img =
      f.ImportLayer(Tar().File("/abs/file", "ok").Symlink("abs/link", "/etc/passwd").Finish());
  CHECK(minik::testing::ReadAll(FileIn(img, 0, "abs/file")) == "ok");
  CHECK(std::filesystem::read_symlink(FileIn(img, 0, "abs/link")) == "/etc/passwd");
}

TEST_CASE("a tag moves to the newer image, and an untagged one goes", "[images]") {
  Fixture f;
  Image a = f.ImportLayer(Tar().File("v", "1").Finish(), "app:latest");
  Image b = f.ImportLayer(Tar().File("v", "2").Finish(), "app:latest");
  CHECK(a.id != b.id);
  CHECK(f.store.Find("app")->id == b.id);
  CHECK_FALSE(f.store.Find(a.id));
  CHECK(f.store.List().size() == 1);
  CHECK_FALSE(std::filesystem::exists(a.layers[0]));
  // Ids by prefix: ambiguous prefixes find nothing.
  Image c = f.ImportLayer(Tar().File("v", "3").Finish(), "other:1");
  CHECK(f.store.Find("sha256:" + c.id.substr(7, 5))->id == c.id);
  CHECK_FALSE(f.store.Find("sha256:"));
  CHECK_THROWS_WITH(f.store.Import({"Bad Ref"}, "/nonexistent", ImageConfig{}),
                    Catch::Contains("invalid image reference"));
}

TEST_CASE("concurrent loads of the same layers do not corrupt each other", "[images]") {
  if (!IsRoot()) {
    WARN("needs root (owners, devices)");
    return;
  }
  Fixture f;
  std::string archive = f.Write("save.tar", MakeDockerSave().tar);
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      try {
        ImageStore s(f.root);
        s.Load(archive);
      } catch (const std::exception& e) {
        UNSCOPED_INFO(e.what());
        ++failures;
      }
    });
  }
  for (auto& t : threads) {
    t.join();
  }
  CHECK(failures == 0);
  auto img = f.store.Find("myapp:1.0");
  REQUIRE(img);
  CHECK(minik::testing::ReadAll(FileIn(*img, 0, "app/hello.txt")) == "hello\n");
  CHECK(std::distance(std::filesystem::directory_iterator(f.root + "/layers"),
                      std::filesystem::directory_iterator()) == 2);
}
