#pragma once
// Helpers for table cells, written to match what `kubectl get` prints on a
// real cluster (k8s.io/kubernetes/pkg/printers/internalversion).

#include <string>

#include "common/json.h"

namespace minik::api {

// "5m", "3h12m", "2d" as Kubernetes' duration.HumanDuration.
std::string HumanDuration(long long seconds);
// The age of an object from an RFC 3339 timestamp ("<unknown>" when absent).
std::string Age(const json& timestamp);
// Joins strings; `empty` when there are none.
std::string Join(const json& strings, const std::string& sep, const std::string& empty = "<none>");
// Label selector rendered as kubectl does: "app=web,tier in (a,b)".
std::string FormatSelector(const json& selector);
std::string FormatLabels(const json& labels, const std::string& empty = "<none>");
// The Pod STATUS column.
std::string PodStatusReason(const json& pod);
int64_t Int(const json& obj, const char* dotted, int64_t def = 0);

}  // namespace minik::api
