// The image store against real registries on loopback: Debian's
// `docker-registry` (anonymous, and with htpasswd basic auth) that the test
// fills over plain HTTP, and a small fake registry with a bearer-token service
// and blob storage behind redirects. Also the built-in images, run in a chroot.

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "common/exec.h"
#include "common/fs.h"
#include "common/http_client.h"
#include "kubelet/images/image_store.h"
#include "testing.h"
#include "unit/kubelet/image_fixtures.h"

using namespace minik;
using namespace minik::kubelet::images;
using minik::testing::Descriptor;
using minik::testing::Sha256;
using minik::testing::Tar;

namespace {

constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
constexpr char kDockerList[] = "application/vnd.docker.distribution.manifest.list.v2+json";
constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
// htpasswd line for minik / s3cret (bcrypt, as docker-registry requires).
constexpr char kHtpasswd[] = "minik:$2b$04$TUpZBOSa2wxd4fD4bJBMauI4kP9ZiPN7XP9z7bsENXep8AWXy5/d.\n";

uint16_t FreePort() {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof(a));
  socklen_t len = sizeof(a);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  ::close(fd);
  return ntohs(a.sin_port);
}

// `docker-registry serve` on 127.0.0.1 with filesystem storage in a temp dir.
class RegistryProcess {
 public:
  explicit RegistryProcess(bool htpasswd = false) {
    if (exec::LookPath("docker-registry").empty()) {
      throw std::runtime_error(
          "docker-registry is not installed (Debian package docker-registry; scripts/deps.sh "
          "--test installs it)");
    }
    for (int attempt = 0; attempt < 5; ++attempt) {
      port_ = FreePort();
      std::string config =
          "version: 0.1\nlog:\n  level: warn\n  accesslog:\n    disabled: true\n"
          "storage:\n  filesystem:\n    rootdirectory: " +
          dir_.path() +
          "/data\n  delete:\n    enabled: true\n"
          "http:\n  addr: 127.0.0.1:" +
          std::to_string(port_) + "\n  secret: minik-test\n";
      if (htpasswd) {
        fs::WriteFileAtomic(dir_.path() + "/htpasswd", kHtpasswd);
        config +=
            "auth:\n  htpasswd:\n    realm: minik-test\n    path: " + dir_.path() + "/htpasswd\n";
      }
      fs::WriteFileAtomic(dir_.path() + "/config.yml", config);
      exec::Spawn s;
      s.argv = {"docker-registry", "serve", dir_.path() + "/config.yml"};
      s.log_file = dir_.path() + "/registry.log";
      s.die_with_parent = true;
      pid_ = exec::StartProcess(s);
      if (WaitReady()) {
        return;
      }
      Stop();
    }
    throw std::runtime_error("docker-registry did not start: " +
                             fs::ReadFile(dir_.path() + "/registry.log"));
  }
  ~RegistryProcess() { Stop(); }

  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }
  std::string url() const { return "http://" + host(); }

 private:
  bool WaitReady() {
    http::Client c(url(), {});
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(15);
    while (std::chrono::steady_clock::now() < deadline) {
      int status = c.Do("GET", "/v2/").status;
      if (status == 200 || status == 401) {
        return true;
      }
      int ws;
      if (waitpid(pid_, &ws, WNOHANG) == pid_) {
        pid_ = 0;
        return false;  // the port was taken meanwhile, most likely
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    return false;
  }
  void Stop() {
    if (pid_ > 0) {
      ::kill(pid_, SIGTERM);
      int ws;
      for (int i = 0; i < 100 && waitpid(pid_, &ws, WNOHANG) == 0; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(50));
      }
      if (waitpid(pid_, &ws, WNOHANG) == 0) {
        ::kill(pid_, SIGKILL);
        waitpid(pid_, &ws, 0);
      }
      pid_ = 0;
    }
  }

  minik::testing::TempDir dir_;
  uint16_t port_ = 0;
  int pid_ = 0;
};

// Pushes blobs and manifests the way `docker push` does, over plain HTTP.
class Pusher {
 public:
  Pusher(std::string base, std::string repo, std::string authorization = "")
      : base_(std::move(base)),
        repo_(std::move(repo)),
        auth_(std::move(authorization)),
        client_(base_, {}) {}

