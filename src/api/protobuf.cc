#include "api/protobuf.h"

#include <cinttypes>
#include <cstring>

#include "common/clock.h"

namespace minik::api {
namespace {

constexpr int kMaxDepth = 64;

enum WireType { kVarint = 0, kFixed64 = 1, kLengthDelimited = 2, kFixed32 = 5 };

class Reader {
 public:
  Reader(std::string_view data, std::string where) : d_(data), where_(std::move(where)) {}
  bool done() const { return pos_ >= d_.size(); }

  uint64_t Varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      if (pos_ >= d_.size()) {
        Fail("truncated varint");
      }
      uint8_t b = static_cast<uint8_t>(d_[pos_++]);
      v |= static_cast<uint64_t>(b & 0x7f) << shift;
      if (!(b & 0x80)) {
        return v;
      }
    }
    Fail("varint longer than 10 bytes");
  }
  std::string_view Bytes() {
    uint64_t n = Varint();
    if (n > d_.size() - pos_) {
      Fail("length " + std::to_string(n) + " runs past the end of the message");
    }
    std::string_view s = d_.substr(pos_, n);
    pos_ += n;
    return s;
  }
  uint64_t Fixed(int bytes) {
    if (d_.size() - pos_ < static_cast<size_t>(bytes)) {
      Fail("truncated fixed-width value");
    }
    uint64_t v = 0;
    std::memcpy(&v, d_.data() + pos_, bytes);
    pos_ += bytes;
    return v;
  }
  void Skip(int wire) {
    switch (wire) {
      case kVarint:
        Varint();
        break;
      case kFixed64:
        Fixed(8);
        break;
      case kLengthDelimited:
        Bytes();
        break;
      case kFixed32:
        Fixed(4);
        break;
      default:
        Fail("unsupported wire type " + std::to_string(wire));
    }
  }
  [[noreturn]] void Fail(const std::string& what) const {
    throw ProtobufError(where_ + ": " + what + " at byte " + std::to_string(pos_));
  }

 private:
  std::string_view d_;
  size_t pos_ = 0;
  std::string where_;
};

std::string Base64(std::string_view in) {
  static const char* k = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  size_t i = 0;
  for (; i + 2 < in.size(); i += 3) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8) | uint8_t(in[i + 2]);
    out += k[n >> 18];
    out += k[(n >> 12) & 63];
    out += k[(n >> 6) & 63];
    out += k[n & 63];
  }
  if (i + 1 == in.size()) {
    uint32_t n = uint8_t(in[i]) << 16;
    out += k[n >> 18];
    out += k[(n >> 12) & 63];
    out += "==";
  } else if (i + 2 == in.size()) {
    uint32_t n = (uint8_t(in[i]) << 16) | (uint8_t(in[i + 1]) << 8);
    out += k[n >> 18];
    out += k[(n >> 12) & 63];
    out += k[(n >> 6) & 63];
    out += '=';
  }
  return out;
}

std::string GoDuration(int64_t ns) {
  if (ns == 0) {
    return "0s";
  }
  std::string sign = ns < 0 ? "-" : "";
  uint64_t u = ns < 0 ? static_cast<uint64_t>(-ns) : static_cast<uint64_t>(ns);
  uint64_t h = u / 3600000000000ULL;
  u %= 3600000000000ULL;
  uint64_t m = u / 60000000000ULL;
  u %= 60000000000ULL;
  char buf[64];
  std::string secs;
  if (u % 1000000000ULL == 0) {
    secs = std::to_string(u / 1000000000ULL);
  } else {
    snprintf(buf, sizeof(buf), "%" PRIu64 ".%09" PRIu64, static_cast<uint64_t>(u / 1000000000ULL),
             static_cast<uint64_t>(u % 1000000000ULL));
    secs = buf;
    while (secs.back() == '0') {
      secs.pop_back();
    }
  }
  std::string out = sign;
  if (h) {
    out += std::to_string(h) + "h";
  }
  if (h || m) {
    out += std::to_string(m) + "m";
  }
  return out + secs + "s";
}

class Decoder {
 public:
  explicit Decoder(const TypeTable& t) : t_(t) {}

