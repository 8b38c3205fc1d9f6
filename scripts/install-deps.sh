#!/usr/bin/env bash
# Installs everything goro's build, tests, examples and benchmarks need on Debian 12.
set -euo pipefail
pkgs=(g++ cmake ninja-build pkg-config libboost-context1.81-dev libboost1.81-dev catch2 libbenchmark-dev)
[ "${GORO_WITH_PEERS:-0}" = 1 ] && pkgs+=(golang-1.19-go libboost-fiber1.81-dev valgrind)
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    sudo=""
    [ "$(id -u)" -ne 0 ] && sudo=sudo
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
