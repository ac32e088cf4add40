#include "api/status.h"

namespace minik::api {
namespace {

std::string Qualified(const std::string& group, const std::string& resource) {
  return group.empty() ? resource : resource + "." + group;
}

json Details(const std::string& group, const std::string& resource, const std::string& name) {
  json d = json::object();
  if (!name.empty()) {
    d["name"] = name;
  }
  if (!group.empty()) {
    d["group"] = group;
  }
  d["kind"] = resource;
  return d;
}

}  // namespace

json StatusError::ToStatus() const {
  json s = {{"kind", "Status"},    {"apiVersion", "v1"},  {"metadata", json::object()},
            {"status", "Failure"}, {"message", message_}, {"reason", reason_},
            {"code", code_}};
  if (!details_.is_null()) {
    s["details"] = details_;
  }
  return s;
}

StatusError NotFound(const std::string& group, const std::string& resource,
                     const std::string& name) {
  return StatusError(404, "NotFound", Qualified(group, resource) + " \"" + name + "\" not found",
                     Details(group, resource, name));
}

StatusError AlreadyExists(const std::string& group, const std::string& resource,
                          const std::string& name) {
  return StatusError(409, "AlreadyExists",
                     Qualified(group, resource) + " \"" + name + "\" already exists",
                     Details(group, resource, name));
}

StatusError Conflict(const std::string& group, const std::string& resource, const std::string& name,
                     const std::string& why) {
  return StatusError(409, "Conflict",
                     "Operation cannot be fulfilled on " + Qualified(group, resource) + " \"" +
                         name + "\": " + why,
                     Details(group, resource, name));
}

StatusError Invalid(const std::string& group, const std::string& kind, const std::string& name,
                    const std::vector<Cause>& causes) {
  std::string msg = (group.empty() ? kind : kind + "." + group) + " \"" + name + "\" is invalid: ";
  json c = json::array();
  for (size_t i = 0; i < causes.size(); ++i) {
    const Cause& x = causes[i];
    msg += (i ? ", " : "") + (x.field.empty() ? "" : x.field + ": ") + x.message;
    c.push_back({{"reason", x.reason}, {"message", x.message}, {"field", x.field}});
  }
  if (causes.size() > 1) {
    // Kubernetes brackets a list of several errors.
    msg = (group.empty() ? kind : kind + "." + group) + " \"" + name + "\" is invalid: [";
    for (size_t i = 0; i < causes.size(); ++i) {
      msg += (i ? ", " : "") + (causes[i].field.empty() ? "" : causes[i].field + ": ") +
             causes[i].message;
    }
    msg += "]";
  }
  json d = {{"name", name}, {"kind", kind}, {"causes", c}};
  if (!group.empty()) {
    d["group"] = group;
  }
  return StatusError(422, "Invalid", msg, d);
}

StatusError BadRequest(const std::string& message) {
  return StatusError(400, "BadRequest", message);
}
StatusError Forbidden(const std::string& message) {
  return StatusError(403, "Forbidden", message);
}
StatusError MethodNotAllowed(const std::string& message) {
  return StatusError(405, "MethodNotAllowed", message);
}
StatusError Gone(const std::string& message) {
  return StatusError(410, "Expired", message);
}
StatusError UnsupportedMediaType(const std::string& message) {
  return StatusError(415, "UnsupportedMediaType", message);
}
StatusError NotAcceptable(const std::string& message) {
  return StatusError(406, "NotAcceptable", message);
}
StatusError Unauthorized() {
  return StatusError(401, "Unauthorized", "Unauthorized");
}
StatusError InternalError(const std::string& message) {
  return StatusError(500, "InternalError", "Internal error occurred: " + message);
}
StatusError TooManyRequests(const std::string& message) {
  return StatusError(429, "TooManyRequests", message);
}

json StatusSuccess(const json& details) {
  json s = {{"kind", "Status"},
            {"apiVersion", "v1"},
            {"metadata", json::object()},
            {"status", "Success"}};
  if (!details.is_null()) {
    s["details"] = details;
  }
  return s;
}

}  // namespace minik::api
