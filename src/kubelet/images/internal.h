#pragma once
// What the image store's files share and nothing else sees: digests, layer
// unpacking, and the on-disk layout with its locks.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kubelet/images/image_store.h"

namespace minik::kubelet::images::internal {

// Media types of the Docker v2 schema 2 and OCI image formats.
inline constexpr char kDockerManifest[] = "application/vnd.docker.distribution.manifest.v2+json";
inline constexpr char kDockerManifestList[] =
    "application/vnd.docker.distribution.manifest.list.v2+json";
inline constexpr char kDockerConfig[] = "application/vnd.docker.container.image.v1+json";
inline constexpr char kDockerLayer[] = "application/vnd.docker.image.rootfs.diff.tar";
inline constexpr char kDockerLayerGzip[] = "application/vnd.docker.image.rootfs.diff.tar.gzip";
inline constexpr char kOciManifest[] = "application/vnd.oci.image.manifest.v1+json";
inline constexpr char kOciIndex[] = "application/vnd.oci.image.index.v1+json";
inline constexpr char kOciConfig[] = "application/vnd.oci.image.config.v1+json";
inline constexpr char kOciLayer[] = "application/vnd.oci.image.layer.v1.tar";
inline constexpr char kOciLayerGzip[] = "application/vnd.oci.image.layer.v1.tar+gzip";

bool IsIndexMediaType(const std::string& t);
bool IsManifestMediaType(const std::string& t);

// ---- digests ----------------------------------------------------------------

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t n);
  void Update(std::string_view s) { Update(s.data(), s.size()); }
  std::string Digest();  // "sha256:<hex>"; ends the computation

 private:
  void* ctx_;  // EVP_MD_CTX*
};

std::string Sha256Digest(std::string_view data);
std::string Sha256FileDigest(const std::string& path);
// "sha256:" followed by 64 lowercase hex digits.
bool IsSha256Digest(const std::string& d);
// The hex of a sha256 digest; throws minik::Error naming `what` when it is not one.
std::string DigestHex(const std::string& digest, const std::string& what = "digest");
// The chain id of a layer over its parent's chain id (empty for the lowest
// layer): sha256("<parent> <diff id>"), as the OCI image spec defines it.
std::string ChainId(const std::string& parent_chain_id, const std::string& diff_id);

// The host's platform in OCI words: "amd64", "arm64" (+ variant "v8"), ...
struct Platform {
  std::string os = "linux", architecture, variant;
};
Platform HostPlatform();
// Picks the manifest for `p` from an index / manifest list; throws minik::Error
// listing the platforms it has when none fits.
json ChoosePlatform(const json& index, const Platform& p);

// The image config (Docker or OCI) -> what the kubelet uses.
ImageConfig ParseImageConfig(const json& config);
json ImageConfigToJson(const ImageConfig& c);
ImageConfig ImageConfigFromJson(const json& j);

// ---- tar extraction ------------------------------------------------------------

struct ExtractOptions {
  // Layers: owners, modes, times, devices and xattrs as in the tar, OCI
  // whiteouts turned into overlayfs ones. Otherwise (an archive of an image,
  // read by minik only): plain files, directories and links.
  bool layer = true;
};

struct ExtractResult {
  std::string digest;       // of the bytes read (compressed, when they were)
  std::string diff_id;      // of the uncompressed tar
  int64_t size = 0;         // bytes read
  bool compressed = false;  // gzip
};

// Unpacks the tar (plain or gzip) at `archive` into the existing, empty
// directory `dest`. Entries whose path leaves `dest` (`..`, or through a
// symbolic link written earlier) are rejected with minik::Error; nothing is
// ever written outside `dest`.
ExtractResult ExtractTar(const std::string& archive, const std::string& dest,
                         const ExtractOptions& opts = {});

