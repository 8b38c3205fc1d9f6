#!/usr/bin/env bash
# Installs what is needed, builds goro and runs the whole test suite:
# the release build, then the same tests under AddressSanitizer+UBSan and ThreadSanitizer.
# GORO_TEST_SANITIZERS=0 skips the sanitizer builds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
run() {  # run <build-dir> <sanitizer>
    cmake -S . -B "$1" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGORO_SANITIZE="$2" >/dev/null
    cmake --build "$1" -j "$jobs"
    (cd "$1" && ctest --output-on-failure -j "$jobs")
}
run build ""
if [ "${GORO_TEST_SANITIZERS:-1}" = 1 ]; then
    run build-asan address
    run build-tsan thread
fi
