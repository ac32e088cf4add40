#pragma once
// Decoding of Kubernetes protobuf bodies (`application/vnd.kubernetes.protobuf`):
// the 4-byte magic `k8s\0`, a runtime.Unknown envelope naming apiVersion and
// kind, and the object's message, turned into the JSON that the same object has
// in Kubernetes' JSON encoding. Driven by the type table; an unknown field,
// a wrong wire type or a truncated message is a DecodeError naming where.

#include <string>
#include <string_view>

#include "api/types.h"
#include "common/json.h"

namespace minik::api {

class ProtobufError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct ProtobufEnvelope {
  std::string api_version;
  std::string kind;
  std::string raw;  // the object's message
};

// Splits the magic and the envelope; throws ProtobufError.
ProtobufEnvelope DecodeEnvelope(std::string_view body);
// Decodes `raw` as message `type` into JSON; throws ProtobufError.
json DecodeMessage(const TypeTable& table, const std::string& type, std::string_view raw);

}  // namespace minik::api
