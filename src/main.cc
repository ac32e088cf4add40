// minik: every role of a Kubernetes cluster in one binary; main only dispatches.

#include "cli/cli.h"

int main(int argc, char** argv) {
  return minik::cli::Main(argc, argv);
}
