#!/usr/bin/env bash
# Installs what is needed, builds goro's examples and runs one: the chat hub by default.
#   scripts/run-example.sh [name] [args...]     e.g. scripts/run-example.sh worker_pool
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
name=${1:-chat_hub}
[ $# -gt 0 ] && shift
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGORO_BUILD_EXAMPLES=ON >/dev/null
cmake --build build -j "$(nproc)" --target "example_$name"
exec "build/examples/example_$name" "$@"
