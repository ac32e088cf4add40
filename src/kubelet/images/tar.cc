// Unpacking layers and archives with libarchive, safely: every path is cleaned
// lexically and resolved component by component under the destination, and no
// entry is written through a symbolic link, so a layer cannot write outside
// its directory whatever its entries say. OCI whiteouts become overlayfs ones.

#include <archive.h>
#include <archive_entry.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <zlib.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <memory>

#include "common/error.h"
#include "common/fs.h"
#include "common/log.h"
#include "kubelet/images/internal.h"

namespace minik::kubelet::images::internal {
namespace {

constexpr size_t kChunk = 1 << 20;
constexpr char kWhiteoutPrefix[] = ".wh.";
constexpr char kOpaqueWhiteout[] = ".wh..wh..opq";
constexpr char kOpaqueXattr[] = "trusted.overlay.opaque";

// The bytes of a layer, decompressed when they are gzip, hashed on the way both
// as read (the blob digest) and as given to libarchive (the diff id).
class Source {
 public:
  explicit Source(const std::string& path) : path_(path), in_(kChunk), out_(kChunk) {
    fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) {
      throw SystemError("open '" + path + "'", errno);
    }
    Fill();
    const unsigned char* b = in_.data();
    if (in_len_ >= 2 && b[0] == 0x1f && b[1] == 0x8b) {
      gzip_ = true;
      std::memset(&zs_, 0, sizeof(zs_));
      if (inflateInit2(&zs_, 15 + 16) != Z_OK) {
        ::close(fd_);
        throw Error("gzip: cannot initialize zlib");
      }
      zs_.next_in = in_.data();
      zs_.avail_in = static_cast<uInt>(in_len_);
      return;
    }
    const char* unsupported = nullptr;
    if (in_len_ >= 4 && b[0] == 0x28 && b[1] == 0xb5 && b[2] == 0x2f && b[3] == 0xfd) {
      unsupported = "zstd";
    } else if (in_len_ >= 3 && b[0] == 'B' && b[1] == 'Z' && b[2] == 'h') {
      unsupported = "bzip2";
    } else if (in_len_ >= 6 && std::memcmp(b,
                                           "\xfd"
                                           "7zXZ",
                                           5) == 0) {
      unsupported = "xz";
    }
    if (unsupported) {
      ::close(fd_);
      throw Error("'" + path + "' is " + unsupported +
                  "-compressed; minik reads plain and gzip tars only");
    }
  }
  ~Source() {
    if (gzip_) {
      inflateEnd(&zs_);
    }
    ::close(fd_);
  }
  Source(const Source&) = delete;
  Source& operator=(const Source&) = delete;

  // The next run of uncompressed bytes; an empty view at the end.
  std::string_view Next() {
    if (!gzip_) {
      if (in_pos_ == in_len_ && !Fill()) {
        return {};
      }
      std::string_view v(reinterpret_cast<char*>(in_.data()) + in_pos_, in_len_ - in_pos_);
      in_pos_ = in_len_;
      return v;
    }
    while (!done_) {
      if (zs_.avail_in == 0) {
        if (!Fill()) {
          throw Error("'" + path_ + "': the gzip stream is truncated");
        }
        zs_.next_in = in_.data();
        zs_.avail_in = static_cast<uInt>(in_len_);
      }
      zs_.next_out = out_.data();
      zs_.avail_out = static_cast<uInt>(out_.size());
      int rc = inflate(&zs_, Z_NO_FLUSH);
      size_t produced = out_.size() - zs_.avail_out;
      if (rc == Z_STREAM_END) {
        // Another gzip member may follow (concatenated gzip is one stream);
        // anything else after the end is read and ignored, as Docker ignores padding.
        if (zs_.avail_in == 0 && Fill()) {
          zs_.next_in = in_.data();
          zs_.avail_in = static_cast<uInt>(in_len_);
        }
        if (zs_.avail_in >= 2 && zs_.next_in[0] == 0x1f && zs_.next_in[1] == 0x8b) {
          inflateReset(&zs_);
        } else {
          zs_.avail_in = 0;
          while (Fill()) {
          }
          done_ = true;
        }
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        throw Error("'" + path_ + "': gzip: " + (zs_.msg ? zs_.msg : "corrupt data"));
      }
      if (produced > 0) {
        std::string_view v(reinterpret_cast<char*>(out_.data()), produced);
        plain_.Update(v);
        return v;
      }
    }
    return {};
  }