  void Blob(const std::string& data) {
    http::ClientRequest start;
    start.method = "POST";
    start.url = "/v2/" + repo_ + "/blobs/uploads/";
    Auth(start);
    auto r = client_.Send(start);
    REQUIRE(r.status == 202);
    std::string location = r.Header("Location");
    REQUIRE(!location.empty());
    http::ClientRequest put;
    put.method = "PUT";
    put.url =
        location + (location.find('?') == std::string::npos ? "?" : "&") + "digest=" + Sha256(data);
    put.headers = {{"Content-Type", "application/octet-stream"}};
    put.body = data;
    Auth(put);
    auto p = client_.Send(put);
    INFO(p.body);
    REQUIRE(p.status == 201);
  }

  // Returns the manifest's digest.
  std::string Manifest(const std::string& ref, const std::string& media_type,
                       const std::string& body) {
    http::ClientRequest put;
    put.method = "PUT";
    put.url = "/v2/" + repo_ + "/manifests/" + ref;
    put.headers = {{"Content-Type", media_type}};
    put.body = body;
    Auth(put);
    auto p = client_.Send(put);
    INFO(p.body);
    REQUIRE(p.status == 201);
    CHECK(p.Header("Docker-Content-Digest") == Sha256(body));
    return Sha256(body);
  }

 private:
  void Auth(http::ClientRequest& r) {
    if (!auth_.empty()) {
      r.headers.emplace_back("Authorization", auth_);
    }
  }
  std::string base_, repo_, auth_;
  http::Client client_;
};

// An image of two layers (gzip and plain) and its manifests.
struct TestImage {
  std::string layer1, layer1_gz, layer2, config, arm_config;
  std::string Manifest(const std::string& media_type, const std::string& cfg) const {
    bool oci = media_type == kOciManifest;
    return json{{"schemaVersion", 2},
                {"mediaType", media_type},
                {"config", Descriptor(oci ? "application/vnd.oci.image.config.v1+json"
                                          : "application/vnd.docker.container.image.v1+json",
                                      cfg)},
                {"layers",
                 {Descriptor(oci ? "application/vnd.oci.image.layer.v1.tar+gzip"
                                 : "application/vnd.docker.image.rootfs.diff.tar.gzip",
                             layer1_gz),
                  Descriptor(oci ? "application/vnd.oci.image.layer.v1.tar"
                                 : "application/vnd.docker.image.rootfs.diff.tar",
                             layer2)}}}
        .dump();
  }
};

TestImage MakeImage() {
  TestImage t;
  std::string big(3 << 20, 'x');  // several chunks of gzip and of the download
  for (size_t i = 0; i < big.size(); i += 4096) {
    big[i] = static_cast<char>('a' + (i / 4096) % 26);
  }
  t.layer1 = Tar()
                 .Dir("app", {0755, 1000, 1000})
                 .File("app/server", "#!/bin/sh\necho served\n", {0755, 1000, 1000, 1650000000})
                 .File("app/big.bin", big)
                 .File("etc/motd", "from layer 1\n")
                 .Symlink("app/current", "/app/server")
                 .Finish();
  t.layer1_gz = minik::testing::Gzip(t.layer1);
  t.layer2 = Tar().File("etc/.wh.motd", "").File("app/version", "2\n", {0600}).Finish();
  t.config = minik::testing::ImageConfigJson({t.layer1, t.layer2}).dump();
  t.arm_config = minik::testing::ImageConfigJson({t.layer1, t.layer2}, "arm64").dump();
  return t;
}

