#pragma once
// `minik shim`: the supervisor of one container, as containerd's shims are.
// The kubelet starts it in its own session, so containers outlive a kubelet
// restart. The shim creates the container with the OCI runtime holding its
// stdio, writes what it prints to the container's log file (CRI format,
// rotated), serves attach on a unix socket, reaps the container as a child
// subreaper and records how it ended.
//
// Files in the container's state directory:
//   shim.status   "created <pid>" once the container exists, or "error <text>"
//   exit.json     {"exitCode":N,"signal":S,"finishedAt":"..."} when it ended
//   attach.sock   attach: frames of [stream byte][4-byte big-endian length][data];
//                 streams 1 stdout, 2 stderr from the shim; 0 stdin to it
//                 (a zero length closes stdin)

#include <string>
#include <vector>

namespace minik::kubelet {

struct ShimOptions {
  std::string id;
  std::string state_dir;  // where shim.status, exit.json, attach.sock live
  std::string log_file;
  std::vector<std::string> create_argv;  // the runtime's create command
  std::string pid_file;                  // the runtime writes the container's pid here
  bool stdin_open = false;
  bool tty = false;
  long long max_log_bytes = 10 * 1024 * 1024;
  int max_log_files = 2;  // the current file and one rotated
};

int RunShim(const ShimOptions& opts);

// One line of a CRI log file, parsed.
struct LogLine {
  std::string timestamp;  // RFC 3339 with nanoseconds
  std::string stream;     // stdout or stderr
  bool partial = false;
  std::string text;
};
bool ParseLogLine(const std::string& line, LogLine* out);

}  // namespace minik::kubelet
