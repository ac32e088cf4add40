// Loading images from archives: `docker save` output (manifest.json with
// Config, RepoTags, Layers, and the legacy `repositories` file) and OCI image
// layouts (oci-layout, index.json, blobs/), each as a directory or a tar.

#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>

#include "common/error.h"
#include "common/fs.h"
#include "kubelet/images/internal.h"

namespace minik::kubelet::images::internal {
namespace {

std::string RealPath(const std::string& p) {
  char buf[PATH_MAX];
  if (!::realpath(p.c_str(), buf)) {
    throw SystemError("resolve '" + p + "'", errno);
  }
  return buf;
}

// A file named by the archive, which must stay inside it even through the
// archive's own symbolic links (old `docker save` links shared layers).
std::string Inside(const std::string& root, const std::string& rel) {
  if (rel.empty()) {
    throw Error("an empty file name in the archive");
  }
  std::string p = RealPath(root + "/" + rel);
  if (p.rfind(root + "/", 0) != 0) {
    throw Error("'" + rel + "' points outside the archive");
  }
  return p;
}

json ParseJsonFile(const std::string& path, const std::string& what) {
  try {
    return json::parse(fs::ReadFile(path));
  } catch (const json::exception& e) {
    throw Error(what + ": " + e.what());
  }
}

bool IsGzip(const std::string& path) {
  FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) {
    throw SystemError("open '" + path + "'", errno);
  }
  unsigned char b[2] = {0, 0};
  size_t n = std::fread(b, 1, 2, f);
  std::fclose(f);
  return n == 2 && b[0] == 0x1f && b[1] == 0x8b;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw SystemError("stat '" + path + "'", errno);
  }
  return st.st_size;
}

std::vector<std::string> DiffIds(const json& config, const std::string& what) {
  if (!config.is_object() || !config.contains("rootfs") || !config["rootfs"].is_object()) {
    throw Error(what + " has no rootfs.diff_ids");
  }
  auto ids = config["rootfs"].value("diff_ids", std::vector<std::string>{});
  for (const auto& d : ids) {
    DigestHex(d, what + ": diff id");
  }
  return ids;
}