void CheckFiles(const Image& img, const TestImage& t) {
  REQUIRE(img.layers.size() == 2);
  std::string server = img.layers[0] + "/app/server";
  CHECK(minik::testing::ReadAll(server) == "#!/bin/sh\necho served\n");
  struct stat st {};
  REQUIRE(::lstat(server.c_str(), &st) == 0);
  CHECK((st.st_mode & 07777) == 0755);
  CHECK(st.st_uid == 1000);
  CHECK(st.st_mtim.tv_sec == 1650000000);
  CHECK(std::filesystem::file_size(img.layers[0] + "/app/big.bin") == (3u << 20));
  CHECK(std::filesystem::read_symlink(img.layers[0] + "/app/current") == "/app/server");
  CHECK(minik::testing::ReadAll(img.layers[1] + "/app/version") == "2\n");
  REQUIRE(::lstat((img.layers[1] + "/etc/motd").c_str(), &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK(img.config.working_dir == "/app");
  CHECK(img.size == static_cast<int64_t>(t.layer1_gz.size() + t.layer2.size()));
}

// A one-thread HTTP/1.1 server on 127.0.0.1, one request per connection.
class FakeServer {
 public:
  struct Request {
    std::string method, path, query;
    std::map<std::string, std::string> headers;  // lower-case names
  };
  struct Response {
    int status = 200;
    std::vector<std::pair<std::string, std::string>> headers;
    std::string body;
  };
  using Handler = std::function<Response(const Request&)>;

  explicit FakeServer(Handler h) : handler_(std::move(h)) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::bind(fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) == 0);
    REQUIRE(::listen(fd_, 16) == 0);
    socklen_t len = sizeof(a);
    ::getsockname(fd_, reinterpret_cast<sockaddr*>(&a), &len);
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { Loop(); });
  }
  ~FakeServer() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  std::string url() const { return "http://127.0.0.1:" + std::to_string(port_); }
  std::string host() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  void Loop() {
    while (!stop_) {
      pollfd p{fd_, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) {
        continue;
      }
      int c = ::accept4(fd_, nullptr, nullptr, SOCK_CLOEXEC);
      if (c < 0) {
        continue;
      }
      Serve(c);
      ::close(c);
    }
  }
  void Serve(int c) {
    std::string in;
    char buf[4096];
    while (in.find("\r\n\r\n") == std::string::npos) {
      ssize_t n = ::recv(c, buf, sizeof(buf), 0);
      if (n <= 0) {
        return;
      }
      in.append(buf, static_cast<size_t>(n));
    }
    Request req;
    std::string head = in.substr(0, in.find("\r\n\r\n"));
    size_t eol = head.find("\r\n");
    std::string line = head.substr(0, eol);
    req.method = line.substr(0, line.find(' '));
    std::string target = line.substr(line.find(' ') + 1);
    target = target.substr(0, target.rfind(' '));
    req.path = target.substr(0, target.find('?'));
    req.query = target.find('?') == std::string::npos ? "" : target.substr(target.find('?') + 1);
    size_t pos = eol == std::string::npos ? head.size() : eol + 2;
    while (pos < head.size()) {
      size_t end = head.find("\r\n", pos);
      std::string h = head.substr(pos, end == std::string::npos ? std::string::npos : end - pos);
      auto colon = h.find(':');
      if (colon != std::string::npos) {
        std::string k = h.substr(0, colon);
        for (auto& ch : k) {
          ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        }
        req.headers[k] = h.substr(h.find_first_not_of(' ', colon + 1));
      }
      pos = end == std::string::npos ? head.size() : end + 2;
    }
    Response r = handler_(req);
    std::string out = "HTTP/1.1 " + std::to_string(r.status) + " X\r\nConnection: close\r\n" +
                      "Content-Length: " + std::to_string(r.body.size()) + "\r\n";
    for (const auto& [k, v] : r.headers) {
      out += k + ": " + v + "\r\n";
    }
    out += "\r\n";
    if (req.method != "HEAD") {
      out += r.body;
    }
    for (size_t off = 0; off < out.size();) {
      ssize_t n = ::send(c, out.data() + off, out.size() - off, MSG_NOSIGNAL);
      if (n <= 0) {
        return;
      }
      off += static_cast<size_t>(n);
    }
  }

  Handler handler_;
  int fd_ = -1;
  uint16_t port_ = 0;
  std::atomic<bool> stop_{false};
  std::thread thread_;
};

}  // namespace

