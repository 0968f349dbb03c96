#!/usr/bin/env bash
# The benchmark suite as recorded in docs/benchmarks.md: install, build (Release) and run
# `shmchan bench`. Extra arguments go to it (default: the full run, results in ./bench-out).
# Run it on a machine as quiet as you can get: every figure is compared within this one run.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build-bench -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DSHMCHAN_BUILD_BENCH=ON
cmake --build build-bench -j"$(nproc)" --target shmchan_cli shmchan_bench
./build-bench/tools/shmchan bench "$@"
