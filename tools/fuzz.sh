#!/usr/bin/env bash
# Builds the libFuzzer targets of tests/fuzz with clang into build-fuzz/ and fuzzes each for a
# bounded time:   tools/fuzz.sh [SECONDS]   (default 20 per target)
#
# Each target first replays its known crash inputs (tests/fuzz/crashes/<target>-*), then fuzzes
# from a scratch copy of tests/fuzz/corpus/<target>/ (the repo corpus is never written to).
# New crash inputs land in build-fuzz/artifacts/. Prints one line per target; exits non-zero if
# any target crashed, timed out or ran out of memory (known crashes included).
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2

secs="${1:-20}"
if ! [[ "$secs" =~ ^[0-9]+$ ]] || (( secs < 1 )); then
  echo "usage: tools/fuzz.sh [SECONDS]" >&2; exit 2
fi
bash tools/install-deps.sh
# clang with libFuzzer's runtime (Debian: clang, libclang-rt-14-dev), when missing.
if ! command -v clang++ >/dev/null || ! compgen -G "/usr/lib/llvm-*/lib/clang/*/lib/linux/libclang_rt.fuzzer-x86_64.a" >/dev/null; then
  sudo_cmd=(); [ "$(id -u)" -eq 0 ] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq clang libclang-rt-14-dev
fi
cxx="${FUZZ_CXX:-$(command -v clang++ || command -v clang++-14 || true)}"
[[ -n "$cxx" ]] || { echo "fuzz.sh: clang++ not found" >&2; exit 2; }

build="build-fuzz"
gen=(); command -v ninja >/dev/null && [[ ! -f $build/Makefile ]] && gen=(-G Ninja)
mkdir -p "$build"
cmake -S tests/fuzz -B "$build" "${gen[@]}" -DCMAKE_CXX_COMPILER="$cxx" >"$build/configure.log" 2>&1 \
  || { cat "$build/configure.log" >&2; echo "fuzz.sh: configure failed" >&2; exit 2; }
cmake --build "$build" -j"$(nproc)" >"$build/build.log" 2>&1 \
  || { cat "$build/build.log" >&2; echo "fuzz.sh: build failed" >&2; exit 2; }

# Per-target limits: inputs up to 4 KiB (refs, worker messages, dispatch scripts, request
# targets, channel frames) and 8 KiB (a 4 KiB ring and its header words) keep each run fast
# and the search focused. The engine's own limits (depth 128, targets 2 KiB) are reachable
# within 4 KiB; the dispatch fuzzer runs with small limits to reach them too.
declare -A opts=(
  [fuzz_ref_parse]="-max_len=4096"
  [fuzz_ring_reader]="-max_len=8192"
  [fuzz_ring_writer]="-max_len=8192"
  [fuzz_worker_message]="-max_len=4096"
  [fuzz_engine_dispatch]="-max_len=4096"
  [fuzz_channel_target]="-max_len=4096"
  [fuzz_channel_frames]="-max_len=4096"
  [fuzz_segment_open]="-max_len=16384"
  [fuzz_frame_meta]="-max_len=1024"
  [fuzz_client_frames]="-max_len=1024"
  [fuzz_client_header]="-max_len=4096"
)
targets=(fuzz_ref_parse fuzz_ring_reader fuzz_ring_writer fuzz_worker_message fuzz_engine_dispatch fuzz_channel_target fuzz_channel_frames fuzz_segment_open fuzz_frame_meta fuzz_client_frames fuzz_client_header)

mkdir -p "$build/artifacts" "$build/logs"
status=0
for t in "${targets[@]}"; do
  bin="$build/$t"
  log="$build/logs/$t.log"
  replay_log="$build/logs/$t.known-crashes.log"
  : >"$replay_log"

  known=(tests/fuzz/crashes/"$t"-*)
  still=0
  for c in "${known[@]}"; do
    [[ -f "$c" ]] || continue
    if ! "$bin" -runs=1 "$c" >>"$replay_log" 2>&1; then still=$((still + 1)); fi
  done

  work="$(mktemp -d "${TMPDIR:-/tmp}/shmchan-fuzz-$t.XXXXXX")"
  cp -r "tests/fuzz/corpus/$t/." "$work/"
  # shellcheck disable=SC2086
  "$bin" "$work" ${opts[$t]} -max_total_time="$secs" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=1 -artifact_prefix="$build/artifacts/$t-" >"$log" 2>&1
  rc=$?
  runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | tail -1 | grep -o '[0-9]*$')"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1)"
  rm -rf "$work"

  known_note=""
  (( still > 0 )) && known_note=", $still known crash input(s) still crash (tests/fuzz/crashes/$t-*, $replay_log)"
  if (( rc == 0 )); then
    if (( still > 0 )); then status=1; r=FAIL; else r=ok; fi
    echo "$t: $r: ${runs:-?} runs in ${secs}s, ${cov:-cov: ?}$known_note"
  else
    status=1
    art="$(grep -o "Test unit written to [^ ]*" "$log" | tail -1 | sed 's/Test unit written to //')"
    why="$(grep -m1 -o 'runtime error: .*\|ERROR: [A-Za-z]*: [^(]*\|^fuzz_[a-z_]*: [^R].*' "$log")"
    echo "$t: FAIL: fuzzing crashed (${why:-exit $rc}), input: ${art:-?}, log: $log$known_note"
  fi
done
exit $status
