#!/usr/bin/env bash
# Runs minik's benchmarks and prints their figures (peer measured in the same run).
# Usage: test/bench/run.sh [BUILD_DIR] [SECONDS_PER_ROW]
set -euo pipefail
build=${1:-build}
secs=${2:-3}
command -v etcd >/dev/null || { echo "etcd is missing: scripts/deps.sh --test installs etcd-server" >&2; exit 1; }
export MINIK_BIN="$build/minik"
"$build/test/bench_store" "$secs"
"$build/test/bench_api" "$secs"
# Pods need root (runc, CNI, cgroups).
if [ "$(id -u)" = 0 ]; then
  MINIK_BIN="$(realpath "$build/minik")" /usr/bin/python3 "$(dirname "$0")/pods.py"
else
  echo "pods: skipped (runs containers; run as root)"
fi
if [ "$(id -u)" = 0 ]; then
  MINIK_BIN="$(realpath "$build/minik")" /usr/bin/python3 "$(dirname "$0")/services.py"
else
  echo "services: skipped (programs iptables; run as root)"
fi
if [ "$(id -u)" = 0 ]; then
  MINIK_BIN="$(realpath "$build/minik")" /usr/bin/python3 "$(dirname "$0")/restart.py"
else
  echo "restart: skipped (runs containers; run as root)"
fi
MINIK_BIN="$(realpath "$build/minik")" /usr/bin/python3 "$(dirname "$0")/scheduler.py"
