#pragma once
// Builds image layers and archives from scratch with libarchive, for the image
// store's tests: tars with any entry (devices, links, whiteouts, hostile
// names), gzip or not, and small JSON helpers for configs and manifests.

#include <archive.h>
#include <archive_entry.h>
#include <openssl/evp.h>
#include <sys/stat.h>

#include <fstream>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/json.h"

namespace minik::testing {

inline std::string Sha256(const std::string& data) {
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int len = 0;
  EVP_Digest(data.data(), data.size(), md, &len, EVP_sha256(), nullptr);
  static const char* kHex = "0123456789abcdef";
  std::string out = "sha256:";
  for (unsigned int i = 0; i < len; ++i) {
    out += kHex[md[i] >> 4];
    out += kHex[md[i] & 15];
  }
  return out;
}

inline std::string Hex(const std::string& digest) {
  return digest.substr(7);
}

inline std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

inline void WriteAll(const std::string& path, const std::string& data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << data;
}

// An entry's mode, owner and mtime.
struct TarMeta {
  mode_t perm = 0644;
  int64_t uid = 0, gid = 0;
  int64_t mtime = 1700000000;
};

// A tar built in memory, entry by entry.
class Tar {
 public:
  using Meta = TarMeta;

 public:
  explicit Tar(bool gzip = false) : a_(archive_write_new()) {
    archive_write_set_format_pax_restricted(a_);
    if (gzip) {
      archive_write_add_filter_gzip(a_);
    } else {
      archive_write_add_filter_none(a_);
    }
    archive_write_set_bytes_in_last_block(a_, 1);
    archive_write_open(a_, &out_, nullptr, &Tar::Write, nullptr);
  }
  ~Tar() {
    if (a_) {
      archive_write_free(a_);
    }
  }

  Tar& File(const std::string& name, const std::string& data, Meta m = {}) {
    auto* e = Entry(name, AE_IFREG, m);
    archive_entry_set_size(e, static_cast<la_int64_t>(data.size()));
    Header(e);
    archive_write_data(a_, data.data(), data.size());
    return *this;
  }
  Tar& Dir(const std::string& name, Meta m = {0755}) {
    Header(Entry(name, AE_IFDIR, m));
    return *this;
  }
  Tar& Symlink(const std::string& name, const std::string& target, Meta m = {0777}) {
    auto* e = Entry(name, AE_IFLNK, m);
    archive_entry_set_symlink(e, target.c_str());
    Header(e);
    return *this;
  }
  Tar& Hardlink(const std::string& name, const std::string& target) {
    auto* e = Entry(name, AE_IFREG, {});
    archive_entry_set_hardlink(e, target.c_str());
    archive_entry_set_size(e, 0);
    Header(e);
    return *this;
  }
  Tar& CharDevice(const std::string& name, int major, int minor, Meta m = {0666}) {
    auto* e = Entry(name, AE_IFCHR, m);
    archive_entry_set_rdevmajor(e, major);
    archive_entry_set_rdevminor(e, minor);
    Header(e);
    return *this;
  }
  Tar& Fifo(const std::string& name, Meta m = {0644}) {
    Header(Entry(name, AE_IFIFO, m));
    return *this;
  }

  // Ends the archive and returns its bytes.
  std::string Finish() {
    archive_write_close(a_);
    archive_write_free(a_);
    a_ = nullptr;
    return out_;
  }

 private:
  static la_ssize_t Write(struct archive*, void* user, const void* buf, size_t n) {
    static_cast<std::string*>(user)->append(static_cast<const char*>(buf), n);
    return static_cast<la_ssize_t>(n);
  }
  struct archive_entry* Entry(const std::string& name, mode_t type, const Meta& m) {
    if (entry_) {
      archive_entry_clear(entry_);
    } else {
      entry_ = archive_entry_new();
    }
    archive_entry_set_pathname(entry_, name.c_str());
    archive_entry_set_filetype(entry_, type);
    archive_entry_set_perm(entry_, m.perm);
    archive_entry_set_uid(entry_, m.uid);
    archive_entry_set_gid(entry_, m.gid);
    archive_entry_set_mtime(entry_, m.mtime, 0);
    return entry_;
  }
  void Header(struct archive_entry* e) {
    if (archive_write_header(a_, e) != ARCHIVE_OK) {
      throw std::runtime_error(std::string("tar header: ") + archive_error_string(a_));
    }
  }

  struct archive* a_;
  struct archive_entry* entry_ = nullptr;
  std::string out_;

 public:
  Tar(const Tar&) = delete;
  Tar& operator=(const Tar&) = delete;
};

// Digest of the uncompressed bytes of a layer (its diff id): the tests keep
// plain bytes and gzip them separately when they need to.
inline std::string Gzip(const std::string& tar_bytes) {
  struct archive* a = archive_write_new();
  archive_write_set_format_raw(a);
  archive_write_add_filter_gzip(a);
  std::string out;
  archive_write_open(
      a, &out, nullptr,
      [](struct archive*, void* user, const void* buf, size_t n) -> la_ssize_t {
        static_cast<std::string*>(user)->append(static_cast<const char*>(buf), n);
        return static_cast<la_ssize_t>(n);
      },
      nullptr);
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, "layer.tar");
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_size(e, static_cast<la_int64_t>(tar_bytes.size()));
  archive_write_header(a, e);
  archive_write_data(a, tar_bytes.data(), tar_bytes.size());
  archive_entry_free(e);
  archive_write_close(a);
  archive_write_free(a);
  return out;
}

// An image config with these layers (diff ids of the uncompressed tars).
inline json ImageConfigJson(const std::vector<std::string>& layer_tars,
                            const std::string& arch = "amd64",
                            const std::vector<std::string>& entrypoint = {"/app/run"}) {
  json diff_ids = json::array();
  for (const auto& t : layer_tars) {
    diff_ids.push_back(Sha256(t));
  }
  return {{"architecture", arch},
          {"os", "linux"},
          {"config",
           {{"Entrypoint", entrypoint},
            {"Cmd", {"--port", "80"}},
            {"Env", {"PATH=/usr/bin:/bin", "MODE=test"}},
            {"WorkingDir", "/app"},
            {"User", "1000:2000"},
            {"ExposedPorts", {{"80/tcp", json::object()}}},
            {"Labels", {{"org.example", "yes"}}}}},
          {"rootfs", {{"type", "layers"}, {"diff_ids", diff_ids}}}};
}

inline json Descriptor(const std::string& media_type, const std::string& blob) {
  return {{"mediaType", media_type}, {"digest", Sha256(blob)}, {"size", blob.size()}};
}

}  // namespace minik::testing