// `docker save`: manifest.json is a list of
// {"Config": "<file>", "RepoTags": ["nginx:latest"], "Layers": ["<dir>/layer.tar", ...]}.
std::vector<Image> LoadDockerSave(Layout& layout, const std::string& dir, bool ours,
                                  const Progress& progress) {
  json manifest = ParseJsonFile(dir + "/manifest.json", "manifest.json");
  if (!manifest.is_array()) {
    throw Error("manifest.json is not a list of images");
  }
  json repositories = json::object();
  if (fs::Exists(dir + "/repositories")) {
    repositories = ParseJsonFile(dir + "/repositories", "repositories");
  }
  std::vector<Image> out;
  for (const auto& entry : manifest) {
    if (!entry.is_object() || !entry.contains("Config") || !entry["Config"].is_string()) {
      throw Error("manifest.json: an entry without Config");
    }
    std::string config_rel = entry["Config"].get<std::string>();
    std::string config_json = fs::ReadFile(Inside(dir, config_rel));
    std::string config_digest = Sha256Digest(config_json);
    // The config file is named after its digest ("<hex>.json", or
    // "blobs/sha256/<hex>" since Docker 25).
    std::string name = config_rel.substr(config_rel.rfind('/') + 1);
    if (name.size() > 5 && name.compare(name.size() - 5, 5, ".json") == 0) {
      name.resize(name.size() - 5);
    }
    if (IsSha256Digest("sha256:" + name) && "sha256:" + name != config_digest) {
      throw Error("config '" + config_rel + "': content has digest " + config_digest);
    }
    json config = ParseJsonFile(Inside(dir, config_rel), "config '" + config_rel + "'");
    std::vector<std::string> diff_ids = DiffIds(config, "config '" + config_rel + "'");
    auto layer_files = entry.value("Layers", std::vector<std::string>{});
    if (layer_files.size() != diff_ids.size()) {
      throw Error("manifest.json lists " + std::to_string(layer_files.size()) +
                  " layers for config '" + config_rel + "', which has " +
                  std::to_string(diff_ids.size()));
    }
    NewImage img;
    json manifest_layers = json::array();
    for (size_t i = 0; i < layer_files.size(); ++i) {
      std::string p = Inside(dir, layer_files[i]);
      LayerRecord l;
      l.diff_id = diff_ids[i];
      l.size = FileSize(p);
      if (IsGzip(p)) {
        l.media_type = kDockerLayerGzip;
        l.digest = Sha256FileDigest(p);
      } else {
        // An uncompressed layer's digest is its diff id; PutBlobFile checks it.
        l.media_type = kDockerLayer;
        l.digest = l.diff_id;
      }
      if (progress) {
        progress(DigestHex(l.digest).substr(0, 12) + ": loading layer " + std::to_string(i + 1) +
                 "/" + std::to_string(layer_files.size()));
      }
      try {
        layout.PutBlobFile(p, l.digest, l.size, ours);
      } catch (const Error& e) {
        throw Error("layer '" + layer_files[i] + "': " + e.what() +
                    (l.media_type == kDockerLayer ? " (the diff id in the config)" : ""));
      }
      manifest_layers.push_back(
          {{"mediaType", l.media_type}, {"size", l.size}, {"digest", l.digest}});
      img.layers.push_back(l);
    }
    for (const auto& tag : entry.value("RepoTags", std::vector<std::string>{})) {
      try {
        img.refs.push_back(NormalizeReference(tag));
      } catch (const std::invalid_argument& e) {
        throw Error(std::string("manifest.json: ") + e.what());
      }
    }
    // `repositories` (legacy) names the top layer's directory for each tag.
    if (!layer_files.empty() && repositories.is_object()) {
      std::string top = layer_files.back();
      top = top.substr(0, top.rfind('/'));
      for (const auto& [repo, tags] : repositories.items()) {
        if (!tags.is_object()) {
          continue;
        }
        for (const auto& [tag, id] : tags.items()) {
          if (id.is_string() && id.get<std::string>() == top) {
            try {
              std::string r = NormalizeReference(repo + ":" + tag);
              if (std::find(img.refs.begin(), img.refs.end(), r) == img.refs.end()) {
                img.refs.push_back(r);
              }
            } catch (const std::invalid_argument& e) {
              throw Error(std::string("repositories: ") + e.what());
            }
          }
        }
      }
    }
    layout.EnsureLayers(img.layers, progress);
    img.config_json = config_json;
    img.manifest_json = json{
        {"schemaVersion", 2},
        {"mediaType", kDockerManifest},
        {"config",
         {{"mediaType", kDockerConfig}, {"size", config_json.size()}, {"digest", config_digest}}},
        {"layers",
         manifest_layers}}.dump();
    img.manifest_media_type = kDockerManifest;
    out.push_back(layout.Commit(std::move(img), progress));
  }
  return out;
}

// A blob of the layout, read whole and checked against its descriptor.
std::string ReadOciBlob(const std::string& dir, const json& desc) {
  std::string digest = desc.value("digest", "");
  std::string hex = DigestHex(digest, "descriptor digest");
  std::string data = fs::ReadFile(Inside(dir, "blobs/sha256/" + hex));
  std::string got = Sha256Digest(data);
  if (got != digest) {
    throw Error("blob " + digest + ": content has digest " + got);
  }
  int64_t size = desc.value("size", int64_t{-1});
  if (size >= 0 && static_cast<int64_t>(data.size()) != size) {
    throw Error("blob " + digest + ": " + std::to_string(data.size()) +
                " bytes where its descriptor says " + std::to_string(size));
  }
  return data;
}

