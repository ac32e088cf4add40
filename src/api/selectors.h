#pragma once
// Label selectors (`app=web,tier in (a,b),!legacy`) and field selectors
// (`metadata.name=web,status.phase!=Running`) as list and watch accept them.

#include <string>
#include <vector>

#include "common/json.h"

namespace minik::api {

class LabelSelector {
 public:
  // Throws StatusError 400 naming what could not be parsed.
  static LabelSelector Parse(const std::string& text);
  // From a metav1.LabelSelector object (matchLabels, matchExpressions). An
  // absent selector matches nothing unless `empty_matches_all`.
  static LabelSelector FromJson(const json& selector);
  // From a plain map (a Service's selector).
  static LabelSelector FromMap(const json& labels);
  bool Matches(const json& labels) const;
  bool empty() const { return reqs_.empty(); }
  // True for a selector made from nothing, which selects no objects.
  bool nothing() const { return nothing_; }

 private:
  bool nothing_ = false;
  struct Requirement {
    std::string key;
    enum class Op { kEq, kNotEq, kIn, kNotIn, kExists, kNotExists } op;
    std::vector<std::string> values;
  };
  std::vector<Requirement> reqs_;
};

class FieldSelector {
 public:
  static FieldSelector Parse(const std::string& text);
  // Fields are dotted paths into the object (`spec.nodeName`, `involvedObject.uid`).
  bool Matches(const json& obj) const;
  bool empty() const { return reqs_.empty(); }

 private:
  struct Requirement {
    std::string field;
    bool equal;
    std::string value;
  };
  std::vector<Requirement> reqs_;
};

}  // namespace minik::api
