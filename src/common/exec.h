#pragma once
// The one way minik runs another program. Every run records argv, exit code and
// output, and an error reads like `runc create web-7f9c: exit 1: <stderr>`.
// Tests replace the runner through SetRunnerForTesting.

#include <signal.h>

#include <functional>
#include <initializer_list>
#include <map>
#include <string>
#include <vector>

namespace minik::exec {

struct Command {
  std::vector<std::string> argv;
  std::string stdin_data;
  std::map<std::string, std::string> extra_env;
};

struct Result {
  int exit_code = -1;  // -1 when the program could not be started or was killed by a signal
  std::string out;
  std::string err;
  bool ok() const { return exit_code == 0; }
};

using Runner = std::function<Result(const Command&)>;

// Runs the command to completion and captures its output.
Result Run(const Command& cmd);
// Runs it and throws minik::Error naming argv, exit code and stderr when it fails.
std::string RunOrThrow(const Command& cmd);
// Describes a run for an error message: "argv0 argv1: exit 1: stderr".
std::string Describe(const Command& cmd, const Result& r);
// Finds a program on PATH; empty when absent.
std::string LookPath(const std::string& name);

void SetRunnerForTesting(Runner runner);

}  // namespace minik::exec

namespace minik::exec {

struct Spawn {
  std::vector<std::string> argv;
  std::string log_file;          // stdout and stderr are appended here ("" = /dev/null)
  bool new_session = false;      // detach from the caller's session (daemons)
  bool die_with_parent = false;  // SIGTERM when the parent dies (supervised children)
};

// Starts a process without waiting for it; returns its PID. Throws minik::Error.
int StartProcess(const Spawn& spec);
// The path of the running binary.
std::string SelfExe();
// True when a process with this PID exists and is not a zombie.
bool ProcessAlive(int pid);
// For a daemon's main thread, before any other thread starts: blocks SIGTERM
// and SIGINT (and `extra`) in every thread to come, so that WaitForSignal
// receives them, and ignores SIGPIPE (a peer that hangs up is then an error
// return, not the end of the process). Returns the blocked set.
sigset_t BlockTerminationSignals(std::initializer_list<int> extra = {});
// Waits for one of the signals of `set` (blocked); returns it.
int WaitForSignal(const sigset_t& set);
// Closes every file descriptor from `first` up (in a child before exec).
void CloseFrom(int first);

}  // namespace minik::exec