std::vector<Image> LoadOciLayout(Layout& layout, const std::string& dir, bool ours,
                                 const Progress& progress) {
  json marker = ParseJsonFile(dir + "/oci-layout", "oci-layout");
  std::string version = marker.value("imageLayoutVersion", "");
  if (version.rfind("1.", 0) != 0) {
    throw Error("oci-layout: unsupported imageLayoutVersion \"" + version + "\"");
  }
  json index = ParseJsonFile(dir + "/index.json", "index.json");
  if (!index.contains("manifests") || !index["manifests"].is_array()) {
    throw Error("index.json has no manifests");
  }
  std::vector<Image> out;
  for (const auto& top : index["manifests"]) {
    std::vector<std::string> refs;
    if (top.contains("annotations") && top["annotations"].is_object()) {
      const json& a = top["annotations"];
      // containerd and Docker put the full name here, and only the tag in ref.name.
      std::string name = a.value("io.containerd.image.name", "");
      if (name.empty()) {
        name = a.value("org.opencontainers.image.ref.name", "");
      }
      if (!name.empty()) {
        try {
          refs.push_back(NormalizeReference(name));
        } catch (const std::invalid_argument& e) {
          throw Error(std::string("index.json: ") + e.what());
        }
      }
    }
    json desc = top;
    std::string body, media_type;
    for (int depth = 0;; ++depth) {
      if (depth > 4) {
        throw Error("index.json: indexes nested too deep");
      }
      body = ReadOciBlob(dir, desc);
      json doc = json::parse(body);
      media_type = desc.value("mediaType", doc.value("mediaType", ""));
      if (media_type.empty()) {
        media_type = doc.contains("manifests") ? kOciIndex : kOciManifest;
      }
      if (IsIndexMediaType(media_type)) {
        desc = ChoosePlatform(doc, HostPlatform());
        continue;
      }
      if (!IsManifestMediaType(media_type)) {
        throw Error("index.json: descriptor " + desc.value("digest", "") + " is a " + media_type +
                    ", not an image");
      }
      break;
    }
    json manifest = json::parse(body);
    if (!manifest.contains("config") || !manifest["config"].is_object() ||
        !manifest.contains("layers") || !manifest["layers"].is_array()) {
      throw Error("manifest " + desc.value("digest", "") + " has no config or layers");
    }
    std::string config_json = ReadOciBlob(dir, manifest["config"]);
    std::vector<std::string> diff_ids =
        DiffIds(json::parse(config_json), "config " + manifest["config"].value("digest", ""));
    if (diff_ids.size() != manifest["layers"].size()) {
      throw Error("manifest " + desc.value("digest", "") + " has " +
                  std::to_string(manifest["layers"].size()) + " layers where its config has " +
                  std::to_string(diff_ids.size()));
    }
    NewImage img;
    size_t i = 0;
    for (const auto& ld : manifest["layers"]) {
      LayerRecord l;
      l.digest = ld.value("digest", "");
      l.media_type = ld.value("mediaType", kOciLayer);
      l.size = ld.value("size", int64_t{-1});
      l.diff_id = diff_ids[i++];
      std::string hex = DigestHex(l.digest, "layer digest");
      if (progress) {
        progress(hex.substr(0, 12) + ": loading layer " + std::to_string(i) + "/" +
                 std::to_string(diff_ids.size()));
      }
      layout.PutBlobFile(Inside(dir, "blobs/sha256/" + hex), l.digest, l.size, ours);
      img.layers.push_back(l);
    }
    layout.EnsureLayers(img.layers, progress);
    img.config_json = config_json;
    img.manifest_json = body;
    img.manifest_media_type = media_type;
    img.refs = refs;
    out.push_back(layout.Commit(std::move(img), progress));
  }
  return out;
}

}  // namespace

std::vector<Image> LoadArchive(Layout& layout, const std::string& path, const Progress& progress) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw SystemError("stat '" + path + "'", errno);
  }
  std::string dir;
  bool ours = !S_ISDIR(st.st_mode);
  if (ours) {
    dir = layout.TempPath("load");
    if (::mkdir(dir.c_str(), 0700) != 0) {
      throw SystemError("mkdir '" + dir + "'", errno);
    }
    try {
      ExtractTar(path, dir, ExtractOptions{.layer = false});
    } catch (...) {
      fs::RemoveAll(dir);
      throw;
    }
  }
  dir = RealPath(ours ? dir : path);
  try {
    std::vector<Image> images;
    if (fs::Exists(dir + "/manifest.json")) {
      images = LoadDockerSave(layout, dir, ours, progress);
    } else if (fs::Exists(dir + "/oci-layout") && fs::Exists(dir + "/index.json")) {
      images = LoadOciLayout(layout, dir, ours, progress);
    } else if (fs::Exists(dir + "/repositories")) {
      throw Error(
          "a `docker save` archive from before Docker 1.10 (no manifest.json), which minik does "
          "not read");
    } else {
      throw Error(
          "neither a `docker save` archive (manifest.json) nor an OCI image layout (oci-layout, "
          "index.json)");
    }
    if (ours) {
      fs::RemoveAll(dir);
    }
    return images;
  } catch (...) {
    if (ours) {
      fs::RemoveAll(dir);
    }
    throw;
  }
}

}  // namespace minik::kubelet::images::internal
