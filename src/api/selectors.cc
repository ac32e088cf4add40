#include "api/selectors.h"

#include <algorithm>

#include "api/status.h"

namespace minik::api {
namespace {

std::string Trim(const std::string& s) {
  size_t a = s.find_first_not_of(" \t");
  size_t b = s.find_last_not_of(" \t");
  return a == std::string::npos ? "" : s.substr(a, b - a + 1);
}

// Splits on commas that are not inside parentheses.
std::vector<std::string> SplitTop(const std::string& s) {
  std::vector<std::string> parts;
  std::string cur;
  int depth = 0;
  for (char c : s) {
    if (c == '(') {
      ++depth;
    } else if (c == ')') {
      --depth;
    }
    if (c == ',' && depth == 0) {
      parts.push_back(cur);
      cur.clear();
    } else {
      cur += c;
    }
  }
  parts.push_back(cur);
  return parts;
}

std::string LabelValue(const json& labels, const std::string& key, bool* has) {
  *has = labels.is_object() && labels.contains(key);
  if (!*has) {
    return "";
  }
  const json& v = labels[key];
  return v.is_string() ? v.get<std::string>() : v.dump();
}

}  // namespace

LabelSelector LabelSelector::Parse(const std::string& text) {
  LabelSelector sel;
  if (Trim(text).empty()) {
    return sel;
  }
  for (const std::string& raw : SplitTop(text)) {
    std::string part = Trim(raw);
    if (part.empty()) {
      throw BadRequest(
          "unable to parse requirement: found '', expected: identifier in selector \"" + text +
          "\"");
    }
    Requirement r;
    auto set_op = [&](const std::string& word, Requirement::Op op) -> bool {
      auto pos = part.find(" " + word + " ");
      if (pos == std::string::npos) {
        pos = part.find(" " + word + "(");
      }
      if (pos == std::string::npos) {
        return false;
      }
      r.key = Trim(part.substr(0, pos));
      std::string rest = Trim(part.substr(pos + word.size() + 1));
      if (rest.empty() || rest.front() != '(' || rest.back() != ')') {
        throw BadRequest("unable to parse requirement: found '" + rest +
                         "', expected: '(' in selector \"" + text + "\"");
      }
      std::string inner = rest.substr(1, rest.size() - 2);
      size_t start = 0;
      while (true) {
        size_t comma = inner.find(',', start);
        std::string v = Trim(
            inner.substr(start, comma == std::string::npos ? std::string::npos : comma - start));
        r.values.push_back(v);
        if (comma == std::string::npos) {
          break;
        }
        start = comma + 1;
      }
      r.op = op;
      return true;
    };
    if (set_op("notin", Requirement::Op::kNotIn) || set_op("in", Requirement::Op::kIn)) {
      // parsed
    } else if (auto p = part.find("!="); p != std::string::npos) {
      r.key = Trim(part.substr(0, p));
      r.op = Requirement::Op::kNotEq;
      r.values = {Trim(part.substr(p + 2))};
    } else if (auto p2 = part.find("=="); p2 != std::string::npos) {
      r.key = Trim(part.substr(0, p2));
      r.op = Requirement::Op::kEq;
      r.values = {Trim(part.substr(p2 + 2))};
    } else if (auto p3 = part.find('='); p3 != std::string::npos) {
      r.key = Trim(part.substr(0, p3));
      r.op = Requirement::Op::kEq;
      r.values = {Trim(part.substr(p3 + 1))};
    } else if (part[0] == '!') {
      r.key = Trim(part.substr(1));
      r.op = Requirement::Op::kNotExists;
    } else {
      r.key = part;
      r.op = Requirement::Op::kExists;
    }
    if (r.key.empty() || r.key.find_first_of(" ()=!") != std::string::npos) {
      throw BadRequest("unable to parse requirement: invalid label key \"" + r.key +
                       "\" in selector \"" + text + "\"");
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

LabelSelector LabelSelector::FromJson(const json& selector) {
  LabelSelector sel;
  if (!selector.is_object()) {
    sel.nothing_ = true;
    return sel;
  }
  if (auto ml = selector.find("matchLabels"); ml != selector.end() && ml->is_object()) {
    for (auto it = ml->begin(); it != ml->end(); ++it) {
      sel.reqs_.push_back(
          {it.key(),
           Requirement::Op::kEq,
           {it.value().is_string() ? it.value().get<std::string>() : it.value().dump()}});
    }
  }
  if (auto me = selector.find("matchExpressions"); me != selector.end() && me->is_array()) {
    for (const auto& e : *me) {
      Requirement r;
      r.key = e.value("key", "");
      std::string op = e.value("operator", "");
      r.op = op == "In"             ? Requirement::Op::kIn
             : op == "NotIn"        ? Requirement::Op::kNotIn
             : op == "Exists"       ? Requirement::Op::kExists
             : op == "DoesNotExist" ? Requirement::Op::kNotExists
                                    : Requirement::Op::kIn;
      for (const auto& v : e.value("values", json::array())) {
        if (v.is_string()) {
          r.values.push_back(v.get<std::string>());
        }
      }
      sel.reqs_.push_back(std::move(r));
    }
  }
  return sel;
}

LabelSelector LabelSelector::FromMap(const json& labels) {
  LabelSelector sel;
  if (!labels.is_object() || labels.empty()) {
    sel.nothing_ = true;
    return sel;
  }
  for (auto it = labels.begin(); it != labels.end(); ++it) {
    sel.reqs_.push_back(
        {it.key(),
         Requirement::Op::kEq,
         {it.value().is_string() ? it.value().get<std::string>() : it.value().dump()}});
  }
  return sel;
}

bool LabelSelector::Matches(const json& labels) const {
  if (nothing_) {
    return false;
  }
  for (const auto& r : reqs_) {
    bool has;
    std::string v = LabelValue(labels, r.key, &has);
    bool in = has && std::find(r.values.begin(), r.values.end(), v) != r.values.end();
    switch (r.op) {
      case Requirement::Op::kEq:
      case Requirement::Op::kIn:
        if (!in) {
          return false;
        }
        break;
      case Requirement::Op::kNotEq:
      case Requirement::Op::kNotIn:
        if (in) {
          return false;
        }
        break;
      case Requirement::Op::kExists:
        if (!has) {
          return false;
        }
        break;
      case Requirement::Op::kNotExists:
        if (has) {
          return false;
        }
        break;
    }
  }
  return true;
}

FieldSelector FieldSelector::Parse(const std::string& text) {
  FieldSelector sel;
  if (Trim(text).empty()) {
    return sel;
  }
  for (const std::string& raw : SplitTop(text)) {
    std::string part = Trim(raw);
    Requirement r;
    if (auto p = part.find("!="); p != std::string::npos) {
      r = {Trim(part.substr(0, p)), false, Trim(part.substr(p + 2))};
    } else if (auto p2 = part.find("=="); p2 != std::string::npos) {
      r = {Trim(part.substr(0, p2)), true, Trim(part.substr(p2 + 2))};
    } else if (auto p3 = part.find('='); p3 != std::string::npos) {
      r = {Trim(part.substr(0, p3)), true, Trim(part.substr(p3 + 1))};
    } else {
      throw BadRequest("invalid selector: '" + text + "'; can't understand '" + part + "'");
    }
    if (r.field.empty()) {
      throw BadRequest("invalid selector: '" + text + "'; a field name is required");
    }
    sel.reqs_.push_back(std::move(r));
  }
  return sel;
}

bool FieldSelector::Matches(const json& obj) const {
  for (const auto& r : reqs_) {
    const json* v = Find(obj, r.field);
    std::string s;
    if (v && !v->is_null()) {
      s = v->is_string() ? v->get<std::string>() : v->dump();
    }
    if ((s == r.value) != r.equal) {
      return false;
    }
  }
  return true;
}

}  // namespace minik::api