  // Decodes a message into `out` (an object), merging inline members.
  void Message(const std::string& type, std::string_view raw, json& out, const std::string& path,
               int depth) {
    if (depth > kMaxDepth) {
      throw ProtobufError(path + ": messages nested deeper than " + std::to_string(kMaxDepth));
    }
    const MessageDef* m = t_.Find(type);
    if (!m) {
      throw ProtobufError(path + ": message type " + type + " is not known to this server");
    }
    Reader r(raw, path.empty() ? type : path);
    while (!r.done()) {
      uint64_t tag = r.Varint();
      int number = static_cast<int>(tag >> 3);
      int wire = static_cast<int>(tag & 7);
      auto it = m->by_number.find(number);
      if (it == m->by_number.end()) {
        r.Fail("unknown field number " + std::to_string(number) + " in " + type);
      }
      const FieldDef& f = *it->second;
      std::string fpath =
          f.is_inline() ? path : (path.empty() ? f.json_name : path + "." + f.json_name);
      if (f.is_inline()) {
        if (wire != kLengthDelimited) {
          r.Fail("field " + std::to_string(number) + " of " + type + " must be a message");
        }
        Message(f.type, r.Bytes(), out, path, depth + 1);
        continue;
      }
      if (f.is_map) {
        if (wire != kLengthDelimited) {
          r.Fail("map field " + f.json_name + " must be length-delimited");
        }
        MapEntry(f, r.Bytes(), out[f.json_name], fpath, depth);
        continue;
      }
      if (f.repeated && f.type != "bytes") {
        json& arr = out[f.json_name];
        if (!arr.is_array()) {
          arr = json::array();
        }
        if (wire == kLengthDelimited && IsPackable(f.type)) {
          Reader packed(r.Bytes(), fpath);
          while (!packed.done()) {
            arr.push_back(Scalar(f.type, WireFor(f.type), packed, fpath));
          }
        } else {
          arr.push_back(
              Value(f.type, wire, r, fpath + "[" + std::to_string(arr.size()) + "]", depth));
        }
        continue;
      }
      json v = Value(f.type, wire, r, fpath, depth);
      if (Omit(f, v)) {
        out.erase(f.json_name);
      } else {
        out[f.json_name] = std::move(v);
      }
    }
  }

 private:
  static bool IsPackable(const std::string& type) {
    return type == "int32" || type == "int64" || type == "bool" || type == "double";
  }
  static int WireFor(const std::string& type) { return type == "double" ? kFixed64 : kVarint; }

  // Go's encoding/json leaves out zero values of omitempty fields that are not pointers.
  static bool Omit(const FieldDef& f, const json& v) {
    if (f.ptr || !f.omitempty) {
      return false;
    }
    return (v.is_string() && v.get_ref<const std::string&>().empty()) ||
           (v.is_number_integer() && v.get<int64_t>() == 0) ||
           (v.is_number_float() && v.get<double>() == 0) || (v.is_boolean() && !v.get<bool>());
  }

  void MapEntry(const FieldDef& f, std::string_view raw, json& map, const std::string& path,
                int depth) {
    if (!map.is_object()) {
      map = json::object();
    }
    Reader r(raw, path);
    std::string key;
    json value;
    bool have_value = false;
    while (!r.done()) {
      uint64_t tag = r.Varint();
      int number = static_cast<int>(tag >> 3);
      int wire = static_cast<int>(tag & 7);
      if (number == 1 && wire == kLengthDelimited) {
        key = std::string(r.Bytes());
      } else if (number == 2) {
        value = Value(f.type, wire, r, path + "[" + key + "]", depth);
        have_value = true;
      } else {
        r.Fail("unexpected field " + std::to_string(number) + " in a map entry");
      }
    }
    if (!have_value) {
      Reader none(std::string_view(), path);
      value = Value(f.type, kLengthDelimited, none, path, depth, /*empty=*/true);
    }
    map[key] = std::move(value);
  }

  json Scalar(const std::string& type, int wire, Reader& r, const std::string& path) {
    auto want = [&](int w) {
      if (wire != w) {
        r.Fail(path + ": wire type " + std::to_string(wire) + " does not fit " + type);
      }
    };
    if (type == "string") {
      want(kLengthDelimited);
      return std::string(r.Bytes());
    }
    if (type == "bytes") {
      want(kLengthDelimited);
      return Base64(r.Bytes());
    }
    if (type == "int32") {
      want(kVarint);
      return static_cast<int32_t>(static_cast<uint32_t>(r.Varint()));
    }
    if (type == "int64") {
      want(kVarint);
      return static_cast<int64_t>(r.Varint());
    }
    if (type == "bool") {
      want(kVarint);
      return r.Varint() != 0;
    }
    if (type == "double") {
      want(kFixed64);
      uint64_t bits = r.Fixed(8);
      double d;
      std::memcpy(&d, &bits, 8);
      return d;
    }
    r.Fail(path + ": unknown scalar type " + type);
  }

