#pragma once
// Validation helpers shared by the API server and the built-in kinds.

#include <string>
#include <vector>

#include "api/status.h"
#include "common/json.h"

namespace minik::api {

bool IsDns1123Label(const std::string& s);
bool IsDns1123Subdomain(const std::string& s);
// metadata.name (a DNS-1123 label when `label_name`, else a subdomain),
// namespace presence, labels and annotations.
void ValidateObjectMeta(const json& obj, bool namespaced, bool label_name,
                        std::vector<Cause>& causes);

}  // namespace minik::api
