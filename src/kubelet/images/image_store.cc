// The store's files: blobs, unpacked layers, index.json, and the locks that let
// the kubelet and `minik image` commands use one store at the same time.

#include "kubelet/images/image_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <ctime>
#include <set>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "kubelet/images/internal.h"

namespace minik::kubelet::images {
namespace internal {
namespace {

std::string NowRfc3339() {
  std::time_t t = std::time(nullptr);
  char buf[32];
  std::strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%SZ", std::gmtime(&t));
  return buf;
}

std::vector<std::string> ListDir(const std::string& dir) {
  std::vector<std::string> out;
  DIR* d = ::opendir(dir.c_str());
  if (!d) {
    return out;
  }
  while (struct dirent* e = ::readdir(d)) {
    std::string n = e->d_name;
    if (n != "." && n != "..") {
      out.push_back(n);
    }
  }
  ::closedir(d);
  return out;
}

void AddUnique(json& arr, const std::string& v) {
  for (const auto& x : arr) {
    if (x == v) {
      return;
    }
  }
  arr.push_back(v);
}

void EraseValue(json& arr, const std::string& v) {
  json out = json::array();
  for (const auto& x : arr) {
    if (x != v) {
      out.push_back(x);
    }
  }
  arr = out;
}

// Copies `from` to `to` while hashing; returns the digest and the size.
std::pair<std::string, int64_t> CopyHashing(const std::string& from, const std::string& to) {
  int in = ::open(from.c_str(), O_RDONLY | O_CLOEXEC);
  if (in < 0) {
    throw SystemError("open '" + from + "'", errno);
  }
  int out = ::open(to.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (out < 0) {
    int err = errno;
    ::close(in);
    throw SystemError("create '" + to + "'", err);
  }
  Sha256 h;
  int64_t total = 0;
  std::string buf(1 << 20, '\0');
  auto fail = [&](const std::string& what, int err) {
    ::close(in);
    ::close(out);
    ::unlink(to.c_str());
    throw SystemError(what, err);
  };
  while (true) {
    ssize_t n = ::read(in, buf.data(), buf.size());
    if (n < 0 && errno == EINTR) {
      continue;
    }
    if (n < 0) {
      fail("read '" + from + "'", errno);
    }
    if (n == 0) {
      break;
    }
    h.Update(buf.data(), static_cast<size_t>(n));
    total += n;
    for (ssize_t off = 0; off < n;) {
      ssize_t w = ::write(out, buf.data() + off, static_cast<size_t>(n - off));
      if (w < 0 && errno == EINTR) {
        continue;
      }
      if (w < 0) {
        fail("write '" + to + "'", errno);
      }
      off += w;
    }
  }
  ::close(in);
  if (::fsync(out) != 0 || ::close(out) != 0) {
    int err = errno;
    ::unlink(to.c_str());
    throw SystemError("sync '" + to + "'", err);
  }
  return {h.Digest(), total};
}

}  // namespace

FileLock::FileLock(const std::string& path, bool exclusive, bool wait) {
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd_ < 0) {
    throw SystemError("open '" + path + "'", errno);
  }
  int op = (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB);
  while (::flock(fd_, op) != 0) {
    if (errno == EINTR) {
      continue;
    }
    if (errno == EWOULDBLOCK && !wait) {
      return;
    }
    int err = errno;
    ::close(fd_);
    fd_ = -1;
    throw SystemError("lock '" + path + "'", err);
  }
  held_ = true;
}

FileLock::~FileLock() {
  if (fd_ >= 0) {
    ::close(fd_);  // releases the lock
  }
}

Layout::Layout(std::string root, bool create) : root_(std::move(root)) {
  if (!create) {
    return;
  }
  fs::MakeDirs(root_ + "/blobs/sha256", 0700);
  fs::MakeDirs(root_ + "/layers", 0700);
  fs::MakeDirs(root_ + "/tmp", 0700);
}

std::string Layout::BlobPath(const std::string& digest) const {
  return root_ + "/blobs/sha256/" + DigestHex(digest, "blob digest");
}

std::string Layout::LayerPath(const std::string& chain_id) const {
  return root_ + "/layers/" + DigestHex(chain_id, "chain id");
}

std::string Layout::TempPath(const std::string& hint) const {
  static std::atomic<uint64_t> counter{0};
  auto now = std::chrono::steady_clock::now().time_since_epoch().count();
  return root_ + "/tmp/" + std::to_string(::getpid()) + "-" + std::to_string(now) + "-" +
         std::to_string(counter++) + "-" + hint;
}

bool Layout::HasBlob(const std::string& digest) const {
  return fs::Exists(BlobPath(digest));
}

std::string Layout::PutBlob(const std::string& data, const std::string& expected) {
  std::string digest = Sha256Digest(data);
  if (!expected.empty() && digest != expected) {
    throw Error("blob " + expected + ": content has digest " + digest);
  }
  std::string path = BlobPath(digest);
  if (!fs::Exists(path)) {
    std::string tmp = TempPath("blob");
    fs::WriteFileAtomic(tmp, data, 0644);
    if (::rename(tmp.c_str(), path.c_str()) != 0) {
      int err = errno;
      ::unlink(tmp.c_str());
      throw SystemError("rename '" + tmp + "' to '" + path + "'", err);
    }
  }
  return digest;
}

void Layout::PutBlobFile(const std::string& path, const std::string& expected, int64_t size,
                         bool link_ok) {
  std::string dest = BlobPath(expected);
  if (fs::Exists(dest)) {
    return;
  }
  std::string tmp = TempPath("blob");
  std::string digest;
  int64_t actual_size = 0;
  if (link_ok && ::link(path.c_str(), tmp.c_str()) == 0) {
    digest = Sha256FileDigest(tmp);
    struct stat st;
    actual_size = ::stat(tmp.c_str(), &st) == 0 ? st.st_size : -1;
  } else {
    std::tie(digest, actual_size) = CopyHashing(path, tmp);
  }
  if (digest != expected || (size >= 0 && actual_size != size)) {
    ::unlink(tmp.c_str());
    if (digest != expected) {
      throw Error("blob " + expected + ": content has digest " + digest);
    }
    throw Error("blob " + expected + ": " + std::to_string(actual_size) +
                " bytes where its descriptor says " + std::to_string(size));
  }
  if (::rename(tmp.c_str(), dest.c_str()) != 0) {
    int err = errno;
    ::unlink(tmp.c_str());
    throw SystemError("rename '" + tmp + "' to '" + dest + "'", err);
  }
}

void Layout::EnsureLayers(std::vector<LayerRecord>& layers, const Progress& progress) {
  std::string parent;
  for (auto& l : layers) {
    l.chain_id = ChainId(parent, l.diff_id);
    parent = l.chain_id;
    std::string dir = LayerPath(l.chain_id);
    std::string short_id = DigestHex(l.digest).substr(0, 12);
    if (fs::Exists(dir)) {
      continue;
    }
    if (progress) {
      progress(short_id + ": unpacking");
    }
    // Unpacked beside its final place and renamed there, so a layer directory
    // is either complete or absent, whoever else unpacks the same layer.
    std::string tmp = TempPath("layer");
    // The layer's root is 0755 unless the layer says otherwise, whatever the umask.
    if (::mkdir(tmp.c_str(), 0755) != 0 || ::chmod(tmp.c_str(), 0755) != 0) {
      throw SystemError("mkdir '" + tmp + "'", errno);
    }
    try {
      ExtractResult r = ExtractTar(BlobPath(l.digest), tmp);
      if (r.digest != l.digest) {
        throw Error("layer " + l.digest + ": content has digest " + r.digest);
      }
      if (r.diff_id != l.diff_id) {
        throw Error("layer " + l.digest + ": uncompressed content has digest " + r.diff_id +
                    " where the image config says " + l.diff_id);
      }
    } catch (...) {
      fs::RemoveAll(tmp);
      throw;
    }
    if (::rename(tmp.c_str(), dir.c_str()) != 0) {
      int err = errno;
      fs::RemoveAll(tmp);
      if (err != EEXIST && err != ENOTEMPTY) {
        throw SystemError("rename '" + tmp + "' to '" + dir + "'", err);
      }
    }
  }
}

json Layout::ReadIndex() const {
  std::string path = root_ + "/index.json";
  if (!fs::Exists(path)) {
    return {{"images", json::object()}};
  }
  json j;
  try {
    j = json::parse(fs::ReadFile(path));
  } catch (const json::exception& e) {
    throw Error("read '" + path + "': " + e.what());
  }
  if (!j.is_object() || !j.contains("images") || !j["images"].is_object()) {
    throw Error("read '" + path + "': not an image index");
  }
  return j;
}

Image Layout::ToImage(const json& rec) const {
  Image img;
  img.id = rec.value("id", "");
  img.refs = rec.value("refs", std::vector<std::string>{});
  img.digests = rec.value("digests", std::vector<std::string>{});
  for (const auto& l : rec.value("layers", json::array())) {
    img.layers.push_back(LayerPath(l.value("chain_id", "")));
  }
  img.config = ImageConfigFromJson(rec.value("config", json::object()));
  img.size = rec.value("size", int64_t{0});
  return img;
}

namespace {

void WriteIndex(const Layout& layout, const json& index) {
  fs::WriteFileAtomic(layout.root() + "/index.json", index.dump(2) + "\n", 0600);
}

// Drops `ref` (a tag reference, or a digest reference when `digest`) from
// every image but `keep`; an image nothing refers to any more goes.
void Detach(json& images, const std::string& ref, bool digest, const std::string& keep) {
  const char* field = digest ? "digests" : "refs";
  std::vector<std::string> gone;
  for (auto& [id, rec] : images.items()) {
    if (id == keep) {
      continue;
    }
    EraseValue(rec[field], ref);
    if (rec["refs"].empty() && rec["digests"].empty()) {
      gone.push_back(id);
    }
  }
  for (const auto& id : gone) {
    images.erase(id);
  }
}

}  // namespace

Image Layout::Commit(NewImage img, const Progress& progress) {
  std::string config_digest = PutBlob(img.config_json);
  std::string manifest_digest = PutBlob(img.manifest_json);
  json config;
  try {
    config = json::parse(img.config_json);
  } catch (const json::exception& e) {
    throw Error("image config " + config_digest + ": " + e.what());
  }
  int64_t size = 0;
  json layers = json::array();
  for (const auto& l : img.layers) {
    size += l.size;
    layers.push_back({{"digest", l.digest},
                      {"media_type", l.media_type},
                      {"size", l.size},
                      {"diff_id", l.diff_id},
                      {"chain_id", l.chain_id}});
  }
  FileLock lock(root_ + "/index.lock", true);
  // A collection between unpacking and now cannot have run (this operation
  // holds gc.lock shared), but a layer directory removed by hand would make a
  // broken image: check.
  for (const auto& l : img.layers) {
    if (!fs::Exists(LayerPath(l.chain_id))) {
      throw Error("layer " + l.digest + " vanished from '" + LayerPath(l.chain_id) + "'");
    }
  }
  json index = ReadIndex();
  json& images = index["images"];
  json& rec = images[config_digest];
  if (!rec.is_object() || !rec.contains("id")) {
    rec = {{"id", config_digest},
           {"refs", json::array()},
           {"digests", json::array()},
           {"added", NowRfc3339()}};
  }
  rec["config_digest"] = config_digest;
  rec["manifest_digest"] = manifest_digest;
  rec["manifest_media_type"] = img.manifest_media_type;
  rec["layers"] = layers;
  rec["config"] = ImageConfigToJson(ParseImageConfig(config));
  rec["size"] = size;
  rec["created"] = config.value("created", "");
  rec["os"] = config.value("os", "");
  rec["architecture"] = config.value("architecture", "");
  for (const auto& r : img.refs) {
    AddUnique(rec["refs"], r);
  }
  for (const auto& d : img.digests) {
    AddUnique(rec["digests"], d);
  }
  json saved = rec;
  for (const auto& r : img.refs) {
    Detach(images, r, false, config_digest);
  }
  for (const auto& d : img.digests) {
    Detach(images, d, true, config_digest);
  }
  WriteIndex(*this, index);
  if (progress) {
    for (const auto& r : img.refs) {
      progress("Loaded image: " + r);
    }
    if (img.refs.empty()) {
      progress("Loaded image ID: " + config_digest);
    }
  }
  return ToImage(saved);
}

void CollectGarbage(const Layout& layout) {
  FileLock gc(layout.root() + "/gc.lock", true, false);
  if (!gc.held()) {
    return;  // something is being added; the next collection gets the garbage
  }
  std::set<std::string> blobs, layers;
  {
    FileLock lock(layout.root() + "/index.lock", true);
    json index = layout.ReadIndex();
    for (const auto& [id, rec] : index["images"].items()) {
      for (const char* f : {"config_digest", "manifest_digest"}) {
        if (rec.contains(f) && rec[f].is_string()) {
          blobs.insert(rec[f].get<std::string>());
        }
      }
      for (const auto& l : rec.value("layers", json::array())) {
        blobs.insert(l.value("digest", ""));
        layers.insert(l.value("chain_id", ""));
      }
    }
  }
  for (const auto& hex : ListDir(layout.root() + "/blobs/sha256")) {
    if (!blobs.count("sha256:" + hex)) {
      ::unlink((layout.root() + "/blobs/sha256/" + hex).c_str());
    }
  }
  for (const auto& hex : ListDir(layout.root() + "/layers")) {
    if (!layers.count("sha256:" + hex)) {
      fs::RemoveAll(layout.root() + "/layers/" + hex);
    }
  }
  // Nothing is in flight (we hold gc.lock exclusively): tmp/ is leftovers.
  for (const auto& name : ListDir(layout.root() + "/tmp")) {
    fs::RemoveAll(layout.root() + "/tmp/" + name);
  }
}

}  // namespace internal

using internal::FileLock;
using internal::Layout;

ImageStore::ImageStore(std::string root) : root_(std::move(root)) {
  Layout layout(root_);
}

std::optional<Image> ImageStore::Find(const std::string& ref) const {
  Layout layout(root_, false);
  json index = layout.ReadIndex();
  const json& images = index["images"];
  // "sha256:<id>" or a prefix of it.
  auto by_id_prefix = [&](const std::string& hex) -> std::optional<Image> {
    if (hex.empty() || hex.size() > 64 ||
        hex.find_first_not_of("0123456789abcdef") != std::string::npos) {
      return std::nullopt;
    }
    const json* found = nullptr;
    for (const auto& [id, rec] : images.items()) {
      if (id.compare(7, hex.size(), hex) == 0) {
        if (found) {
          return std::nullopt;  // ambiguous
        }
        found = &rec;
      }
    }
    return found ? std::optional<Image>(layout.ToImage(*found)) : std::nullopt;
  };
  if (ref.rfind("sha256:", 0) == 0) {
    return by_id_prefix(ref.substr(7));
  }
  try {
    Reference r = ParseReference(ref);
    std::string by_digest = r.digest.empty() ? "" : r.Name() + "@" + r.digest;
    std::string by_tag = r.tag.empty() ? "" : r.Name() + ":" + r.tag;
    for (const auto& [id, rec] : images.items()) {
      for (const auto& d : rec.value("digests", json::array())) {
        if (!by_digest.empty() && d == by_digest) {
          return layout.ToImage(rec);
        }
      }
      // A digest reference also finds the image by its manifest digest, when
      // it was pulled under the same name by a tag that has moved on.
      if (!r.digest.empty() && rec.value("manifest_digest", "") == r.digest) {
        for (const auto& d : rec.value("digests", json::array())) {
          if (d.get<std::string>().rfind(r.Name() + "@", 0) == 0) {
            return layout.ToImage(rec);
          }
        }
      }
      if (r.digest.empty()) {
        for (const auto& t : rec.value("refs", json::array())) {
          if (t == by_tag) {
            return layout.ToImage(rec);
          }
        }
      }
    }
  } catch (const std::invalid_argument&) {
    // Not a reference; perhaps an id prefix.
  }
  return by_id_prefix(ref);
}

std::vector<Image> ImageStore::List() const {
  Layout layout(root_, false);
  json index = layout.ReadIndex();
  std::vector<Image> out;
  for (const auto& [id, rec] : index["images"].items()) {
    out.push_back(layout.ToImage(rec));
  }
  return out;
}

Image ImageStore::Pull(const std::string& ref, const std::optional<RegistryAuth>& auth,
                       const Progress& progress) {
  Reference r;
  try {
    r = ParseReference(ref);
  } catch (const std::invalid_argument& e) {
    throw Error(std::string("pull: ") + e.what());
  }
  Layout layout(root_);
  Image img;
  {
    FileLock in_flight(root_ + "/gc.lock", false);
    try {
      img = internal::PullFromRegistry(layout, r, auth, progress);
    } catch (const std::exception& e) {
      // Also a registry's JSON of the wrong shape (nlohmann's type errors).
      throw Error("pull " + r.String() + ": " + e.what());
    }
  }
  // The image a tag pointed at before may be gone now, and its layers with it.
  internal::CollectGarbage(layout);
  return img;
}

std::vector<Image> ImageStore::Load(const std::string& path, const Progress& progress) {
  Layout layout(root_);
  std::vector<Image> images;
  {
    FileLock in_flight(root_ + "/gc.lock", false);
    try {
      images = internal::LoadArchive(layout, path, progress);
    } catch (const std::exception& e) {
      throw Error("load '" + path + "': " + e.what());
    }
  }
  internal::CollectGarbage(layout);
  return images;
}

namespace {

Image ImportLocked(Layout& layout, const std::vector<std::string>& normalized,
                   const std::string& layer_tar, const ImageConfig& config) {
  std::string digest = internal::Sha256FileDigest(layer_tar);
  layout.PutBlobFile(layer_tar, digest, -1, true);
  struct stat st;
  int64_t size = ::stat(layout.BlobPath(digest).c_str(), &st) == 0 ? st.st_size : 0;
  internal::NewImage img;
  img.layers.push_back({digest, internal::kOciLayer, size, digest, ""});
  layout.EnsureLayers(img.layers, nullptr);
  json c = json::object();
  if (!config.entrypoint.empty()) {
    c["Entrypoint"] = config.entrypoint;
  }
  if (!config.cmd.empty()) {
    c["Cmd"] = config.cmd;
  }
  if (!config.env.empty()) {
    c["Env"] = config.env;
  }
  if (!config.working_dir.empty()) {
    c["WorkingDir"] = config.working_dir;
  }
  if (!config.user.empty()) {
    c["User"] = config.user;
  }
  if (!config.exposed_ports.empty()) {
    c["ExposedPorts"] = json::object();
    for (const auto& p : config.exposed_ports) {
      c["ExposedPorts"][p] = json::object();
    }
  }
  if (config.labels.is_object() && !config.labels.empty()) {
    c["Labels"] = config.labels;
  }
  internal::Platform p = internal::HostPlatform();
  json cfg = {{"architecture", p.architecture},
              {"os", p.os},
              {"config", c},
              {"rootfs", {{"type", "layers"}, {"diff_ids", {digest}}}},
              {"history", {{{"created_by", "minik"}}}}};
  if (!p.variant.empty()) {
    cfg["variant"] = p.variant;
  }
  img.config_json = cfg.dump();
  json manifest = {
      {"schemaVersion", 2},
      {"mediaType", internal::kOciManifest},
      {"config",
       {{"mediaType", internal::kOciConfig},
        {"digest", internal::Sha256Digest(img.config_json)},
        {"size", img.config_json.size()}}},
      {"layers", {{{"mediaType", internal::kOciLayer}, {"digest", digest}, {"size", size}}}}};
  img.manifest_json = manifest.dump();
  img.manifest_media_type = internal::kOciManifest;
  img.refs = normalized;
  return layout.Commit(std::move(img), nullptr);
}

}  // namespace

Image ImageStore::Import(const std::vector<std::string>& refs, const std::string& layer_tar,
                         const ImageConfig& config) {
  Layout layout(root_);
  std::vector<std::string> normalized;
  for (const auto& r : refs) {
    try {
      normalized.push_back(NormalizeReference(r));
    } catch (const std::invalid_argument& e) {
      throw Error(std::string("import: ") + e.what());
    }
  }
  Image out;
  {
    FileLock in_flight(root_ + "/gc.lock", false);
    out = ImportLocked(layout, normalized, layer_tar, config);
  }
  internal::CollectGarbage(layout);
  return out;
}

void ImageStore::Remove(const std::string& ref) {
  Layout layout(root_);
  {
    FileLock lock(root_ + "/index.lock", true);
    json index = layout.ReadIndex();
    json& images = index["images"];
    std::optional<Image> found = Find(ref);
    if (!found) {
      throw Error("image \"" + ref + "\" not found in '" + root_ + "'");
    }
    json& rec = images[found->id];
    std::optional<Reference> r;
    try {
      r = ParseReference(ref);
    } catch (const std::invalid_argument&) {
    }
    bool by_tag =
        r && r->digest.empty() && ref.rfind("sha256:", 0) != 0 &&
        std::find(found->refs.begin(), found->refs.end(), r->String()) != found->refs.end();
    bool by_digest = r && !r->digest.empty();
    if (by_tag) {
      // Untagging the last tag removes the image, as `docker rmi` does.
      internal::EraseValue(rec["refs"], r->String());
      if (rec["refs"].empty()) {
        images.erase(found->id);
      }
    } else if (by_digest) {
      internal::EraseValue(rec["digests"], r->Name() + "@" + r->digest);
      if (rec["refs"].empty() && rec["digests"].empty()) {
        images.erase(found->id);
      }
    } else {
      images.erase(found->id);
    }
    internal::WriteIndex(layout, index);
  }
  internal::CollectGarbage(layout);
}

}  // namespace minik::kubelet::images