  json Value(const std::string& type, int wire, Reader& r, const std::string& path, int depth,
             bool empty = false) {
    if (t_.IsScalar(type) && !t_.Find(type)) {
      if (empty) {
        return type == "string" || type == "bytes" ? json("") : json(0);
      }
      return Scalar(type, wire, r, path);
    }
    if (!empty && wire != kLengthDelimited) {
      r.Fail(path + ": a message needs wire type 2, got " + std::to_string(wire));
    }
    std::string_view raw = empty ? std::string_view() : r.Bytes();
    if (type == "resource.Quantity") {
      json q = json::object();
      Message(type, raw, q, path, depth + 1);
      return q.value("string", std::string("0"));
    }
    if (type == "intstr.IntOrString") {
      json v = json::object();
      Message(type, raw, v, path, depth + 1);
      if (v.value("type", 0) == 1) {
        return v.value("strVal", std::string());
      }
      return v.value("intVal", 0);
    }
    if (type == "meta.v1.Time" || type == "meta.v1.MicroTime") {
      json v = json::object();
      Message(type, raw, v, path, depth + 1);
      int64_t secs = v.value("seconds", int64_t{0});
      int64_t nanos = v.value("nanos", int64_t{0});
      if (secs == 0 && nanos == 0) {
        return nullptr;
      }
      SystemTime t = std::chrono::system_clock::from_time_t(static_cast<time_t>(secs)) +
                     std::chrono::microseconds(nanos / 1000);
      return type == "meta.v1.Time" ? FormatTime(t) : FormatMicroTime(t);
    }
    if (type == "meta.v1.Duration") {
      json v = json::object();
      Message(type, raw, v, path, depth + 1);
      return GoDuration(v.value("duration", int64_t{0}));
    }
    if (type == "runtime.RawExtension" || type == "meta.v1.FieldsV1") {
      Reader inner(raw, path);
      std::string_view bytes;
      while (!inner.done()) {
        uint64_t tag = inner.Varint();
        if ((tag >> 3) == 1 && (tag & 7) == kLengthDelimited) {
          bytes = inner.Bytes();
        } else {
          inner.Skip(static_cast<int>(tag & 7));
        }
      }
      if (bytes.empty()) {
        return nullptr;
      }
      try {
        return ParseJson(bytes).value;
      } catch (const ParseError& e) {
        throw ProtobufError(path + ": embedded object is not JSON: " + e.what());
      }
    }
    json obj = json::object();
    Message(type, raw, obj, path, depth + 1);
    return obj;
  }

  const TypeTable& t_;
};

}  // namespace

ProtobufEnvelope DecodeEnvelope(std::string_view body) {
  if (body.size() < 4 || body.substr(0, 4) != std::string_view("k8s\0", 4)) {
    throw ProtobufError("the body does not start with the Kubernetes protobuf magic \"k8s\\x00\"");
  }
  Reader r(body.substr(4), "runtime.Unknown");
  ProtobufEnvelope env;
  while (!r.done()) {
    uint64_t tag = r.Varint();
    int number = static_cast<int>(tag >> 3);
    int wire = static_cast<int>(tag & 7);
    if (number == 1 && wire == kLengthDelimited) {
      Reader tm(r.Bytes(), "runtime.TypeMeta");
      while (!tm.done()) {
        uint64_t t2 = tm.Varint();
        if ((t2 >> 3) == 1 && (t2 & 7) == kLengthDelimited) {
          env.api_version = std::string(tm.Bytes());
        } else if ((t2 >> 3) == 2 && (t2 & 7) == kLengthDelimited) {
          env.kind = std::string(tm.Bytes());
        } else {
          tm.Skip(static_cast<int>(t2 & 7));
        }
      }
    } else if (number == 2 && wire == kLengthDelimited) {
      env.raw = std::string(r.Bytes());
    } else if ((number == 3 || number == 4) && wire == kLengthDelimited) {
      std::string_view v = r.Bytes();
      if (number == 3 && !v.empty()) {
        throw ProtobufError("content encoding '" + std::string(v) + "' is not supported");
      }
    } else {
      r.Skip(wire);
    }
  }
  if (env.kind.empty()) {
    throw ProtobufError("the protobuf envelope does not name a kind");
  }
  return env;
}

json DecodeMessage(const TypeTable& table, const std::string& type, std::string_view raw) {
  json out = json::object();
  Decoder(table).Message(type, raw, out, "", 0);
  return out;
}

}  // namespace minik::api
