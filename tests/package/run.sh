#!/usr/bin/env bash
# Installs goro into a scratch prefix, then builds and runs a consumer with find_package(goro),
# and again with add_subdirectory: the two ways a project picks goro up (Conan and vcpkg both
# go through the installed package config).
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cmake -S "$src" -B "$work/goro" -G Ninja -DGORO_BUILD_TESTS=OFF -DGORO_BUILD_EXAMPLES=OFF \
      -DGORO_BUILD_BENCH=OFF -DCMAKE_INSTALL_PREFIX="$work/prefix" >/dev/null
cmake --install "$work/goro" >/dev/null
cmake -S "$src/tests/package" -B "$work/installed" -G Ninja -DCMAKE_PREFIX_PATH="$work/prefix" >/dev/null
cmake --build "$work/installed" >/dev/null
"$work/installed/consumer"
cmake -S "$src/tests/package" -B "$work/subdir" -G Ninja -DGORO_SOURCE_DIR="$src" >/dev/null
cmake --build "$work/subdir" >/dev/null
"$work/subdir/consumer"
echo "package: find_package and add_subdirectory consumers built and ran"