TEST_CASE("pull from docker-registry: manifests, lists and indexes, gzip and plain layers",
          "[images][registry]") {
  RegistryProcess registry;
  TestImage t = MakeImage();
  Pusher push(registry.url(), "team/app");
  for (const std::string* b : {&t.layer1_gz, &t.layer2, &t.config, &t.arm_config}) {
    push.Blob(*b);
  }
  std::string docker_manifest = t.Manifest(kDockerManifest, t.config);
  std::string v1 = push.Manifest("v1", kDockerManifest, docker_manifest);
  // A manifest list (Docker) and an index (OCI), each with amd64 and arm64.
  std::string amd = t.Manifest(kOciManifest, t.config);
  std::string arm = t.Manifest(kOciManifest, t.arm_config);
  push.Manifest(Sha256(amd), kOciManifest, amd);
  push.Manifest(Sha256(arm), kOciManifest, arm);
  auto platform_list = [&](const char* type) {
    json a = Descriptor(kOciManifest, amd), b = Descriptor(kOciManifest, arm);
    a["platform"] = {{"os", "linux"}, {"architecture", "amd64"}};
    b["platform"] = {{"os", "linux"}, {"architecture", "arm64"}, {"variant", "v8"}};
    return json{{"schemaVersion", 2}, {"mediaType", type}, {"manifests", {b, a}}}.dump();
  };
  std::string list = platform_list(kDockerList), index = platform_list(kOciIndex);
  std::string list_digest = push.Manifest("multi", kDockerList, list);
  push.Manifest("oci", kOciIndex, index);

  minik::testing::TempDir dir;
  ImageStore store(dir.path() + "/store");
  std::string name = registry.host() + "/team/app";

  SECTION("a single Docker v2 manifest") {
    std::vector<std::string> progress;
    Image img = store.Pull(name + ":v1", std::nullopt,
                           [&](const std::string& s) { progress.push_back(s); });
    CHECK(img.id == Sha256(t.config));
    CHECK(img.refs == std::vector<std::string>{name + ":v1"});
    CHECK(img.digests == std::vector<std::string>{name + "@" + v1});
    CheckFiles(img, t);
    CHECK(store.Find(name + "@" + v1)->id == img.id);
    CHECK_THAT(progress.front(), Catch::Contains("http://" + registry.host()));
    // A second pull downloads nothing.
    progress.clear();
    store.Pull(name + ":v1", std::nullopt, [&](const std::string& s) { progress.push_back(s); });
    int downloads = 0;
    for (const auto& p : progress) {
      downloads += p.find("downloading") != std::string::npos;
    }
    CHECK(downloads == 0);
  }
  SECTION("a manifest list and an OCI index choose linux/amd64") {
    for (const std::string tag : {"multi", "oci"}) {
      INFO(tag);
      Image img = store.Pull(name + ":" + tag);
      CHECK(img.id == Sha256(t.config));
      CheckFiles(img, t);
    }
    CHECK(store.Find(name + "@" + list_digest));
    Image by_digest = store.Pull(name + "@" + Sha256(amd));
    CHECK(by_digest.id == Sha256(t.config));
    CHECK(store.List().size() == 1);  // one image, several names
  }
  SECTION("errors say where the store looked") {
    CHECK_THROWS_WITH(
        store.Pull(name + ":missing"),
        Catch::Contains("pull " + name + ":missing") &&
            Catch::Contains("http://" + registry.host() + "/v2/team/app/manifests/missing") &&
            Catch::Contains("MANIFEST_UNKNOWN"));
    std::string wrong = "sha256:" + std::string(64, 'e');
    CHECK_THROWS_WITH(store.Pull(name + "@" + wrong), Catch::Contains("manifests/" + wrong));
    CHECK(store.List().empty());
  }
}

TEST_CASE("pull from docker-registry with htpasswd basic auth", "[images][registry]") {
  RegistryProcess registry(true);
  TestImage t = MakeImage();
  Pusher push(registry.url(), "private/app", "Basic bWluaWs6czNjcmV0");  // minik:s3cret
  for (const std::string* b : {&t.layer1_gz, &t.layer2, &t.config}) {
    push.Blob(*b);
  }
  push.Manifest("1.0", kOciManifest, t.Manifest(kOciManifest, t.config));
  minik::testing::TempDir dir;
  ImageStore store(dir.path() + "/store");
  std::string ref = registry.host() + "/private/app:1.0";
  CHECK_THROWS_WITH(store.Pull(ref), Catch::Contains("user name and password"));
  CHECK_THROWS_WITH(store.Pull(ref, RegistryAuth{"minik", "wrong", ""}), Catch::Contains("401"));
  Image img = store.Pull(ref, RegistryAuth{"minik", "s3cret", ""});
  CheckFiles(img, t);
}

