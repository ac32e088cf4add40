#pragma once
// Renders API objects as kube-apiserver writes them: the fields of each
// message in the order of its Go struct (`kind` and `apiVersion` first, then
// the order of the type table), map keys sorted, strings escaped as Go's
// encoding/json escapes them (`<`, `>` and `&` as \u003c, \u003e, \u0026),
// and a newline after the document. Clients that compare bytes (the Python
// client's tests compare Status bodies) see what a real cluster sends.
//
// Fields the type table does not know follow the known ones, sorted; objects
// of kinds it does not know at all keep a fixed order for the shapes the API
// server writes itself (Status, lists, Tables, discovery) and sorted keys
// otherwise.

#include <functional>
#include <string>

#include "api/types.h"
#include "common/json.h"

namespace minik::api {

class Encoder {
 public:
  // `kind_type` names the message of a top-level (apiVersion, kind), or ""
  // when it is not known; the encoder then tries `<package>.<version>.<kind>`.
  using KindType =
      std::function<std::string(const std::string& api_version, const std::string& kind)>;
  explicit Encoder(const TypeTable& types, KindType kind_type = nullptr);

  // The document with a trailing newline.
  std::string Encode(const json& obj) const;
  // Appends the document without a newline (for watch events and tables).
  void Append(const json& obj, std::string& out) const;
  // Appends `obj` as a value of message `type` ("" when unknown).
  void AppendAs(const json& obj, const std::string& type, std::string& out) const;

 private:
  std::string TopLevelType(const json& obj) const;
  void Message(const json& obj, const MessageDef* m, std::string& out) const;
  void Value(const json& v, const std::string& type, std::string& out) const;
  void Field(const json& v, const FieldDef& f, std::string& out) const;
  // The fields of `m` (and of its inline members) present in `obj`, in order.
  void Fields(const json& obj, const MessageDef* m, bool& first, std::string& out) const;
  void Ordered(const json& obj, const std::vector<std::string>& order,
               const std::function<std::string(const std::string& key)>& type_of,
               std::string& out) const;

  const TypeTable& types_;
  KindType kind_type_;
};

}  // namespace minik::api