// Writes a tar file (pax format, uncompressed) entry by entry.
class TarWriter {
 public:
  explicit TarWriter(const std::string& path);
  ~TarWriter();
  TarWriter(const TarWriter&) = delete;
  TarWriter& operator=(const TarWriter&) = delete;
  void AddDirectory(const std::string& name, mode_t mode, int64_t mtime = 0);
  void AddFileData(const std::string& name, const std::string& data, mode_t mode,
                   int64_t mtime = 0);
  // Copies a file from the host, keeping its mode and mtime.
  void AddFileFromHost(const std::string& name, const std::string& host_path);
  void AddSymlink(const std::string& name, const std::string& target, int64_t mtime = 0);
  void Close();

 private:
  std::string path_;
  void* archive_;  // struct archive*
};

// ---- the store's files -------------------------------------------------------

// A layer as an image record holds it.
struct LayerRecord {
  std::string digest;  // of the blob as stored
  std::string media_type;
  int64_t size = 0;
  std::string diff_id;
  std::string chain_id;
};

// What Commit needs to add an image whose blobs are in place.
struct NewImage {
  std::string config_json;    // the config blob, byte for byte
  std::string manifest_json;  // the image manifest blob (made up for `docker save` archives)
  std::string manifest_media_type;
  std::vector<LayerRecord> layers;   // digest, media_type, size, diff_id; chain ids filled in
  std::vector<std::string> refs;     // normalized tag references
  std::vector<std::string> digests;  // "name@sha256:..."
};

// The layout under the store's root and its two locks:
//  - `index.lock` (exclusive, briefly) around every read-modify-write of index.json;
//  - `gc.lock`: every operation that adds files holds it shared for its whole
//    duration; garbage collection sweeps only when it gets it exclusively, so
//    it never removes a blob or layer an operation in flight is about to use.
class Layout {
 public:
  // Creates the directories unless `create` is false (readers).
  explicit Layout(std::string root, bool create = true);
  const std::string& root() const { return root_; }
  std::string BlobPath(const std::string& digest) const;
  std::string LayerPath(const std::string& chain_id) const;
  // A fresh path under `tmp/` (on the same file system, so it can be renamed
  // into place); nothing is created.
  std::string TempPath(const std::string& hint) const;

  // Stores bytes as a blob; when `expected` is given the content must match it.
  std::string PutBlob(const std::string& data, const std::string& expected = "");
  // Stores a file as the blob `expected` after checking its digest (and its
  // size when `size` >= 0). `link_ok`: the file may be hard-linked instead of
  // copied (it is ours and will not change).
  void PutBlobFile(const std::string& path, const std::string& expected, int64_t size,
                   bool link_ok);
  bool HasBlob(const std::string& digest) const;

  // Unpacks every layer (from its blob) that is not unpacked yet, lowest first,
  // checking each diff id, and fills in chain ids.
  void EnsureLayers(std::vector<LayerRecord>& layers, const Progress& progress);

  // Records the image: moves its references and digests to it from any other
  // image (which goes when nothing refers to it any more). Returns the image.
  Image Commit(NewImage img, const Progress& progress);

  json ReadIndex() const;
  Image ToImage(const json& record) const;

 private:
  std::string root_;
};

// Holds a flock for its lifetime.
class FileLock {
 public:
  // `exclusive`, or shared; `wait`: block until granted, otherwise held() tells.
  FileLock(const std::string& path, bool exclusive, bool wait = true);
  ~FileLock();
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  bool held() const { return held_; }

 private:
  int fd_ = -1;
  bool held_ = false;
};

// Removes blobs and layers that no image in the index uses, and leftovers in
// tmp/, when no operation is in flight (otherwise it does nothing).
void CollectGarbage(const Layout& layout);

// Pull's half that talks to the registry (registry.cc).
Image PullFromRegistry(Layout& layout, const Reference& ref,
                       const std::optional<RegistryAuth>& auth, const Progress& progress);
// Load's halves (archive.cc).
std::vector<Image> LoadArchive(Layout& layout, const std::string& path, const Progress& progress);

}  // namespace minik::kubelet::images::internal
