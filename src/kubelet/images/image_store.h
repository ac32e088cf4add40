#pragma once
// The node's OCI image store. Content-addressed blobs, layers unpacked once
// and shared between images (whiteouts turned into overlayfs whiteouts, so
// layers stack as overlay lowerdirs), and an index of image references.
//
// Layout under `root` (the node's `images/` directory):
//   blobs/sha256/<hex>      manifests, configs, compressed layers as received
//   layers/<chain-id-hex>/  unpacked layers, each a directory to use as lowerdir
//   index.json              reference -> image id, and each image's record
//
// Sources: registry pulls over the OCI distribution API, archives
// (`docker save` tars and OCI layouts), and images minik builds itself.

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "common/json.h"

namespace minik::kubelet::images {

// "nginx" -> "docker.io/library/nginx:latest"; "localhost:5000/a/b@sha256:..."
// keeps its digest. Throws std::invalid_argument with a message for bad input.
std::string NormalizeReference(const std::string& ref);

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

// Progress of a pull or load: a short human-readable line per step.
using Progress = std::function<void(const std::string&)>;

class ImageStore {
 public:
  explicit ImageStore(std::string root);

  // By normalized reference, "sha256:<id>", an unambiguous id prefix, or a
  // reference with digest. nullopt when absent.
  std::optional<Image> Find(const std::string& ref) const;
  std::vector<Image> List() const;

  // Pulls from a registry over the OCI distribution API: manifest lists and
  // OCI indexes (choosing linux/amd64, or the host's platform), gzip and
  // uncompressed layers, digest verification of every blob, anonymous and
  // bearer-token auth (401 + WWW-Authenticate: Bearer realm=...,service=...,scope=...),
  // basic auth. Plain HTTP for localhost / 127.0.0.1 registries, HTTPS otherwise.
  // Throws minik::Error saying where it looked and what went wrong
  // (e.g. `pull docker.io/library/nginx:latest: GET https://registry-1.docker.io/v2/...: ...`).
  Image Pull(const std::string& ref, const std::optional<RegistryAuth>& auth = std::nullopt,
             const Progress& progress = nullptr);

  // Loads every image in a `docker save` tar (manifest.json + repositories) or
  // an OCI image layout (directory or tar with oci-layout + index.json;
  // references from the `org.opencontainers.image.ref.name` annotation).
  std::vector<Image> Load(const std::string& path, const Progress& progress = nullptr);

  // Adds an image made of one layer (a tar file, uncompressed) and a config,
  // under `refs` (how minik builds its built-in images).
  Image Import(const std::vector<std::string>& refs, const std::string& layer_tar,
               const ImageConfig& config);

  // Removes a reference; the image (and layers no image uses) goes with its
  // last reference. Throws minik::Error when the reference is unknown.
  void Remove(const std::string& ref);

 private:
  std::string root_;
};

// Builds the built-in images into the store unless present:
// `busybox` (docker.io/library/busybox:latest and :<version of busybox-static>)
// from /bin/busybox of the Debian package busybox-static, and
// `minik/echo-server` (docker.io/minik/echo-server:latest): the running minik
// binary and the shared libraries it needs, entrypoint `minik echo-server`.
void EnsureBuiltinImages(ImageStore& store, const std::string& minik_binary,
                         const Progress& progress = nullptr);

}  // namespace minik::kubelet::images
