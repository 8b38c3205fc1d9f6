#!/usr/bin/env bash
# The race detector still works for goro's users: a racy program of two goroutines, run under
# ThreadSanitizer, must be reported (TSan exits 66 on a report).
set -u
out=$("$1" 2>&1)
status=$?
if grep -q "WARNING: ThreadSanitizer: data race" <<<"$out" && [ "$status" -ne 0 ]; then
    echo "race reported, exit status $status"
    exit 0
fi
echo "expected a ThreadSanitizer data race report; exit status $status; output:"
echo "$out"
exit 1