  // Reads what libarchive left (the padding after the end-of-archive blocks),
  // so the digests cover the whole stream.
  void Drain() {
    while (!Next().empty()) {
    }
  }

  ExtractResult Result() {
    ExtractResult r;
    r.size = raw_size_;
    r.compressed = gzip_;
    r.digest = raw_.Digest();
    r.diff_id = gzip_ ? plain_.Digest() : r.digest;
    return r;
  }

 private:
  // Reads the next chunk of the file into in_ (hashing it); false at the end.
  bool Fill() {
    while (true) {
      ssize_t n = ::read(fd_, in_.data(), in_.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        throw SystemError("read '" + path_ + "'", errno);
      }
      in_len_ = static_cast<size_t>(n);
      in_pos_ = 0;
      raw_size_ += n;
      raw_.Update(in_.data(), in_len_);
      return n > 0;
    }
  }

  std::string path_;
  int fd_ = -1;
  std::vector<unsigned char> in_, out_;
  size_t in_len_ = 0, in_pos_ = 0;
  bool gzip_ = false, done_ = false;
  z_stream zs_;
  Sha256 raw_, plain_;
  int64_t raw_size_ = 0;
};

la_ssize_t ReadCallback(struct archive* a, void* user, const void** buf) {
  auto* src = static_cast<Source*>(user);
  try {
    std::string_view v = src->Next();
    *buf = v.data();
    return static_cast<la_ssize_t>(v.size());
  } catch (const std::exception& e) {
    archive_set_error(a, EIO, "%s", e.what());
    return -1;
  }
}

struct ArchiveDeleter {
  void operator()(struct archive* a) const { archive_read_free(a); }
};

// Lexically cleans a tar entry's path: leading '/' and '.' components go,
// '..' pops one; a path that climbs above the root is an error.
std::string CleanPath(const std::string& name, const std::string& what) {
  std::vector<std::string> parts;
  size_t start = 0;
  while (start <= name.size()) {
    size_t slash = name.find('/', start);
    std::string comp =
        name.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
    if (comp == "..") {
      if (parts.empty()) {
        throw Error(what + " '" + name + "': the path leaves the layer's root");
      }
      parts.pop_back();
    } else if (!comp.empty() && comp != ".") {
      parts.push_back(comp);
    }
    if (slash == std::string::npos) {
      break;
    }
    start = slash + 1;
  }
  std::string out;
  for (const auto& p : parts) {
    out += (out.empty() ? "" : "/") + p;
  }
  return out;
}

std::string Parent(const std::string& rel) {
  auto slash = rel.rfind('/');
  return slash == std::string::npos ? "" : rel.substr(0, slash);
}

std::string Base(const std::string& rel) {
  auto slash = rel.rfind('/');
  return slash == std::string::npos ? rel : rel.substr(slash + 1);
}

struct DirTimes {
  std::string path;
  struct timespec times[2];
};

class Extractor {
 public:
  Extractor(std::string dest, const ExtractOptions& opts) : dest_(std::move(dest)), opts_(opts) {}

