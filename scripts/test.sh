#!/usr/bin/env bash
# Installs what is needed, builds goro and runs the whole test suite:
# the release build, then the same tests under AddressSanitizer+UBSan and ThreadSanitizer.
# GORO_TEST_SANITIZERS=0 skips the sanitizer builds.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
jobs=$(nproc)
run() {  # run <build-dir> <sanitizer> [cmake options...]
    local dir=$1 san=$2
    shift 2
    cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGORO_SANITIZE="$san" \
          -DGORO_BUILD_TESTS=ON -DGORO_BUILD_EXAMPLES=ON "$@" >/dev/null
    cmake --build "$dir" -j "$jobs"
    (cd "$dir" && ctest --output-on-failure -j "$jobs")
}
run build ""
if [ "${GORO_TEST_SANITIZERS:-1}" = 1 ]; then
    # -O1 with line tables only: sanitizer reports keep file:line, compiles take half as long.
    san_flags=(-DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG")
    run build-asan address "${san_flags[@]}"
    run build-tsan thread "${san_flags[@]}"
fi
