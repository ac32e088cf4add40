#pragma once
// The server side of Kubernetes' remote command protocols, what `kubectl
// exec`, `attach` and `cp` speak to a kubelet: stdin, stdout, stderr, an
// error channel that carries the final Status, and terminal resize events.
//
// Two transports, as the kubelet accepts them:
// - WebSocket channels: every binary message starts with its channel byte
//   (0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize; `v5.channel.k8s.io` adds
//   255 "close": `ff 00` means stdin is done). `v4.channel.k8s.io`,
//   `channel.k8s.io` and the base64 variants (text messages, channel as an
//   ASCII digit, base64 data) are accepted too.
// - SPDY/3.1 (`Upgrade: SPDY/3.1`, kubectl's fallback), protocol negotiated in
//   `X-Stream-Protocol-Version`: one stream per `streamType` header (stdin,
//   stdout, stderr, error, resize); stdin ends with the client's FIN.
//
// The session's own thread reads the connection, so pings are answered and
// resize events arrive whatever the caller is doing.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/http.h"

namespace minik::streams {

// Subprotocol names.
inline constexpr std::string_view kStreamProtocolV5 = "v5.channel.k8s.io";
inline constexpr std::string_view kStreamProtocolV4 = "v4.channel.k8s.io";
inline constexpr std::string_view kStreamProtocolV3 = "v3.channel.k8s.io";
inline constexpr std::string_view kStreamProtocolV2 = "v2.channel.k8s.io";
inline constexpr std::string_view kStreamProtocolV1 = "channel.k8s.io";

// Which streams the client asked for (query `stdin`, `stdout`, `stderr`, `tty`;
// the fields avoid the names of <cstdio>'s macros).
struct ExecOptions {
  bool want_stdin = false;
  bool want_stdout = false;
  bool want_stderr = false;
  bool tty = false;
};

// Reads the options from the query as the kubelet does ("1" or "true"); with
// a tty stderr is dropped. nullopt, with the reason in `error`, when no stream
// at all is asked for ("you must specify at least 1 of stdin, stdout, stderr").
std::optional<ExecOptions> ParseExecOptions(const http::Request& req, std::string* error);

// Kubernetes' remotecommand.TerminalSize, sent as {"Width":80,"Height":24}.
struct TerminalSize {
  uint16_t width = 0;
  uint16_t height = 0;
};

// The Status JSON the error channel carries (v4 and later), byte for byte as
// the kubelet marshals it:
//   success   {"metadata":{},"status":"Success"}
//   exit code {"metadata":{},"status":"Failure","message":"command terminated with
//              non-zero exit code: MESSAGE","reason":"NonZeroExitCode",
//              "details":{"causes":[{"reason":"ExitCode","message":"3"}]}}
//   error     {"metadata":{},"status":"Failure","message":"Internal error occurred:
//              MESSAGE","reason":"InternalError","details":{"causes":[{"message":
//              "MESSAGE"}]},"code":500}
std::string SuccessStatusJson();
std::string ExitCodeStatusJson(int exit_code, std::string_view message);
std::string InternalErrorStatusJson(std::string_view message);
// The message containerd gives a failed exec, which kubectl users know:
// "error executing command [sh -c exit 3], exit code 3".
std::string ExitCodeMessage(const std::vector<std::string>& command, int exit_code);

// One exec or attach connection. Thread-safe: one thread may read stdin while
// others write stdout and stderr and another waits for resizes.
class ExecSession {
 public:
  virtual ~ExecSession() = default;

  // Takes over an exec/attach request: WebSocket when it asks for one, else
  // SPDY/3.1. nullptr when the upgrade failed; an error response was sent and
  // `error` says why. Blocks (for SPDY) until the client opened its streams.
  static std::unique_ptr<ExecSession> Accept(http::Request& req, http::ResponseWriter& w,
                                             const ExecOptions& opts, std::string* error = nullptr);

  // The negotiated protocol, e.g. "v5.channel.k8s.io".
  virtual const std::string& protocol() const = 0;
  // "websocket" or "spdy".
  virtual std::string_view transport() const = 0;
  virtual const ExecOptions& options() const = 0;

  // The next piece of stdin. false once stdin is over: the client closed it
  // (v5 close message, SPDY FIN), the connection ended, or Finish was called.
  // false at once when stdin was not asked for.
  virtual bool ReadStdin(std::string* data) = 0;
  // Writes to the client; false once it is gone. Writing to a stream that was
  // not asked for does nothing and succeeds, as the kubelet's ignored channels.
  virtual bool WriteStdout(std::string_view data) = 0;
  virtual bool WriteStderr(std::string_view data) = 0;
  // Blocks for the next terminal resize; false once the session is over.
  virtual bool NextResize(TerminalSize* size) = 0;
  // True once the client went away (the connection ended before Finish).
  virtual bool client_gone() const = 0;

  // Ends the session the way the kubelet does: the Status on the error
  // channel (success for 0, NonZeroExitCode otherwise; `message` follows
  // "command terminated with non-zero exit code: ", and defaults to
  // "error executing command, exit code N"), then a clean close, so kubectl
  // exits with `exit_code`. Pre-v4 protocols get the plain message on failure
  // and nothing on success, as they expect. Waits (boundedly) for the client
  // to hang up. Idempotent.
  virtual void Finish(int exit_code, std::string_view message = {}) = 0;
  // Ends with an InternalError Status ("Internal error occurred: MESSAGE"),
  // for an exec that could not run at all.
  virtual void FinishWithError(std::string_view message) = 0;
};

}  // namespace minik::streams