  void Entry(struct archive* a, struct archive_entry* e) {
    const char* raw = archive_entry_pathname(e);
    if (!raw) {
      raw = archive_entry_pathname_utf8(e);
    }
    if (!raw) {
      throw Error("a tar entry has a name that cannot be read");
    }
    std::string name = raw;
    std::string rel = CleanPath(name, "entry");
    const char* hardlink = archive_entry_hardlink(e);
    mode_t type = archive_entry_filetype(e);
    if (rel.empty()) {
      // The root itself ("./"): only its metadata applies.
      if (type == AE_IFDIR && opts_.layer) {
        ApplyMetadata(e, dest_, type);
      }
      return;
    }
    std::string base = Base(rel);
    if (opts_.layer && base.rfind(kWhiteoutPrefix, 0) == 0) {
      Whiteout(e, rel, base);
      return;
    }
    std::string full = dest_ + "/" + rel;
    MakeParents(rel, name);
    struct stat st;
    bool exists = ::lstat(full.c_str(), &st) == 0;
    bool is_dir = !hardlink && type == AE_IFDIR;
    if (exists && !(is_dir && S_ISDIR(st.st_mode))) {
      fs::RemoveAll(full);
      exists = false;
    }
    if (hardlink) {
      std::string target = CleanPath(hardlink, "hard link target of '" + name + "':");
      if (target.empty()) {
        throw Error("entry '" + name + "': a hard link to the root");
      }
      CheckNoSymlinkParents(target, name);
      std::string target_full = dest_ + "/" + target;
      if (::lstat(target_full.c_str(), &st) != 0) {
        throw Error("entry '" + name + "': hard link target '" + hardlink +
                    "' is not in the layer before it");
      }
      if (::linkat(AT_FDCWD, target_full.c_str(), AT_FDCWD, full.c_str(), 0) != 0) {
        throw SystemError("link '" + full + "' to '" + target_full + "'", errno);
      }
      return;
    }
    switch (type) {
      case AE_IFDIR:
        if (!exists && ::mkdir(full.c_str(), 0700) != 0) {
          throw SystemError("mkdir '" + full + "'", errno);
        }
        break;
      case AE_IFREG:
        WriteFile(a, e, full);
        break;
      case AE_IFLNK: {
        const char* target = archive_entry_symlink(e);
        if (!target) {
          target = archive_entry_symlink_utf8(e);
        }
        if (!target) {
          throw Error("entry '" + name + "': a symbolic link without a target");
        }
        if (::symlink(target, full.c_str()) != 0) {
          throw SystemError("symlink '" + full + "'", errno);
        }
        break;
      }
      case AE_IFCHR:
      case AE_IFBLK:
      case AE_IFIFO:
        if (!opts_.layer) {
          return;  // an image archive has no business holding devices
        }
        if (::mknod(full.c_str(), type | (archive_entry_perm(e) & 07777),
                    type == AE_IFIFO ? 0 : archive_entry_rdev(e)) != 0) {
          throw SystemError("mknod '" + full + "'", errno);
        }
        break;
      default:
        return;  // sockets and anything stranger are not kept, as Docker does
    }
    ApplyMetadata(e, full, type);
  }

  // Directory times last: writing into a directory changes its mtime.
  void Finish() {
    for (auto it = dir_times_.rbegin(); it != dir_times_.rend(); ++it) {
      ::utimensat(AT_FDCWD, it->path.c_str(), it->times, AT_SYMLINK_NOFOLLOW);
    }
  }

 private:
  // Every existing ancestor of `rel` under dest_ must be a real directory;
  // missing ones are made (0755, root), as Docker does.
  void MakeParents(const std::string& rel, const std::string& name) {
    std::string parent = Parent(rel);
    if (parent.empty()) {
      return;
    }
    std::string cur = dest_;
    size_t start = 0;
    while (start <= parent.size()) {
      size_t slash = parent.find('/', start);
      std::string comp =
          parent.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      cur += "/" + comp;
      struct stat st;
      if (::lstat(cur.c_str(), &st) != 0) {
        if (errno != ENOENT || ::mkdir(cur.c_str(), 0755) != 0 ||
            ::chmod(cur.c_str(), 0755) != 0) {  // whatever the umask
          throw SystemError("entry '" + name + "': mkdir '" + cur + "'", errno);
        }
      } else if (S_ISLNK(st.st_mode)) {
        throw Error("entry '" + name + "' would be written through the symbolic link '" +
                    cur.substr(dest_.size() + 1) + "'");
      } else if (!S_ISDIR(st.st_mode)) {
        throw Error("entry '" + name + "': '" + cur.substr(dest_.size() + 1) +
                    "' is not a directory");
      }
      if (slash == std::string::npos) {
        break;
      }
      start = slash + 1;
    }
  }

