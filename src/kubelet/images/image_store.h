#pragma once
// The node's OCI image store. Content-addressed blobs, layers unpacked once
// and shared between images (whiteouts turned into overlayfs whiteouts, so
// layers stack as overlay lowerdirs), and an index of image references.
//
// Layout under `root` (the node's `images/` directory):
//   blobs/sha256/<hex>      manifests, configs, compressed layers as received
//   layers/<chain-id-hex>/  unpacked layers, each a directory to use as lowerdir
//   index.json              reference -> image id, and each image's record
//   tmp/                    work in progress (downloads, unpacking), renamed into place
//   index.lock, gc.lock     flock(2) files, see below
//
// Sources: registry pulls over the OCI distribution API, archives
// (`docker save` tars and OCI layouts), and images minik builds itself.
//
// Several threads and processes (the kubelet and `minik image ...`) may use
// one store at once: index.json is rewritten atomically under index.lock,
// layers are unpacked into tmp/ and renamed, and unused blobs and layers are
// collected only while no pull, load or import holds gc.lock.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"

namespace minik::kubelet::images {

// "nginx" -> "docker.io/library/nginx:latest"; "localhost:5000/a/b@sha256:..."
// keeps its digest. Throws std::invalid_argument with a message for bad input.
std::string NormalizeReference(const std::string& ref);

// A reference split as Docker does: `domain/path[:tag][@digest]`.
struct Reference {
  std::string domain;  // "docker.io", "localhost:5000", "quay.io"
  std::string path;    // "library/nginx", "a/b"
  std::string tag;     // "latest" when neither tag nor digest was given
  std::string digest;  // "sha256:<hex>" or ""

  std::string Name() const { return domain + "/" + path; }  // "docker.io/library/nginx"
  std::string String() const;                               // the normalized reference
  // The short form `docker images` shows: "nginx", "user/app", "quay.io/a/b".
  std::string FamiliarName() const;
};

// Parses and normalizes; throws std::invalid_argument as NormalizeReference does.
Reference ParseReference(const std::string& ref);

struct ImageConfig {
  std::vector<std::string> entrypoint, cmd, env;
  std::string working_dir, user;
  std::vector<std::string> exposed_ports;  // "8080/tcp"
  json labels = json::object();
};

struct Image {
  std::string id;                    // "sha256:<config digest hex>"
  std::vector<std::string> refs;     // normalized references that point at it
  std::vector<std::string> digests;  // "docker.io/library/nginx@sha256:<manifest>"
  std::vector<std::string> layers;   // unpacked layer directories, lowest first
  ImageConfig config;
  int64_t size = 0;  // bytes of the compressed layers
};

// Credentials for a registry, from imagePullSecrets (.dockerconfigjson) or the caller.
struct RegistryAuth {
  std::string username, password;
  std::string identity_token;  // bearer token, if already known
};

// The credentials a Docker config gives for the registry of `ref`: the
// `.dockerconfigjson` of an imagePullSecret or ~/.docker/config.json
// (`{"auths": {"HOST": {"auth": base64(user:pass)}}}`, or username/password,
// identitytoken), or a legacy `.dockercfg` (the same map without "auths").
// Keys may be a host, a host:port or a URL ("https://index.docker.io/v1/").
std::optional<RegistryAuth> AuthFromDockerConfig(const json& docker_config, const std::string& ref);

// Progress of a pull or load: a short human-readable line per step.
using Progress = std::function<void(const std::string&)>;

class ImageStore {
 public:
  // Creates the directories under `root` when missing. Cheap to copy.
  explicit ImageStore(std::string root);

  // By reference (normalized here: "nginx" finds docker.io/library/nginx:latest),
  // by reference with digest (`name@sha256:<manifest>`), by "sha256:<id>" or an
  // unambiguous prefix of the id's hex. nullopt when absent.
  std::optional<Image> Find(const std::string& ref) const;
  std::vector<Image> List() const;

  // Pulls from a registry over the OCI distribution API: manifest lists and
  // OCI indexes (choosing linux/amd64, or the host's platform), gzip and
  // uncompressed layers, digest verification of every blob, anonymous and
  // bearer-token auth (401 + WWW-Authenticate: Bearer realm=...,service=...,scope=...),
  // basic auth. Plain HTTP for localhost / 127.0.0.1 registries, HTTPS otherwise.
  // Throws minik::Error saying where it looked and what went wrong
  // (e.g. `pull docker.io/library/nginx:latest: GET https://registry-1.docker.io/v2/...: ...`).
  // A tag pull records the tag and `name@<digest of what the tag named>` (a
  // manifest list's digest for a list); a digest pull records the digest only.
  // Blobs already in the store are not downloaded again.
  Image Pull(const std::string& ref, const std::optional<RegistryAuth>& auth = std::nullopt,
             const Progress& progress = nullptr);

  // Loads every image in a `docker save` tar (manifest.json + repositories) or
  // an OCI image layout (directory or tar with oci-layout + index.json;
  // references from the `io.containerd.image.name` annotation, else
  // `org.opencontainers.image.ref.name`). Tars may be gzip-compressed. Every
  // blob is checked against its digest and every layer against its diff id.
  std::vector<Image> Load(const std::string& path, const Progress& progress = nullptr);

  // Adds an image made of one layer (a tar file, uncompressed) and a config,
  // under `refs` (how minik builds its built-in images). The tar is
  // hard-linked into the store when it can be, else copied; the caller keeps it.
  Image Import(const std::vector<std::string>& refs, const std::string& layer_tar,
               const ImageConfig& config);

  // Removes a reference, as `docker rmi` does: a tag is untagged and the image
  // goes with its last tag; an id removes the image with all its names. Blobs
  // and layers no image uses any more go too. Throws minik::Error when nothing
  // matches. (Whether a container still uses the image is the caller's concern.)
  void Remove(const std::string& ref);

  const std::string& root() const { return root_; }

 private:
  std::string root_;
};

// Builds the built-in images into the store unless present:
// `busybox` (docker.io/library/busybox:latest and :<version of busybox-static>)
// from /bin/busybox of the Debian package busybox-static, and
// `minik/echo-server` (docker.io/minik/echo-server:latest): the running minik
// binary and the shared libraries it needs, entrypoint `minik echo-server`.
// Each is rebuilt when its binary changed (the label `dev.minik.binary-sha256`
// holds the digest it was built from). Throws minik::Error.
void EnsureBuiltinImages(ImageStore& store, const std::string& minik_binary,
                         const Progress& progress = nullptr);

// Whether minik built the image itself (EnsureBuiltinImages). No registry has
// these, so the kubelet never pulls them, whatever the pull policy says.
bool IsBuiltin(const Image& image);

}  // namespace minik::kubelet::images
