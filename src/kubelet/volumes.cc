#include "kubelet/volumes.h"

#include <sys/mount.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <filesystem>
#include <set>

#include "api/quantity.h"
#include "common/base64.h"
#include "common/clock.h"
#include "common/error.h"
#include "common/fs.h"

namespace minik::kubelet {
namespace {

namespace stdfs = std::filesystem;

// Files for a projected-like volume: relative path -> (content, mode).
using Files = std::map<std::string, std::pair<std::string, int>>;

// Writes `files` into `dir` atomically: a new timestamped directory, then the
// `..data` symlink is swapped to it, and each top-level entry is a symlink
// through `..data`, so a reader never sees half of an update.
void WriteAtomic(const std::string& dir, const Files& files) {
  fs::MakeDirs(dir, 0755);
  std::string stamp =
      "..data_" + std::to_string(std::chrono::steady_clock::now().time_since_epoch().count());
  std::string target = dir + "/" + stamp;
  // Skip when nothing changed.
  std::error_code ec;
  stdfs::path current = stdfs::read_symlink(dir + "/..data", ec);
  if (!ec) {
    bool same = true;
    for (const auto& [rel, content] : files) {
      std::string p = dir + "/" + current.string() + "/" + rel;
      std::string old;
      try {
        old = fs::ReadFile(p);
      } catch (const std::exception&) {
        same = false;
        break;
      }
      struct stat st;
      if (old != content.first || stat(p.c_str(), &st) != 0 ||
          static_cast<int>(st.st_mode & 07777) != content.second) {
        same = false;
        break;
      }
    }
    size_t count = 0;
    for (auto it = stdfs::recursive_directory_iterator(dir + "/" + current.string(), ec);
         !ec && it != stdfs::recursive_directory_iterator(); ++it) {
      if (it->is_regular_file()) {
        ++count;
      }
    }
    if (same && count == files.size()) {
      return;
    }
  }
  fs::MakeDirs(target, 0755);
  for (const auto& [rel, content] : files) {
    std::string p = target + "/" + rel;
    fs::MakeDirs(p.substr(0, p.rfind('/')), 0755);
    fs::WriteFileAtomic(p, content.first, static_cast<mode_t>(content.second));
  }
  std::string tmp_link = dir + "/..data_tmp";
  unlink(tmp_link.c_str());
  if (symlink(stamp.c_str(), tmp_link.c_str()) != 0 ||
      rename(tmp_link.c_str(), (dir + "/..data").c_str()) != 0) {
    throw SystemError("update volume '" + dir + "'", errno);
  }
  // Top-level names link through ..data.
  std::set<std::string> tops;
  for (const auto& [rel, _] : files) {
    tops.insert(rel.substr(0, rel.find('/')));
  }
  for (const auto& top : tops) {
    std::string link = dir + "/" + top;
    struct stat st;
    if (lstat(link.c_str(), &st) != 0) {
      if (symlink(("..data/" + top).c_str(), link.c_str()) != 0) {
        throw SystemError("link '" + link + "'", errno);
      }
    }
  }
  // Remove old generations and links to names that are gone.
  for (const auto& e : stdfs::directory_iterator(dir, ec)) {
    std::string name = e.path().filename().string();
    if (name.rfind("..data_", 0) == 0 && name != stamp) {
      stdfs::remove_all(e.path(), ec);
    } else if (name.rfind("..", 0) != 0 && !tops.count(name) && e.is_symlink()) {
      stdfs::remove(e.path(), ec);
    }
  }
}

int ModeOf(const json& v, const json& item, int def) {
  if (item.is_object() && item.contains("mode") && item["mode"].is_number_integer()) {
    return item["mode"].get<int>();
  }
  if (v.contains("defaultMode") && v["defaultMode"].is_number_integer()) {
    return v["defaultMode"].get<int>();
  }
  return def;
}

// Adds the keys of a configMap or secret (data decoded) to `files`.
void AddKeys(const json& source, const json& data, bool base64, Files& files, int def_mode,
             const std::string& what) {
  int mode = ModeOf(source, json(), def_mode);
  if (source.contains("items") && source["items"].is_array() && !source["items"].empty()) {
    for (const auto& item : source["items"]) {
      std::string key = item.value("key", "");
      if (!data.contains(key)) {
        if (source.value("optional", false)) {
          continue;
        }
        throw Error(what + " has no key \"" + key + "\"");
      }
      std::string v = data[key].get<std::string>();
      files[item.value("path", key)] = {base64 ? base64::DecodeLenient(v).value_or("") : v,
                                        ModeOf(source, item, def_mode)};
    }
    return;
  }
  for (auto it = data.begin(); it != data.end(); ++it) {
    std::string v = it.value().is_string() ? it.value().get<std::string>() : "";
    files[it.key()] = {base64 ? base64::DecodeLenient(v).value_or("") : v, mode};
  }
}

json GetOptional(const VolumeContext& ctx, const std::string& path, bool optional,
                 const std::string& what) {
  try {
    return ctx.client->Get(path);
  } catch (const client::ApiError& e) {
    if (e.code == 404 && optional) {
      return nullptr;
    }
    if (e.code == 404) {
      throw Error(what + " not found");
    }
    throw;
  }
}

void ConfigMapFiles(const VolumeContext& ctx, const std::string& ns, const json& src, Files& files,
                    int def_mode) {
  std::string name = src.value("name", "");
  json cm = GetOptional(ctx, "/api/v1/namespaces/" + ns + "/configmaps/" + name,
                        src.value("optional", false), "configmap \"" + name + "\"");
  if (cm.is_null()) {
    return;
  }
  // Keys of data and binaryData (decoded here) are one namespace, as items may name either.
  json data = cm.value("data", json::object());
  const json binary = cm.value("binaryData", json::object());
  for (const auto& [k, v] : binary.items()) {
    data[k] = base64::DecodeLenient(v.is_string() ? v.get<std::string>() : "").value_or("");
  }
  AddKeys(src, data, false, files, def_mode, "configmap \"" + name + "\"");
}

void SecretFiles(const VolumeContext& ctx, const std::string& ns, const std::string& name,
                 const json& src, Files& files, int def_mode) {
  json s = GetOptional(ctx, "/api/v1/namespaces/" + ns + "/secrets/" + name,
                       src.value("optional", false), "secret \"" + name + "\"");
  if (s.is_null()) {
    return;
  }
  AddKeys(src, s.value("data", json::object()), true, files, def_mode, "secret \"" + name + "\"");
}

void DownwardFiles(const json& pod, const json& src, Files& files, int def_mode) {
  for (const auto& item : src.value("items", json::array())) {
    std::string value;
    if (item.contains("fieldRef")) {
      value = FieldRefValue(pod, item["fieldRef"].value("fieldPath", ""));
    } else if (item.contains("resourceFieldRef")) {
      std::string res = item["resourceFieldRef"].value("resource", "");
      std::string cname = item["resourceFieldRef"].value("containerName", "");
      for (const auto& c : pod["spec"].value("containers", json::array())) {
        if (cname.empty() || c.value("name", "") == cname) {
          auto dot = res.find('.');
          std::string kind = res.substr(0, dot), r = res.substr(dot + 1);
          const json* q = Find(c, "resources." + kind + "." + r);
          value = q && q->is_string() ? q->get<std::string>() : "0";
          break;
        }
      }
    }
    files[item.value("path", "")] = {value, ModeOf(src, item, def_mode)};
  }
}

}  // namespace

std::string FieldRefValue(const json& pod, const std::string& f) {
  auto map_value = [&](const char* field, size_t prefix) -> std::string {
    std::string key = f.substr(prefix);
    if (key.size() >= 4 && key.front() == '[' && key.back() == ']') {
      key = key.substr(2, key.size() - 4);
      const json* m = Find(pod, field);
      return m && m->is_object() && m->contains(key) ? (*m)[key].get<std::string>() : "";
    }
    // The whole map, one key="value" per line, sorted.
    std::string out;
    const json* m = Find(pod, field);
    if (m && m->is_object()) {
      for (auto it = m->begin(); it != m->end(); ++it) {
        out += it.key() + "=\"" + it.value().get<std::string>() + "\"\n";
      }
    }
    return out;
  };
  if (f.rfind("metadata.labels", 0) == 0) {
    return map_value("metadata.labels", 15);
  }
  if (f.rfind("metadata.annotations", 0) == 0) {
    return map_value("metadata.annotations", 20);
  }
  if (f == "status.podIPs") {
    return GetString(pod, "status.podIP");
  }
  if (f == "status.hostIPs") {
    return GetString(pod, "status.hostIP");
  }
  return GetString(pod, f);
}

std::string ResolveSubPath(const std::string& volume_path, const std::string& sub_path) {
  if (sub_path.empty()) {
    return volume_path;
  }
  stdfs::path rel(sub_path);
  if (rel.is_absolute()) {
    throw Error("subPath \"" + sub_path + "\" must be a relative path");
  }
  for (const auto& part : rel) {
    if (part == "..") {
      throw Error("subPath \"" + sub_path + "\" must not contain '..'");
    }
  }
  stdfs::path full = stdfs::path(volume_path) / rel;
  std::error_code ec;
  if (!stdfs::exists(full, ec) && !stdfs::is_symlink(full, ec)) {
    fs::MakeDirs(full.string(), 0755);
  }
  // Resolve symlinks and check the result stays inside the volume.
  stdfs::path real = stdfs::canonical(full, ec);
  stdfs::path root = stdfs::canonical(volume_path, ec);
  std::string r = real.string(), v = root.string();
  if (ec || (r != v && r.rfind(v + "/", 0) != 0)) {
    throw Error("subPath \"" + sub_path + "\" resolves outside the volume");
  }
  return r;
}

std::map<std::string, PreparedVolume> PrepareVolumes(const VolumeContext& ctx, const json& pod) {
  std::map<std::string, PreparedVolume> out;
  std::string ns = GetString(pod, "metadata.namespace");
  std::string base = ctx.pod_dir + "/volumes";
  for (const auto& v : pod["spec"].value("volumes", json::array())) {
    std::string name = v.value("name", "");
    std::string dir = base + "/" + name;
    PreparedVolume pv;
    pv.path = dir;
    try {
      if (v.contains("emptyDir")) {
        fs::MakeDirs(dir, 0777);
        chmod(dir.c_str(), 0777);
        if (v["emptyDir"].value("medium", "") == "Memory" && !fs::IsMountPoint(dir)) {
          std::string opts = "mode=1777";
          if (v["emptyDir"].contains("sizeLimit")) {
            int64_t bytes = api::QuantityMilli(v["emptyDir"]["sizeLimit"]) / 1000;
            opts += ",size=" + std::to_string(bytes);
          }
          if (mount("tmpfs", dir.c_str(), "tmpfs", MS_NOSUID | MS_NODEV, opts.c_str()) != 0) {
            throw SystemError("mount tmpfs for emptyDir", errno);
          }
        }
      } else if (v.contains("hostPath")) {
        std::string path = v["hostPath"].value("path", "");
        std::string type = v["hostPath"].value("type", "");
        struct stat st;
        bool exists = stat(path.c_str(), &st) == 0;
        if (type == "DirectoryOrCreate" && !exists) {
          fs::MakeDirs(path, 0755);
        } else if (type == "FileOrCreate" && !exists) {
          fs::WriteFileAtomic(path, "", 0644);
        } else if (!type.empty()) {
          auto need = [&](bool ok, const char* what) {
            if (!ok) {
              throw Error("hostPath type check failed: " + path + " is not a " + what);
            }
          };
          if (type == "Directory")
            need(exists && S_ISDIR(st.st_mode), "directory");
          if (type == "File")
            need(exists && S_ISREG(st.st_mode), "file");
          if (type == "Socket")
            need(exists && S_ISSOCK(st.st_mode), "socket");
          if (type == "CharDevice")
            need(exists && S_ISCHR(st.st_mode), "character device");
          if (type == "BlockDevice")
            need(exists && S_ISBLK(st.st_mode), "block device");
        }
        pv.path = path;
      } else if (v.contains("configMap")) {
        Files files;
        ConfigMapFiles(ctx, ns, v["configMap"], files, 0644);
        WriteAtomic(dir, files);
        pv.read_only = true;
      } else if (v.contains("secret")) {
        Files files;
        SecretFiles(ctx, ns, v["secret"].value("secretName", ""), v["secret"], files, 0644);
        WriteAtomic(dir, files);
        pv.read_only = true;
      } else if (v.contains("downwardAPI")) {
        Files files;
        DownwardFiles(pod, v["downwardAPI"], files, ModeOf(v["downwardAPI"], json(), 0644));
        WriteAtomic(dir, files);
        pv.read_only = true;
      } else if (v.contains("projected")) {
        Files files;
        int def = ModeOf(v["projected"], json(), 0644);
        for (const auto& src : v["projected"].value("sources", json::array())) {
          if (src.contains("configMap")) {
            ConfigMapFiles(ctx, ns, src["configMap"], files, def);
          } else if (src.contains("secret")) {
            SecretFiles(ctx, ns, src["secret"].value("name", ""), src["secret"], files, def);
          } else if (src.contains("downwardAPI")) {
            DownwardFiles(pod, src["downwardAPI"], files, def);
          } else if (src.contains("serviceAccountToken")) {
            const json& t = src["serviceAccountToken"];
            std::string sa = GetString(pod, "spec.serviceAccountName", "default");
            std::string audience = t.value("audience", "");
            int64_t seconds = t.value("expirationSeconds", int64_t{3600});
            std::string path = t.value("path", "token");
            std::string key = name + "/" + path + "/" + audience + "/" + std::to_string(seconds);
            if (ctx.tokens) {
              if (auto cached = ctx.tokens->Fresh(key, std::chrono::system_clock::now())) {
                files[path] = {*cached, def};
                continue;
              }
            }
            json req = {{"apiVersion", "authentication.k8s.io/v1"},
                        {"kind", "TokenRequest"},
                        {"spec",
                         {{"audiences", audience.empty() ? json::array() : json::array({audience})},
                          {"expirationSeconds", seconds},
                          {"boundObjectRef",
                           {{"kind", "Pod"},
                            {"apiVersion", "v1"},
                            {"name", GetString(pod, "metadata.name")},
                            {"uid", GetString(pod, "metadata.uid")}}}}}};
            try {
              json tr = ctx.client->Post(
                  "/api/v1/namespaces/" + ns + "/serviceaccounts/" + sa + "/token", req);
              std::string token = GetString(tr, "status.token");
              if (token.empty()) {
                throw Error("the token request for service account " + sa + " returned no token");
              }
              files[path] = {token, def};
              if (ctx.tokens) {
                auto now = std::chrono::system_clock::now();
                SystemTime expires;
                if (!ParseTime(GetString(tr, "status.expirationTimestamp"), &expires)) {
                  expires = now + std::chrono::seconds(seconds);
                }
                ctx.tokens->Put(key, {token, now, expires});
              }
            } catch (const client::ApiError& e) {
              throw Error("request a token for service account " + ns + "/" + sa + ": " + e.what());
            }
          } else if (src.contains("clusterTrustBundle")) {
            // Not served by minik's API server: nothing to project.
          }
        }
        WriteAtomic(dir, files);
        pv.read_only = true;
      } else if (v.contains("persistentVolumeClaim")) {
        std::string claim = v["persistentVolumeClaim"].value("claimName", "");
        json pvc = ctx.client->Get("/api/v1/namespaces/" + ns + "/persistentvolumeclaims/" + claim);
        std::string volume = GetString(pvc, "spec.volumeName");
        if (volume.empty() || GetString(pvc, "status.phase") != "Bound") {
          throw Error("persistentvolumeclaim \"" + claim + "\" is not bound");
        }
        json pvo = ctx.client->Get("/api/v1/persistentvolumes/" + volume);
        std::string path = GetString(pvo, "spec.hostPath.path");
        if (path.empty()) {
          path = GetString(pvo, "spec.local.path");
        }
        if (path.empty()) {
          throw Error("persistentvolume \"" + volume +
                      "\" has no hostPath or local path minik can mount");
        }
        fs::MakeDirs(path, 0777);
        pv.path = path;
        pv.read_only = v["persistentVolumeClaim"].value("readOnly", false);
      } else {
        // Other volume sources (cloud disks, NFS, ...) have nothing to attach here: an empty dir.
        fs::MakeDirs(dir, 0777);
      }
    } catch (const client::ApiError& e) {
      throw Error("volume \"" + name + "\": " + e.what());
    } catch (const Error& e) {
      throw Error("volume \"" + name + "\": " + e.what());
    }
    out[name] = pv;
  }
  return out;
}

std::optional<std::string> TokenCache::Fresh(const std::string& key,
                                             std::chrono::system_clock::time_point now) const {
  std::lock_guard lock(mu_);
  auto it = entries_.find(key);
  if (it == entries_.end()) {
    return std::nullopt;
  }
  const Entry& e = it->second;
  auto renew = e.issued + std::min<std::chrono::system_clock::duration>(
                              (e.expires - e.issued) * 8 / 10, std::chrono::hours(24));
  if (now >= renew) {
    return std::nullopt;
  }
  return e.token;
}

void TokenCache::Put(const std::string& key, Entry e) {
  std::lock_guard lock(mu_);
  entries_[key] = std::move(e);
}

void CleanupVolumes(const std::string& pod_dir) {
  std::string base = pod_dir + "/volumes";
  std::error_code ec;
  for (const auto& e : stdfs::directory_iterator(base, ec)) {
    std::string p = e.path().string();
    umount2(p.c_str(), MNT_DETACH);
  }
  stdfs::remove_all(base, ec);
}

}  // namespace minik::kubelet
