#!/usr/bin/env bash
# Install, build and run the test suite.
#   tools/test.sh          the whole suite (warnings are errors)
#   tools/test.sh --asan   the whole suite under AddressSanitizer + UndefinedBehaviorSanitizer
#   tools/test.sh --tsan   the concurrency tests under ThreadSanitizer
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-normal}
bash tools/install-deps.sh
# The pinned stock iii SDK for the interop tests (package-lock.json), from the npm registry.
(cd tests/interop && npm ci --no-audit --no-fund --loglevel=error)
jobs=$(nproc)
case "$mode" in
  normal) dir=build-test; flags=(-DCMAKE_BUILD_TYPE=RelWithDebInfo); ctest_args=() ;;
  --asan) dir=build-asan; flags=(-DCMAKE_BUILD_TYPE=Debug -DSHMCHAN_SANITIZE=address -DSHMCHAN_BUILD_BENCH=OFF)
          ctest_args=(); export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ;;
  --tsan) dir=build-tsan; flags=(-DCMAKE_BUILD_TYPE=Debug -DSHMCHAN_SANITIZE=thread -DSHMCHAN_BUILD_BENCH=OFF)
          ctest_args=(-L concurrency); export TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1 ;;
  *) echo "usage: tools/test.sh [--asan|--tsan]" >&2; exit 2 ;;
esac
cmake -S . -B "$dir" -DSHMCHAN_WERROR=ON "${flags[@]}"
cmake --build "$dir" -j"$jobs"
cd "$dir"
ctest --output-on-failure -j"$jobs" "${ctest_args[@]}"
