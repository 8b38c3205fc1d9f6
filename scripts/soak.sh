#!/usr/bin/env bash
# Soak: runs the test binaries over and over for a while at a larger size, under every
# GOMAXPROCS of CI and under deterministic scheduling with fresh random seeds, and reports every
# failure with what it needs to be replayed (GOMAXPROCS or GORO_SCHED_SEED, and the log).
#
#   scripts/soak.sh [minutes=10] [scale=20]      (GORO_TEST_SCALE multiplies stress sizes)
#
# Uses the release build in build/ (made by scripts/test.sh); exits 1 if anything failed.
set -uo pipefail
cd "$(dirname "$0")/.."
minutes=${1:-10}
scale=${2:-20}
tests=(go_test sync_test time_test channel_test select_test timer_test context_test stress_test)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DGORO_BUILD_TESTS=ON >/dev/null
cmake --build build -j "$(nproc)" >/dev/null || exit 1
logs=$(mktemp -d /tmp/goro-soak.XXXXXX)
end=$((SECONDS + minutes * 60))
runs=0 failures=0 round=0
while [ $SECONDS -lt $end ]; do
    round=$((round + 1))
    for t in "${tests[@]}"; do
        for mode in 1 2 4 seed; do
            [ $SECONDS -lt $end ] || break 2
            log="$logs/$t.$mode.$round.log"
            if [ "$mode" = seed ]; then
                env=(GORO_SCHED_SEED=random)
                filter=("~[gomaxprocs]")
            else
                env=(GOMAXPROCS=$mode)
                filter=()
            fi
            runs=$((runs + 1))
            if ! env GORO_TEST_SCALE="$scale" "${env[@]}" timeout 1200 \
                    "build/tests/$t" "${filter[@]}" >"$log" 2>&1; then
                failures=$((failures + 1))
                seed=$(grep -o 'GORO_SCHED_SEED=[0-9]*' "$log" | head -1)
                echo "FAIL $t ${env[*]} ${seed} (log: $log)"
            else
                rm -f "$log"
            fi
        done
    done
done
echo "soak: $runs runs in $round rounds, $failures failed (scale $scale, $minutes min)"
[ "$failures" -eq 0 ]
