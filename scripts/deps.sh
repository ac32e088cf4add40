#!/usr/bin/env bash
# Installs what minik needs to build, run and test, from Debian 12 packages.
# Only packages that are missing are installed; an up-to-date machine is left as it is.
set -euo pipefail

build_pkgs=(cmake make g++ pkg-config ccache libboost-dev nlohmann-json3-dev libyaml-dev
  libcurl4-openssl-dev catch2 libssl-dev libsqlite3-dev zlib1g-dev libcli11-dev libfmt-dev
  libspdlog-dev openssl libarchive-dev busybox-static)
# What the kubelet runs pods with.
runtime_pkgs=(runc containernetworking-plugins iptables iproute2 conntrack)
test_pkgs=(etcd-server python3 python3-kubernetes curl procps docker-registry docker.io apache2-utils dnsperf)

want=("${build_pkgs[@]}" "${runtime_pkgs[@]}")
if [ "${1:-}" = "--test" ]; then
  want+=("${test_pkgs[@]}")
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "minik: installing missing packages: ${missing[*]}"
sudo=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null || { echo "minik: run as root or install sudo to install: ${missing[*]}" >&2; exit 1; }
  sudo=sudo
fi
export DEBIAN_FRONTEND=noninteractive
if ! $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"; then
  $sudo apt-get update -q
  $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