TEST_CASE("pull with a bearer token, blobs redirected to storage, digests verified",
          "[images][registry]") {
  TestImage t = MakeImage();
  std::string manifest = t.Manifest(kDockerManifest, t.config);
  std::mutex mu;
  std::vector<std::string> log;
  bool storage_saw_auth = false;
  bool corrupt = false;
  std::map<std::string, std::string> blobs = {{Sha256(t.layer1_gz), t.layer1_gz},
                                              {Sha256(t.layer2), t.layer2},
                                              {Sha256(t.config), t.config}};
  // Blob storage on another port, as registries redirect to S3 and the like:
  // it must not receive the registry's credentials.
  FakeServer storage([&](const FakeServer::Request& req) -> FakeServer::Response {
    std::lock_guard lock(mu);
    storage_saw_auth |= req.headers.count("authorization") > 0;
    std::string digest = req.path.substr(req.path.rfind('/') + 1);
    if (!blobs.count(digest)) {
      return {404, {}, "no such blob"};
    }
    std::string body = blobs[digest];
    if (corrupt && body == t.layer2) {
      body[body.size() / 2] ^= 1;
    }
    return {200, {{"Content-Type", "application/octet-stream"}}, body};
  });
  std::string realm;
  FakeServer registry([&](const FakeServer::Request& req) -> FakeServer::Response {
    std::lock_guard lock(mu);
    log.push_back(req.method + " " + req.path + (req.query.empty() ? "" : "?" + req.query));
    if (req.path == "/token") {
      auto auth = req.headers.find("authorization");
      if (auth == req.headers.end() || auth->second != "Basic YWxpY2U6d29uZGVybGFuZA==") {
        return {401, {}, R"({"details":"incorrect username or password"})"};
      }
      return {200, {{"Content-Type", "application/json"}}, R"({"access_token":"good-token"})"};
    }
    auto auth = req.headers.find("authorization");
    if (auth == req.headers.end() || auth->second != "Bearer good-token") {
      return {401,
              {{"WWW-Authenticate",
                "Bearer realm=\"" + realm + "\",service=\"fake.registry\"" +
                    (req.path == "/v2/" ? "" : ",scope=\"repository:team/app:pull\"")}},
              R"({"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]})"};
    }
    if (req.path == "/v2/") {
      return {200, {}, "{}"};
    }
    if (req.path == "/v2/team/app/manifests/v1") {
      return {200,
              {{"Content-Type", kDockerManifest}, {"Docker-Content-Digest", Sha256(manifest)}},
              manifest};
    }
    if (req.path.rfind("/v2/team/app/blobs/", 0) == 0) {
      return {
          307,
          {{"Location", storage.url() + "/storage/" + req.path.substr(req.path.rfind('/') + 1)}},
          ""};
    }
    return {404, {}, R"({"errors":[{"code":"NAME_UNKNOWN","message":"not here"}]})"};
  });
  realm = registry.url() + "/token";
  minik::testing::TempDir dir;
  ImageStore store(dir.path() + "/store");
  std::string ref = registry.host() + "/team/app:v1";

  SECTION("the token flow, with credentials") {
    Image img = store.Pull(ref, RegistryAuth{"alice", "wonderland", ""});
    CheckFiles(img, t);
    std::lock_guard lock(mu);
    REQUIRE(log.size() >= 3);
    CHECK(log[0] == "GET /v2/");
    CHECK(log[1] == "GET /token?service=fake.registry&scope=repository%3Ateam%2Fapp%3Apull");
    CHECK(log[2] == "GET /v2/team/app/manifests/v1");
    CHECK_FALSE(storage_saw_auth);
  }
  SECTION("wrong credentials stop at the token service") {
    CHECK_THROWS_WITH(store.Pull(ref, RegistryAuth{"alice", "guess", ""}),
                      Catch::Contains(realm) && Catch::Contains("401") &&
                          Catch::Contains("incorrect username or password"));
  }
  SECTION("a token given up front is used as is") {
    Image img = store.Pull(ref, RegistryAuth{"", "", "good-token"});
    CHECK(img.id == Sha256(t.config));
    std::lock_guard lock(mu);
    for (const auto& l : log) {
      CHECK(l.rfind("GET /token", 0) == std::string::npos);
    }
  }
  SECTION("a blob whose content does not match its digest is rejected") {
    {
      std::lock_guard lock(mu);
      corrupt = true;
    }
    CHECK_THROWS_WITH(
        store.Pull(ref, RegistryAuth{"alice", "wonderland", ""}),
        Catch::Contains("blobs/" + Sha256(t.layer2)) && Catch::Contains("content has digest"));
    CHECK(store.List().empty());
    CHECK_FALSE(
        fs::Exists(dir.path() + "/store/blobs/sha256/" + minik::testing::Hex(Sha256(t.layer2))));
  }
}

