#pragma once
// Patches as the API server applies them: JSON merge patch (RFC 7386), JSON
// patch (RFC 6902) and strategic merge patch, whose list semantics come from
// the patch metadata (patchStrategy, patchMergeKey) in the type table.

#include <string>

#include "api/types.h"
#include "common/json.h"

namespace minik::api {

class PatchError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

json ApplyMergePatch(const json& original, const json& patch);
json ApplyJsonPatch(const json& original, const json& patch);
// `type` names the message of `original` in the table; unknown parts of the
// tree fall back to merge-patch behaviour (lists are replaced).
json ApplyStrategicMergePatch(const TypeTable& table, const std::string& type, const json& original,
                              const json& patch);

}  // namespace minik::api
