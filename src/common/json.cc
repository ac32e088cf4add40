#include "common/json.h"

#include <yaml.h>

#include <cmath>
#include <map>
#include <memory>
#include <optional>
#include <regex>

namespace minik {
namespace {

std::string EscapeKey(const std::string& k) {
  return k.find_first_of(".[]") == std::string::npos ? k : "[" + k + "]";
}

// Builds a json value from parse events with one explicit stack, so no input
// can make the builder recurse; checks depth and duplicate keys as it goes.
class Builder {
 public:
  explicit Builder(const DecodeOptions& opts) : opts_(opts) {}

  // Adds a finished value at the current position. Returns an error text or "".
  std::string Add(json v) {
    if (stack_.empty()) {
      root_ = std::move(v);
      have_root_ = true;
      return "";
    }
    Frame& f = stack_.back();
    if (f.value.is_array()) {
      f.value.push_back(std::move(v));
      return "";
    }
    if (!f.key) {
      if (!v.is_string()) {
        if (v.is_number_integer() || v.is_boolean() || v.is_number_float()) {
          v = v.dump();
        } else if (v.is_null()) {
          v = "null";
        } else {
          return "a mapping key must be a scalar";
        }
      }
      std::string k = v.get<std::string>();
      if (f.value.contains(k)) {
        duplicates_.push_back(Path() + "." + EscapeKey(k));
      }
      f.key = std::move(k);
      return "";
    }
    f.value[*f.key] = std::move(v);
    f.key.reset();
    return "";
  }

  std::string Open(bool object) {
    if (stack_.size() >= opts_.max_depth) {
      return "nesting is deeper than " + std::to_string(opts_.max_depth) + " levels";
    }
    Frame f;
    f.value = object ? json::object() : json::array();
    if (!stack_.empty()) {
      Frame& parent = stack_.back();
      if (parent.value.is_object() && !parent.key) {
        return "a mapping key must be a scalar";
      }
      f.name = parent.value.is_object() ? "." + EscapeKey(*parent.key)
                                        : "[" + std::to_string(parent.value.size()) + "]";
    }
    stack_.push_back(std::move(f));
    return "";
  }

  // Closes the innermost collection; copies it to `copy` first when asked (for anchors).
  std::string Close(json* copy = nullptr) {
    json v = std::move(stack_.back().value);
    stack_.pop_back();
    if (copy) {
      *copy = v;
    }
    return Add(std::move(v));
  }

  std::string Path() const {
    std::string p;
    for (auto& f : stack_) {
      p += f.name;
    }
    return p;
  }

  bool done() const { return have_root_ && stack_.empty(); }
  size_t depth() const { return stack_.size(); }
  Decoded Take() { return Decoded{std::move(root_), std::move(duplicates_)}; }

 private:
  struct Frame {
    json value;
    std::optional<std::string> key;
    std::string name;
  };
  const DecodeOptions& opts_;
  std::vector<Frame> stack_;
  json root_;
  bool have_root_ = false;
  std::vector<std::string> duplicates_;
};

class JsonSax : public nlohmann::json_sax<json> {
 public:
  explicit JsonSax(const DecodeOptions& opts) : b_(opts) {}
  bool null() override { return Ok(b_.Add(nullptr)); }
  bool boolean(bool v) override { return Ok(b_.Add(v)); }
  bool number_integer(number_integer_t v) override { return Ok(b_.Add(v)); }
  bool number_unsigned(number_unsigned_t v) override { return Ok(b_.Add(v)); }
  bool number_float(number_float_t v, const string_t&) override { return Ok(b_.Add(v)); }
  bool string(string_t& v) override { return Ok(b_.Add(std::move(v))); }
  bool binary(binary_t&) override { return Ok("binary values are not JSON"); }
  bool start_object(std::size_t) override { return Ok(b_.Open(true)); }
  bool key(string_t& k) override { return Ok(b_.Add(std::move(k))); }
  bool end_object() override { return Ok(b_.Close()); }
  bool start_array(std::size_t) override { return Ok(b_.Open(false)); }
  bool end_array() override { return Ok(b_.Close()); }
  bool parse_error(std::size_t pos, const std::string&,
                   const nlohmann::detail::exception& ex) override {
    std::string what = ex.what();
    // nlohmann's messages start with "[json.exception.parse_error.101] parse error at ...".
    auto p = what.find("] ");
    error_ = p == std::string::npos ? what : what.substr(p + 2);
    return false;
  }
  Builder& builder() { return b_; }
  const std::string& error() const { return error_; }

