#pragma once

namespace minik::cli {

// Runs the `minik` command line; returns the exit code.
int Main(int argc, char** argv);

}  // namespace minik::cli