TEST_CASE("built-in images: busybox and the echo server run in a chroot", "[images][builtin]") {
  if (::geteuid() != 0) {
    WARN("needs root (chroot)");
    return;
  }
  minik::testing::TempDir dir;
  ImageStore store(dir.path() + "/store");
  // A small dynamic binary stands in for minik: the image must carry its libraries.
  std::string fake_minik = dir.path() + "/minik";
  std::filesystem::copy_file("/bin/true", fake_minik);
  std::vector<std::string> progress;
  auto record = [&](const std::string& s) { progress.push_back(s); };
  EnsureBuiltinImages(store, fake_minik, record);
  CHECK(progress.size() == 2);

  auto busybox = store.Find("busybox");
  REQUIRE(busybox);
  std::string version = exec::Run({{"busybox", "--help"}, "", {}}).out;
  version = version.substr(version.find(" v") + 2);
  version = version.substr(0, version.find(' '));
  CHECK(store.Find("busybox:" + version)->id == busybox->id);
  CHECK(busybox->config.cmd == std::vector<std::string>{"sh"});
  CHECK(busybox->config.env ==
        std::vector<std::string>{
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"});
  REQUIRE(busybox->layers.size() == 1);
  std::string root = busybox->layers[0];
  CHECK(std::filesystem::read_symlink(root + "/bin/ls") == "busybox");
  CHECK(minik::testing::ReadAll(root + "/etc/passwd").find("nobody:x:65534") != std::string::npos);
  CHECK((std::filesystem::status(root + "/tmp").permissions() &
         std::filesystem::perms::sticky_bit) != std::filesystem::perms::none);
  exec::Result sh =
      exec::Run({{"chroot", root, "/bin/sh", "-c", "echo hello from $(id -un)"}, "", {}});
  INFO(sh.err);
  CHECK(sh.out == "hello from root\n");

  auto echo = store.Find("minik/echo-server");
  REQUIRE(echo);
  CHECK(echo->refs == std::vector<std::string>{"docker.io/minik/echo-server:latest"});
  CHECK(echo->config.entrypoint == std::vector<std::string>{"/minik", "echo-server"});
  CHECK(echo->config.exposed_ports == std::vector<std::string>{"8080/tcp"});
  CHECK(echo->config.labels.value("dev.minik.binary-sha256", "") ==
        Sha256(minik::testing::ReadAll(fake_minik)));
  exec::Result run = exec::Run({{"chroot", echo->layers[0], "/minik"}, "", {}});
  INFO(run.err);
  CHECK(run.exit_code == 0);

  // Up to date: nothing is built again.
  progress.clear();
  EnsureBuiltinImages(store, fake_minik, record);
  CHECK(progress.empty());
  // A changed binary makes a new echo-server image; the old one and its layer go.
  { std::ofstream(fake_minik, std::ios::app) << "changed"; }
  EnsureBuiltinImages(store, fake_minik, record);
  CHECK(progress.size() == 1);
  auto echo2 = store.Find("minik/echo-server");
  REQUIRE(echo2);
  CHECK(echo2->id != echo->id);
  CHECK_FALSE(store.Find(echo->id));
  CHECK_FALSE(fs::Exists(echo->layers[0]));
  CHECK(store.Find("busybox")->id == busybox->id);

  // The real minik binary, when the test runs under ctest: `minik version` in the chroot.
  const char* bin = std::getenv("MINIK_BIN");
  if (bin && fs::Exists(bin)) {
    EnsureBuiltinImages(store, bin);
    auto real = store.Find("minik/echo-server");
    REQUIRE(real);
    exec::Result v = exec::Run({{"chroot", real->layers[0], "/minik", "version"}, "", {}});
    INFO(v.err);
    CHECK(v.exit_code == 0);
    CHECK_THAT(v.out, Catch::Contains("minik"));
  }
}
