#pragma once
// JSON and YAML decoding for input minik does not trust: request bodies,
// manifests, kubeconfigs. Both reject nesting deeper than kMaxDepth, and
// record duplicate keys instead of silently keeping the last one, so that
// `fieldValidation=Strict` can name them.

#include <nlohmann/json.hpp>

#include <string>
#include <string_view>
#include <vector>

namespace minik {

using json = nlohmann::json;

// What was wrong with a document, and where: "line 3, column 7: ...".
class ParseError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct DecodeOptions {
  size_t max_depth = 200;
  // The largest number of nodes a YAML document may expand to through aliases.
  size_t max_nodes = 2'000'000;
};

struct Decoded {
  json value;
  // JSON paths of keys that appeared twice in one object, e.g. `.spec.replicas`.
  std::vector<std::string> duplicate_keys;
};

// Parses exactly one JSON value.
Decoded ParseJson(std::string_view text, const DecodeOptions& opts = {});
// Parses one or more YAML documents (YAML 1.2 core schema); empty documents are skipped.
std::vector<Decoded> ParseYamlDocuments(std::string_view text, const DecodeOptions& opts = {});
// Parses a single YAML document (or JSON, which is YAML); throws when there is not exactly one.
Decoded ParseYaml(std::string_view text, const DecodeOptions& opts = {});
// Renders JSON as block-style YAML (for kubeconfig files and the CLI).
std::string ToYaml(const json& value);

// Appends `s` as a JSON string escaped as Go's encoding/json escapes it (what
// Kubernetes clients see): `<`, `>`, `&`, U+2028 and U+2029 as \uXXXX,
// invalid UTF-8 as \ufffd.
void AppendGoJsonString(std::string_view s, std::string& out);

// Returns the value at a dotted path (`spec.template.metadata`), or nullptr.
const json* Find(const json& obj, std::string_view dotted_path);
std::string GetString(const json& obj, std::string_view dotted_path, const std::string& def = "");

}  // namespace minik
