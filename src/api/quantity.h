#pragma once
// Kubernetes resource quantities ("100m", "0.5", "128Mi", "1G", "2e3") as
// integers of thousandths of the base unit, which is exact for every value a
// pod spec or a node's capacity carries.

#include <cstdint>
#include <optional>
#include <string>

#include "common/json.h"

namespace minik::api {

// Milli-units of a quantity (cpu "250m" -> 250, memory "1Ki" -> 1024000);
// nullopt when the text is not a quantity.
std::optional<int64_t> ParseQuantityMilli(const std::string& text);
// From a JSON value (string or number); 0 when absent or malformed.
int64_t QuantityMilli(const json& v);

}  // namespace minik::api