 private:
  bool Ok(const std::string& err) {
    if (!err.empty()) {
      error_ = err + " at " + (b_.Path().empty() ? "the top level" : b_.Path());
      return false;
    }
    return true;
  }
  Builder b_;
  std::string error_;
};

// YAML 1.2 core schema resolution of a plain scalar.
json ResolvePlain(const std::string& s) {
  if (s.empty() || s == "~" || s == "null" || s == "Null" || s == "NULL") {
    return nullptr;
  }
  if (s == "true" || s == "True" || s == "TRUE") {
    return true;
  }
  if (s == "false" || s == "False" || s == "FALSE") {
    return false;
  }
  static const std::regex kInt("[-+]?[0-9]+");
  static const std::regex kOct("0o[0-7]+");
  static const std::regex kHex("0x[0-9a-fA-F]+");
  static const std::regex kFloat("[-+]?(\\.[0-9]+|[0-9]+(\\.[0-9]*)?)([eE][-+]?[0-9]+)?");
  if (s.size() < 40) {
    try {
      if (std::regex_match(s, kInt)) {
        return std::stoll(s);
      }
      if (std::regex_match(s, kOct)) {
        return std::stoll(s.substr(2), nullptr, 8);
      }
      if (std::regex_match(s, kHex)) {
        return std::stoll(s.substr(2), nullptr, 16);
      }
      if (std::regex_match(s, kFloat)) {
        return std::stod(s);
      }
    } catch (const std::out_of_range&) {
      return s;
    }
    if (s == ".inf" || s == ".Inf" || s == ".INF" || s == "+.inf") {
      return HUGE_VAL;
    }
    if (s == "-.inf" || s == "-.Inf" || s == "-.INF") {
      return -HUGE_VAL;
    }
  }
  return s;
}

json ScalarValue(const yaml_event_t& ev) {
  std::string value(reinterpret_cast<const char*>(ev.data.scalar.value), ev.data.scalar.length);
  std::string tag = ev.data.scalar.tag ? reinterpret_cast<const char*>(ev.data.scalar.tag) : "";
  if (tag == "tag:yaml.org,2002:str") {
    return value;
  }
  if (!tag.empty() && tag != "!") {
    json r = ResolvePlain(value);
    if (tag == "tag:yaml.org,2002:int" && r.is_number_integer()) {
      return r;
    }
    if (tag == "tag:yaml.org,2002:bool" && r.is_boolean()) {
      return r;
    }
    if (tag == "tag:yaml.org,2002:null" && r.is_null()) {
      return r;
    }
    if (tag == "tag:yaml.org,2002:float" && r.is_number()) {
      return r.get<double>();
    }
    return value;
  }
  if (ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE) {
    return value;
  }
  return ResolvePlain(value);
}

size_t CountNodes(const json& v) {
  // Iterative, so that counting never recurses deeper than the input allows.
  size_t n = 0;
  std::vector<const json*> todo{&v};
  while (!todo.empty()) {
    const json* j = todo.back();
    todo.pop_back();
    ++n;
    if (j->is_structured()) {
      for (auto& c : *j) {
        todo.push_back(&c);
      }
    }
  }
  return n;
}

std::string Mark(const yaml_mark_t& m) {
  return "line " + std::to_string(m.line + 1) + ", column " + std::to_string(m.column + 1);
}

}  // namespace

Decoded ParseJson(std::string_view text, const DecodeOptions& opts) {
  JsonSax sax(opts);
  bool ok =
      json::sax_parse(text.begin(), text.end(), &sax, nlohmann::detail::input_format_t::json, true);
  if (!ok || !sax.builder().done()) {
    throw ParseError(sax.error().empty() ? "incomplete JSON document" : sax.error());
  }
  return sax.builder().Take();
}

std::vector<Decoded> ParseYamlDocuments(std::string_view text, const DecodeOptions& opts) {
  yaml_parser_t parser;
  yaml_parser_initialize(&parser);
  std::unique_ptr<yaml_parser_t, void (*)(yaml_parser_t*)> guard(&parser, yaml_parser_delete);
  yaml_parser_set_input_string(&parser, reinterpret_cast<const unsigned char*>(text.data()),
                               text.size());
  std::vector<Decoded> docs;
  std::unique_ptr<Builder> b;
  std::map<std::string, json> anchors;
  // Anchors that are still open, with the depth at which their node started.
  std::vector<std::pair<std::string, size_t>> open_anchors;
  size_t nodes = 0;
  size_t alias_nodes = 0;
  auto fail = [&](const std::string& msg, const yaml_mark_t& m) {
    throw ParseError(Mark(m) + ": " + msg);
  };
  for (;;) {
    yaml_event_t ev;
    if (!yaml_parser_parse(&parser, &ev)) {
      std::string problem = parser.problem ? parser.problem : "invalid YAML";
      if (parser.context) {
        problem = std::string(parser.context) + ": " + problem;
      }
      throw ParseError(Mark(parser.problem_mark) + ": " + problem);
    }
    std::unique_ptr<yaml_event_t, void (*)(yaml_event_t*)> evg(&ev, yaml_event_delete);
    std::string err;
    auto anchor_of = [](const unsigned char* a) { return a ? std::string((const char*)a) : ""; };
    switch (ev.type) {
      case YAML_STREAM_END_EVENT:
        return docs;
      case YAML_DOCUMENT_START_EVENT:
        b = std::make_unique<Builder>(opts);
        anchors.clear();
        break;
      case YAML_DOCUMENT_END_EVENT: {
        if (b && b->done()) {
          Decoded d = b->Take();
          if (!d.value.is_null()) {
            docs.push_back(std::move(d));
          }
        }
        b.reset();
        break;
      }
      case YAML_SCALAR_EVENT: {
        json v = ScalarValue(ev);
        if (++nodes > opts.max_nodes) {
          fail("the document expands to more than " + std::to_string(opts.max_nodes) + " nodes",
               ev.start_mark);
        }
        std::string a = anchor_of(ev.data.scalar.anchor);
        if (!a.empty()) {
          anchors[a] = v;
        }
        err = b->Add(std::move(v));
        break;
      }
      case YAML_ALIAS_EVENT: {
        std::string a = anchor_of(ev.data.alias.anchor);
        auto it = anchors.find(a);
        if (it == anchors.end()) {
          fail("unknown alias '" + a + "'", ev.start_mark);
        }
        // Each alias is a copy; count what it adds, so alias bombs stop early.
        // Aliases may at most double a document (or add 10000 nodes to a small one).
        alias_nodes += CountNodes(it->second);
        if (alias_nodes > std::max<size_t>(10000, nodes) || nodes + alias_nodes > opts.max_nodes) {
          fail("aliases expand the document to more than twice its size (" +
                   std::to_string(nodes + alias_nodes) + " nodes so far)",
               ev.start_mark);
        }
        err = b->Add(it->second);
        break;
      }
      case YAML_SEQUENCE_START_EVENT:
      case YAML_MAPPING_START_EVENT: {
        bool is_map = ev.type == YAML_MAPPING_START_EVENT;
        ++nodes;
        std::string a =
            anchor_of(is_map ? ev.data.mapping_start.anchor : ev.data.sequence_start.anchor);
        err = b->Open(is_map);
        if (!a.empty()) {
          open_anchors.emplace_back(a, b->depth());
        }
        break;
      }
      case YAML_SEQUENCE_END_EVENT:
      case YAML_MAPPING_END_EVENT: {
        size_t depth = b->depth();
        std::optional<std::string> anchor;
        if (!open_anchors.empty() && open_anchors.back().second == depth) {
          anchor = open_anchors.back().first;
          open_anchors.pop_back();
        }
        err = b->Close(anchor ? &anchors[*anchor] : nullptr);
        break;
      }
      default:
        break;
    }
    if (!err.empty()) {
      fail(err + (b->Path().empty() ? "" : " at " + b->Path()), ev.start_mark);
    }
  }
}

Decoded ParseYaml(std::string_view text, const DecodeOptions& opts) {
  auto docs = ParseYamlDocuments(text, opts);
  if (docs.size() != 1) {
    throw ParseError("expected exactly one YAML document, found " + std::to_string(docs.size()));
  }
  return std::move(docs[0]);
}

namespace {

bool NeedsQuotes(const std::string& s) {
  if (s.empty()) {
    return true;
  }
  json resolved = ResolvePlain(s);
  if (!resolved.is_string()) {
    return true;
  }
  if (s.find_first_of(":#{}[],&*!|>'\"%@`\n\t") != std::string::npos) {
    return true;
  }
  return s.front() == ' ' || s.back() == ' ' || s.front() == '-' || s.front() == '?';
}

std::string Scalar(const json& v) {
  if (v.is_string()) {
    const std::string& s = v.get_ref<const std::string&>();
    return NeedsQuotes(s) ? json(s).dump() : s;
  }
  return v.dump();
}

void EmitYaml(const json& v, int indent, std::string& out) {
  std::string pad(static_cast<size_t>(indent), ' ');
  if (v.is_object()) {
    for (auto it = v.begin(); it != v.end(); ++it) {
      out += pad + Scalar(it.key()) + ":";
      const json& c = it.value();
      if (c.is_structured() && !c.empty()) {
        out += "\n";
        EmitYaml(c, c.is_array() ? indent : indent + 2, out);
      } else {
        out +=
            " " + (c.is_structured() ? std::string(c.is_array() ? "[]" : "{}") : Scalar(c)) + "\n";
      }
    }
  } else if (v.is_array()) {
    for (const auto& c : v) {
      if (c.is_object() && !c.empty()) {
        std::string sub;
        EmitYaml(c, indent + 2, sub);
        // The first line of the item goes after the dash.
        out += pad + "- " + sub.substr(static_cast<size_t>(indent) + 2);
      } else if (c.is_array() && !c.empty()) {
        out += pad + "-\n";
        EmitYaml(c, indent + 2, out);
      } else {
        out += pad + "- " +
               (c.is_structured() ? std::string(c.is_array() ? "[]" : "{}") : Scalar(c)) + "\n";
      }
    }
  } else {
    out += pad + Scalar(v) + "\n";
  }
}

}  // namespace

std::string ToYaml(const json& value) {
  std::string out;
  EmitYaml(value, 0, out);
  return out;
}

const json* Find(const json& obj, std::string_view dotted_path) {
  const json* cur = &obj;
  size_t pos = 0;
  while (pos <= dotted_path.size()) {
    size_t dot = dotted_path.find('.', pos);
    std::string part(dotted_path.substr(
        pos, dot == std::string_view::npos ? std::string_view::npos : dot - pos));
    if (!cur->is_object()) {
      return nullptr;
    }
    auto it = cur->find(part);
    if (it == cur->end()) {
      return nullptr;
    }
    cur = &*it;
    if (dot == std::string_view::npos) {
      break;
    }
    pos = dot + 1;
  }
  return cur;
}

std::string GetString(const json& obj, std::string_view dotted_path, const std::string& def) {
  const json* v = Find(obj, dotted_path);
  return v && v->is_string() ? v->get<std::string>() : def;
}

void AppendGoJsonString(std::string_view s, std::string& out) {
  static const char* hex = "0123456789abcdef";
  out += '"';
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      switch (c) {
        case '"':
          out += "\\\"";
          break;
        case '\\':
          out += "\\\\";
          break;
        case '\n':
          out += "\\n";
          break;
        case '\r':
          out += "\\r";
          break;
        case '\t':
          out += "\\t";
          break;
        case '\b':
          out += "\\b";
          break;
        case '\f':
          out += "\\f";
          break;
        case '<':
        case '>':
        case '&':
          out += "\\u00";
          out += hex[c >> 4];
          out += hex[c & 0xf];
          break;
        default:
          if (c < 0x20) {
            out += "\\u00";
            out += hex[c >> 4];
            out += hex[c & 0xf];
          } else {
            out += static_cast<char>(c);
          }
      }
      ++i;
      continue;
    }
    // A UTF-8 sequence: copied when valid, U+FFFD when not, and the line
    // and paragraph separators escaped (as Go does, for JavaScript's sake).
    size_t n = c >= 0xf0 ? 4 : c >= 0xe0 ? 3 : c >= 0xc0 ? 2 : 0;
    bool valid = n >= 2 && c < 0xf5 && i + n <= s.size();
    uint32_t cp = n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
    for (size_t k = 1; valid && k < n; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      valid = (cc & 0xc0) == 0x80;
      cp = (cp << 6) | (cc & 0x3f);
    }
    if (valid) {
      // Overlong forms and surrogates are invalid too.
      valid = !(n == 2 && cp < 0x80) && !(n == 3 && cp < 0x800) && !(n == 4 && cp < 0x10000) &&
              !(cp >= 0xd800 && cp <= 0xdfff) && cp <= 0x10ffff;
    }
    if (!valid) {
      out += "\\ufffd";
      ++i;
      continue;
    }
    if (cp == 0x2028 || cp == 0x2029) {
      out += cp == 0x2028 ? "\\u2028" : "\\u2029";
    } else {
      out.append(s.data() + i, n);
    }
    i += n;
  }
  out += '"';
}

}  // namespace minik
