#pragma once
// Kubernetes API errors: a typed exception that the request handler turns into
// a `Status` object (kind: Status, status: Failure, reason, message, details, code).

#include <stdexcept>
#include <string>
#include <vector>

#include "common/json.h"

namespace minik::api {

struct Cause {
  std::string reason;  // FieldValueRequired, FieldValueInvalid, FieldValueNotSupported, ...
  std::string message;
  std::string field;  // e.g. spec.template.spec.containers[0].image
};

class StatusError : public std::exception {
 public:
  StatusError(int code, std::string reason, std::string message, json details = nullptr)
      : code_(code),
        reason_(std::move(reason)),
        message_(std::move(message)),
        details_(std::move(details)) {}
  const char* what() const noexcept override { return message_.c_str(); }
  int code() const { return code_; }
  const std::string& reason() const { return reason_; }
  json ToStatus() const;

 private:
  int code_;
  std::string reason_;
  std::string message_;
  json details_;
};

// `group` and `resource` as in Kubernetes messages: pods "web" not found,
// deployments.apps "web" already exists.
StatusError NotFound(const std::string& group, const std::string& resource,
                     const std::string& name);
StatusError AlreadyExists(const std::string& group, const std::string& resource,
                          const std::string& name);
StatusError Conflict(const std::string& group, const std::string& resource, const std::string& name,
                     const std::string& why);
StatusError Invalid(const std::string& group, const std::string& kind, const std::string& name,
                    const std::vector<Cause>& causes);
StatusError BadRequest(const std::string& message);
StatusError Forbidden(const std::string& message);
StatusError MethodNotAllowed(const std::string& message);
StatusError Gone(const std::string& message);  // 410 Expired
StatusError UnsupportedMediaType(const std::string& message);
StatusError NotAcceptable(const std::string& message);
StatusError Unauthorized();
StatusError InternalError(const std::string& message);
StatusError TooManyRequests(const std::string& message);

json StatusSuccess(const json& details = nullptr);

}  // namespace minik::api
