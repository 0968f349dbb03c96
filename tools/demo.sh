#!/usr/bin/env bash
# The main job: install, build (Release) and run `shmchan demo`. Extra arguments go to the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash tools/install-deps.sh
cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release -DBUILD_TESTING=OFF -DSHMCHAN_BUILD_BENCH=OFF
cmake --build build-release -j"$(nproc)" --target shmchan_cli
./build-release/tools/shmchan demo "$@"