  void CheckNoSymlinkParents(const std::string& rel, const std::string& name) {
    std::string cur = dest_;
    std::string parent = Parent(rel);
    size_t start = 0;
    while (!parent.empty() && start <= parent.size()) {
      size_t slash = parent.find('/', start);
      cur += "/" +
             parent.substr(start, slash == std::string::npos ? std::string::npos : slash - start);
      struct stat st;
      if (::lstat(cur.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
        throw Error("entry '" + name + "' refers through '" + cur.substr(dest_.size() + 1) +
                    "', which is not a directory");
      }
      if (slash == std::string::npos) {
        break;
      }
      start = slash + 1;
    }
  }

  void Whiteout(struct archive_entry* e, const std::string& rel, const std::string& base) {
    std::string parent = Parent(rel);
    if (base == kOpaqueWhiteout) {
      // The directory hides everything below it in lower layers.
      std::string dir = parent.empty() ? dest_ : dest_ + "/" + parent;
      MakeParents(rel, rel);  // the directory itself included
      if (::lsetxattr(dir.c_str(), kOpaqueXattr, "y", 1, 0) != 0) {
        throw SystemError("mark '" + dir + "' opaque (setxattr " + kOpaqueXattr + ")", errno);
      }
      return;
    }
    if (base.rfind(".wh..wh.", 0) == 0) {
      return;  // aufs bookkeeping (.wh..wh.plnk, .wh..wh.aufs), meaningless here
    }
    std::string hidden = base.substr(std::strlen(kWhiteoutPrefix));
    std::string target_rel = parent.empty() ? hidden : parent + "/" + hidden;
    MakeParents(target_rel, rel);
    std::string full = dest_ + "/" + target_rel;
    struct stat st;
    if (::lstat(full.c_str(), &st) == 0) {
      fs::RemoveAll(full);
    }
    // overlayfs' whiteout: a character device 0:0 with the hidden name.
    if (::mknod(full.c_str(), S_IFCHR, makedev(0, 0)) != 0) {
      throw SystemError("mknod whiteout '" + full + "'", errno);
    }
    if (::lchown(full.c_str(), archive_entry_uid(e), archive_entry_gid(e)) != 0) {
      throw SystemError("chown '" + full + "'", errno);
    }
  }

  void WriteFile(struct archive* a, struct archive_entry* e, const std::string& full) {
    int fd = ::open(full.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
    if (fd < 0) {
      throw SystemError("create '" + full + "'", errno);
    }
    auto fail = [&](const std::string& what, int err) {
      ::close(fd);
      throw SystemError(what + " '" + full + "'", err);
    };
    const void* buf;
    size_t len;
    la_int64_t offset;
    while (true) {
      int rc = archive_read_data_block(a, &buf, &len, &offset);
      if (rc == ARCHIVE_EOF) {
        break;
      }
      if (rc < ARCHIVE_WARN) {
        std::string msg = archive_error_string(a) ? archive_error_string(a) : "read error";
        ::close(fd);
        throw Error("read '" + full.substr(dest_.size() + 1) + "' from the tar: " + msg);
      }
      const char* p = static_cast<const char*>(buf);
      while (len > 0) {
        ssize_t n = ::pwrite(fd, p, len, offset);
        if (n < 0 && errno == EINTR) {
          continue;
        }
        if (n < 0) {
          fail("write", errno);
        }
        p += n;
        len -= static_cast<size_t>(n);
        offset += n;
      }
    }
    // A sparse file ending in a hole.
    if (archive_entry_size_is_set(e) && ::ftruncate(fd, archive_entry_size(e)) != 0) {
      fail("truncate", errno);
    }
    if (::close(fd) != 0) {
      throw SystemError("close '" + full + "'", errno);
    }
  }

  void ApplyMetadata(struct archive_entry* e, const std::string& full, mode_t type) {
    mode_t perm = archive_entry_perm(e) & 07777;
    if (!opts_.layer) {
      if (type == AE_IFDIR) {
        ::chmod(full.c_str(), 0755);
      } else if (type == AE_IFREG) {
        ::chmod(full.c_str(), (perm & 0755) | 0600);
      }
      return;
    }
    // Owner first: chown clears set-user-ID bits, which chmod then sets.
    if (::lchown(full.c_str(), static_cast<uid_t>(archive_entry_uid(e)),
                 static_cast<gid_t>(archive_entry_gid(e))) != 0) {
      throw SystemError("chown '" + full + "'", errno);
    }
    if (type != AE_IFLNK && ::chmod(full.c_str(), perm) != 0) {
      throw SystemError("chmod '" + full + "'", errno);
    }
    ApplyXattrs(e, full);
    struct timespec times[2];
    times[1].tv_sec = archive_entry_mtime(e);
    times[1].tv_nsec = archive_entry_mtime_nsec(e);
    if (archive_entry_atime_is_set(e)) {
      times[0].tv_sec = archive_entry_atime(e);
      times[0].tv_nsec = archive_entry_atime_nsec(e);
    } else {
      times[0] = times[1];
    }
    if (type == AE_IFDIR) {
      dir_times_.push_back({full, {times[0], times[1]}});
    } else if (::utimensat(AT_FDCWD, full.c_str(), times, AT_SYMLINK_NOFOLLOW) != 0) {
      throw SystemError("set times of '" + full + "'", errno);
    }
  }

  void ApplyXattrs(struct archive_entry* e, const std::string& full) {
    if (archive_entry_xattr_reset(e) == 0) {
      return;
    }
    const char* name;
    const void* value;
    size_t size;
    while (archive_entry_xattr_next(e, &name, &value, &size) == ARCHIVE_OK) {
      std::string n = name;
      // overlayfs' own attributes are minik's to set (whiteouts), never a layer's.
      if (n.rfind("trusted.overlay.", 0) == 0) {
        continue;
      }
      if (::lsetxattr(full.c_str(), name, value, size, 0) != 0) {
        log::Warn("images: setxattr {} on '{}': {}", n, full, std::strerror(errno));
      }
    }
  }

  std::string dest_;
  ExtractOptions opts_;
  std::vector<DirTimes> dir_times_;
};

}  // namespace

ExtractResult ExtractTar(const std::string& archive_path, const std::string& dest,
                         const ExtractOptions& opts) {
  Source src(archive_path);
  std::unique_ptr<struct archive, ArchiveDeleter> a(archive_read_new());
  archive_read_support_format_tar(a.get());
  archive_read_support_format_gnutar(a.get());
  archive_read_support_format_empty(a.get());
  archive_read_support_filter_none(a.get());
  if (archive_read_open(a.get(), &src, nullptr, ReadCallback, nullptr) != ARCHIVE_OK) {
    throw Error("read '" + archive_path +
                "': " + (archive_error_string(a.get()) ? archive_error_string(a.get()) : "?"));
  }
  std::string canonical = std::filesystem::weakly_canonical(dest).string();
  Extractor x(canonical, opts);
  try {
    while (true) {
      struct archive_entry* e;
      int rc = archive_read_next_header(a.get(), &e);
      if (rc == ARCHIVE_EOF) {
        break;
      }
      if (rc < ARCHIVE_WARN) {
        throw Error(archive_error_string(a.get()) ? archive_error_string(a.get()) : "corrupt tar");
      }
      x.Entry(a.get(), e);
    }
    x.Finish();
    src.Drain();
  } catch (const std::exception& e) {
    throw Error("unpack '" + archive_path + "': " + e.what());
  }
  return src.Result();
}

// ---- TarWriter ------------------------------------------------------------------

namespace {

struct archive* W(void* p) {
  return static_cast<struct archive*>(p);
}

struct EntryDeleter {
  void operator()(struct archive_entry* e) const { archive_entry_free(e); }
};
using EntryPtr = std::unique_ptr<struct archive_entry, EntryDeleter>;

EntryPtr NewEntry(const std::string& name, mode_t type, mode_t perm, int64_t mtime) {
  EntryPtr e(archive_entry_new());
  archive_entry_set_pathname(e.get(), name.c_str());
  archive_entry_set_filetype(e.get(), type);
  archive_entry_set_perm(e.get(), perm);
  archive_entry_set_mtime(e.get(), mtime, 0);
  archive_entry_set_uid(e.get(), 0);
  archive_entry_set_gid(e.get(), 0);
  return e;
}

}  // namespace

TarWriter::TarWriter(const std::string& path) : path_(path), archive_(archive_write_new()) {
  archive_write_set_format_pax_restricted(W(archive_));
  archive_write_add_filter_none(W(archive_));
  if (archive_write_open_filename(W(archive_), path.c_str()) != ARCHIVE_OK) {
    std::string msg = archive_error_string(W(archive_));
    archive_write_free(W(archive_));
    throw Error("create '" + path + "': " + msg);
  }
}

TarWriter::~TarWriter() {
  if (archive_) {
    archive_write_free(W(archive_));
  }
}

namespace {

void WriteHeader(struct archive* a, struct archive_entry* e, const std::string& path) {
  if (archive_write_header(a, e) < ARCHIVE_WARN) {
    throw Error("write '" + path + "': " + archive_error_string(a));
  }
}

}  // namespace

void TarWriter::AddDirectory(const std::string& name, mode_t mode, int64_t mtime) {
  auto e = NewEntry(name, AE_IFDIR, mode, mtime);
  WriteHeader(W(archive_), e.get(), path_);
}

void TarWriter::AddFileData(const std::string& name, const std::string& data, mode_t mode,
                            int64_t mtime) {
  auto e = NewEntry(name, AE_IFREG, mode, mtime);
  archive_entry_set_size(e.get(), static_cast<la_int64_t>(data.size()));
  WriteHeader(W(archive_), e.get(), path_);
  if (archive_write_data(W(archive_), data.data(), data.size()) < 0) {
    throw Error("write '" + path_ + "': " + archive_error_string(W(archive_)));
  }
}

void TarWriter::AddFileFromHost(const std::string& name, const std::string& host_path) {
  int fd = ::open(host_path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    throw SystemError("open '" + host_path + "'", errno);
  }
  struct stat st;
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error("'" + host_path + "' is not a regular file");
  }
  auto e = NewEntry(name, AE_IFREG, st.st_mode & 07777, st.st_mtim.tv_sec);
  archive_entry_set_size(e.get(), st.st_size);
  try {
    WriteHeader(W(archive_), e.get(), path_);
    std::string buf(kChunk, '\0');
    while (true) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0 && errno == EINTR) {
        continue;
      }
      if (n < 0) {
        throw SystemError("read '" + host_path + "'", errno);
      }
      if (n == 0) {
        break;
      }
      if (archive_write_data(W(archive_), buf.data(), static_cast<size_t>(n)) < 0) {
        throw Error("write '" + path_ + "': " + archive_error_string(W(archive_)));
      }
    }
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

void TarWriter::AddSymlink(const std::string& name, const std::string& target, int64_t mtime) {
  auto e = NewEntry(name, AE_IFLNK, 0777, mtime);
  archive_entry_set_symlink(e.get(), target.c_str());
  WriteHeader(W(archive_), e.get(), path_);
}

void TarWriter::Close() {
  if (!archive_) {
    return;
  }
  int rc = archive_write_close(W(archive_));
  std::string msg = rc != ARCHIVE_OK && archive_error_string(W(archive_))
                        ? archive_error_string(W(archive_))
                        : "";
  archive_write_free(W(archive_));
  archive_ = nullptr;
  if (rc != ARCHIVE_OK) {
    throw Error("close '" + path_ + "': " + msg);
  }
}

}  // namespace minik::kubelet::images::internal
